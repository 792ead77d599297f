"""Which URLs we may fetch: http(s) only, and never an address inside someone's network.

A candidate URL list is untrusted input: a URL (or a redirect) pointing at 10.0.0.1 or the
cloud metadata address 169.254.169.254 would make the downloader probe the network it runs
in. ``SafeConnector`` checks every address a host resolves to, at connection time, so DNS
names, IP literals and redirects all pass the same gate. A host written as a number
(``2130706433``, ``127.1``, ``0177.0.0.1``, ``0x7f.1``) is the IPv4 address a browser reads
in it (the WHATWG URL standard's IPv4 parser), so it is checked and fetched as that address.
"""

from __future__ import annotations

import ipaddress
import string
from typing import Any

import aiohttp
from yarl import URL

SCHEMES = ("http", "https")
MAX_URL_LENGTH = 4096


class BlockedAddress(OSError):
    """The host resolves to an address we refuse to contact."""


def parse_url(url: str | URL) -> URL | str:
    """``url`` as a yarl URL when it is a well-formed http(s) URL, else why it cannot be
    fetched at all (parsed once: the request is sent with the URL checked here)."""
    if len(url if isinstance(url, str) else str(url)) > MAX_URL_LENGTH:
        return f"longer than {MAX_URL_LENGTH} characters"
    if isinstance(url, str):
        try:
            url = URL(url)
        except (ValueError, TypeError) as e:
            return f"not a URL ({e})"
    if url.scheme not in SCHEMES:
        return f"scheme {url.scheme or '(none)'!r} is not http or https"
    if not url.host:
        return "no host"
    try:
        address = numeric_ipv4(url.host)
    except ValueError as e:
        return str(e)
    if address is not None and address != url.host:
        url = url.with_host(address)
    return url


def numeric_ipv4(host: str) -> str | None:
    """The dotted-quad address of a host written as an IPv4 number in any form a browser
    accepts (one to four parts, decimal, octal ``0..`` or hex ``0x..``), None for a host name;
    ValueError for a host that ends in a number but is no address (``1.2.3.4.5``, ``256.1.1.1``)."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    last = parts[-1]
    if not (_digits(last, string.digits) or last[:2].lower() == "0x" and _digits(last[2:], string.hexdigits, True)):
        return None  # a name: DNS decides
    numbers = [_ipv4_part(part) for part in parts]
    if (
        len(parts) > 4
        or None in numbers
        or any(n > 255 for n in numbers[:-1])
        or numbers[-1] >= 256 ** (5 - len(parts))
    ):
        raise ValueError(f"host {host!r} is not an IPv4 address")
    value = numbers[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(numbers[:-1]))
    return str(ipaddress.IPv4Address(value))


def _digits(text: str, allowed: str, empty: bool = False) -> bool:
    return all(c in allowed for c in text) and (empty or text != "")


def _ipv4_part(text: str) -> int | None:
    """One part of a numeric IPv4 host: hex after ``0x``, octal after a leading 0, else decimal."""
    if text[:2].lower() == "0x":
        return int(text[2:] or "0", 16) if _digits(text[2:], string.hexdigits, True) else None
    if len(text) > 1 and text.startswith("0"):
        return int(text[1:], 8) if _digits(text[1:], string.octdigits) else None
    return int(text) if _digits(text, string.digits) else None


def host_of(url: str) -> str:
    """The host ``url`` is fetched from (a numeric IPv4 host as its dotted quad), or ""."""
    parsed = parse_url(url)
    if isinstance(parsed, str):
        try:
            return (URL(url).host or "").lower()
        except (ValueError, TypeError):
            return ""
    return (parsed.host or "").lower()


def address_problem(address: str, allow_private: bool) -> str | None:
    """Why we refuse ``address``: link-local (cloud metadata) and multicast always; private
    and loopback unless ``allow_private`` (tests and the demo host live on 127.0.0.1 or ::1,
    which Python also counts as reserved)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    private = f"{address} is a private or loopback address (--allow-private-hosts permits it)"
    if ip.is_loopback:
        return None if allow_private else private
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{address} is a link-local, multicast or reserved address"
    if not allow_private and (ip.is_private or not ip.is_global):
        return private
    return None


class SafeConnector(aiohttp.TCPConnector):
    """A TCPConnector that refuses hosts resolving to a blocked address (see ``address_problem``)."""

    def __init__(self, *args: Any, allow_private: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.allow_private = allow_private

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list:
        hosts = await super()._resolve_host(host, port, traces=traces)
        for resolved in hosts:
            problem = address_problem(resolved["host"], self.allow_private)
            if problem:
                raise BlockedAddress(f"{host}: {problem}")
        return hosts
