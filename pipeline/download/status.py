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
}
STATUSES = tuple(MEANING)
