"""synsetforge's pipeline: the command line, the stage runner, table schemas and the stages
that fetch and clean images (candidates, download, dedupe)."""

__version__ = "0.1.0"
CONTACT_URL = "https://github.com/synsetforge/synsetforge"
# Every request we send names the tool and where to reach its users, as Wikimedia's
# User-Agent policy and polite crawling ask; robots.txt rules are matched on "synsetforge".
USER_AGENT = f"synsetforge/{__version__} (+{CONTACT_URL}; dataset builder)"
