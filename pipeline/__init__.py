"""synsetforge's pipeline: the command line, the stage runner, table schemas and the stages
that fetch and clean images (candidates, download, dedupe)."""

import os

# Parallel stages run one process per core. A BLAS thread pool in each would oversubscribe
# the cores on the small matrix products of hashing (pipeline.lanczos): hashing a folder on
# two processes ran three times slower with OpenBLAS's default of a thread per core. Set
# before numpy loads (and inherited by worker processes); a user's own setting wins. Only
# numpy's OpenBLAS: torch's threads (the baseline trainer) are left alone.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
# The demo image host's port (python -m pipeline.imagehost), where the demo candidates source
# looks for it; the Makefile's DEMO_PORT says the same.
DEMO_PORT = 8642
PROJECT_URL = "https://github.com/synsetforge/synsetforge"


def user_agent(contact: str | None = None) -> str:
    """The User-Agent of every request we send: the tool, its version, and whoever runs it.

    Wikimedia's User-Agent policy (foundation.wikimedia.org/wiki/Policy:Wikimedia_Foundation_User-Agent_Policy)
    asks automated clients for ``<client>/<version> (<contact information>)``, a contact that
    reaches the operator (an email or a URL): the project's URL reaches its authors, not the
    person whose run floods a server, so the operator's ``contact`` (``--contact``) comes first.
    robots.txt rules are matched on the product token, "synsetforge"."""
    who = f"{contact}; " if contact else ""
    return f"synsetforge/{__version__} ({who}+{PROJECT_URL}; dataset builder)"


# Without a contact: the default of every client.
USER_AGENT = user_agent()
