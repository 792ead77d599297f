"""Which URLs we may fetch: http(s) only, and never an address inside someone's network.

A candidate URL list is untrusted input: a URL (or a redirect) pointing at 10.0.0.1 or the
cloud metadata address 169.254.169.254 would make the downloader probe the network it runs
in. ``SafeConnector`` checks every address a host resolves to, at connection time, so DNS
names, IP literals and redirects all pass the same gate.
"""

from __future__ import annotations

import ipaddress
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
    return url


def host_of(url: str) -> str:
    try:
        return (URL(url).host or "").lower()
    except (ValueError, TypeError):
        return ""


def address_problem(address: str, allow_private: bool) -> str | None:
    """Why we refuse ``address``: link-local (cloud metadata) and multicast always; private
    and loopback unless ``allow_private`` (tests and the demo host live on 127.0.0.1)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{address} is a link-local, multicast or reserved address"
    if not allow_private and (ip.is_private or ip.is_loopback or not ip.is_global):
        return f"{address} is a private or loopback address (--allow-private-hosts permits it)"
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
