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
CONTACT_URL = "https://github.com/synsetforge/synsetforge"
# Every request we send names the tool and where to reach its users, as Wikimedia's
# User-Agent policy and polite crawling ask; robots.txt rules are matched on "synsetforge".
USER_AGENT = f"synsetforge/{__version__} (+{CONTACT_URL}; dataset builder)"
