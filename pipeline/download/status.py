"""Every outcome a candidate URL can have: the ledger's ``status`` column takes only these."""

from __future__ import annotations

OK = "ok"
BAD_URL = "bad_url"
BLOCKED_ADDRESS = "blocked_address"
CONNECTION_ERROR = "connection_error"
TIMEOUT = "timeout"
HTTP_ERROR = "http_error"
TOO_MANY_REDIRECTS = "too_many_redirects"
TOO_LARGE = "too_large"
NOT_AN_IMAGE = "not_an_image"
DECODE_ERROR = "decode_error"
DECOMPRESSION_BOMB = "decompression_bomb"
TOO_SMALL = "too_small"
OPTED_OUT = "opted_out"
DISALLOWED_BY_ROBOTS = "disallowed_by_robots"
ROBOTS_UNAVAILABLE = "robots_unavailable"
BLOCKED_DOMAIN = "blocked_domain"

MEANING = {
    OK: "fetched, decoded and stored",
    BAD_URL: "not an http(s) URL with a host, or a redirect to one",
    BLOCKED_ADDRESS: "the host resolves to a private, loopback, link-local or multicast address",
    CONNECTION_ERROR: "DNS failure, refused or reset connection, after the retries",
    TIMEOUT: "connect, read or total timeout",
    HTTP_ERROR: "an answer other than 200 (429 and 5xx after the retries)",
    TOO_MANY_REDIRECTS: "more redirects than allowed, or a redirect loop",
    TOO_LARGE: "the body is larger than the byte cap",
    NOT_AN_IMAGE: "the bytes are no image format we read (an HTML page, an empty body...)",
    DECODE_ERROR: "an image format, but Pillow cannot decode it fully (truncated, corrupt)",
    DECOMPRESSION_BOMB: "declares more pixels than the decompression-bomb limit",
    TOO_SMALL: "the shorter side is below the minimum",
    OPTED_OUT: "the answer's X-Robots-Tag or tdm-reservation header opts out; its body was not read",
    DISALLOWED_BY_ROBOTS: "the host's robots.txt disallows the URL for synsetforge; never requested",
    ROBOTS_UNAVAILABLE: "the host's robots.txt failed (5xx, 429, timeout) every try; never requested",
    BLOCKED_DOMAIN: "the host is on the domains blocklist; never contacted",
}
# The statuses that are a rule of politeness stopping a URL, reported apart.
POLITENESS = (OPTED_OUT, DISALLOWED_BY_ROBOTS, ROBOTS_UNAVAILABLE, BLOCKED_DOMAIN)
STATUSES = tuple(MEANING)
