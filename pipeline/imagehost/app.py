"""The local image host: generated pictures, files and every misbehaviour a downloader meets.

Tests, benchmarks and the offline demo point the pipeline at this host instead of the web.
Routes (``{token}`` is any text that makes a URL unique, so state keyed by the URL is fresh):

- ``/picture/{wnid}/{n}.jpg[?w=&h=&copy=k]``: picture ``n`` of class ``wnid`` (see ``pictures``)
- ``/truth/{wnid}/{n}.json[?w=&h=&copy=k]``: that picture's true object boxes, one per shape
  a person could box, ``{"width": W, "height": H, "boxes": [[xmin, ymin, xmax, ymax], ...]}``
  in the served picture's pixels (``pipeline.boxes``' convention; ``pictures.true_boxes``)
- ``/files/{name}``: a file from the host's folder
- ``/fault/{kind}/{token}``: 404, flaky, ratelimit, slow, reset, truncated, html, empty,
  wrongtype, huge, huge-chunked, bomb, loop, private, offsite; ``/fault/redirect/{n}/{token}``
- ``/format/{kind}/{token}``: the same picture as CMYK JPEG, 16-bit PNG, animated GIF, ...
- ``/optout/{signal}/{token}``: a picture sent with an opt-out header (``X-Robots-Tag: noai``...,
  ``tdm-reservation: 1``), or one addressed to another crawler (``otherbot``)
- ``/limited/{token}[?rate=R]``: a picture, unless this address already had R (default 2)
  such requests in the last second: then 429 with ``Retry-After: 1``
- ``/robots.txt``: as configured per address (``robots=``): a text, ``"timeout"``, ``"error"``
  (500), or 404 when not configured
- ``POST /demo/catalogue``: the offline demo's candidates for a list of classes (``demo``)

``ImageHost(aliases=n)`` also listens on 127.0.0.2 ... 127.0.0.(n+1), same port: n more hosts
for per-host rules, each with its own robots.txt and rate limit.

Every request is appended to the log before it is answered, so a test can count retries and
see the headers a client sent even when the answer was a failure.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import mimetypes
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from aiohttp import web

from pipeline.background import BackgroundServer

from . import demo, pictures

SLOW_PIECES = 20  # /fault/slow sends its body in this many pieces, evenly over S seconds
HUGE_PIECE = 1 << 20  # /fault/huge streams in pieces of 1 MiB

PLACEHOLDER_PAGE = """<!doctype html>
<html><head><title>Image not found</title></head>
<body><h1>Sorry, this image is not available</h1>
<p>The image you requested has been removed or is not available any more.</p></body></html>
"""


@dataclass(frozen=True)
class Request:
    """One request as the host received it."""

    time: float  # time.monotonic() on arrival
    method: str
    path: str  # path and query string, as sent
    headers: dict[str, str]
    address: str = "127.0.0.1"  # the host address the request came to (see aliases)


LOG = web.AppKey("log", list)
FOLDER = web.AppKey("folder", object)  # the Path served under /files, or None
ANSWERED = web.AppKey("answered", set)  # paths (with query) a first-time-only fault has failed once
ROBOTS = web.AppKey("robots", dict)  # address -> robots.txt text, "timeout" or "error"
LIMITED = web.AppKey("limited", dict)  # address -> arrival times of recent /limited/ requests
OPTOUTS = {
    "noai": ("X-Robots-Tag", "noai"),
    "noimageai": ("X-Robots-Tag", "noimageai"),
    "noindex": ("X-Robots-Tag", "noindex, nofollow"),
    "noimageindex": ("X-Robots-Tag", "noimageindex"),
    "tdm": ("tdm-reservation", "1"),
    "otherbot": ("X-Robots-Tag", "otherbot: noai, noimageai"),  # addressed to another crawler
}
ROBOTS_STALL = 3600  # a "timeout" robots.txt answers after this long

routes = web.RouteTableDef()


@web.middleware
async def record(request: web.Request, handler: Callable) -> web.StreamResponse:
    request.app[LOG].append(
        Request(time.monotonic(), request.method, request.path_qs, dict(request.headers), _address(request))
    )
    return await handler(request)


def _address(request: web.Request) -> str:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return sockname[0] if sockname else "127.0.0.1"


def make_app(
    folder: Path | None = None, log: list | None = None, robots: dict[str, str] | None = None
) -> web.Application:
    """The host as an aiohttp app; ``log`` (a list) receives a ``Request`` for every request;
    ``robots`` maps a host address to its robots.txt (see the module docstring)."""
    app = web.Application(middlewares=[record])
    app[LOG] = log if log is not None else []
    app[FOLDER] = Path(folder).resolve() if folder is not None else None
    app[ANSWERED] = set()
    app[ROBOTS] = dict(robots or {})
    app[LIMITED] = {}
    app.add_routes(routes)
    return app


async def _off_loop(make: Callable, *args) -> bytes:
    """Image bytes made on a worker thread: a first request for a picture takes milliseconds
    of CPU, which would otherwise hold up every other answer, a slow fault's trickle included."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(make, *args))


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}={text!r}: not an integer") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name}={value}: must be between {low} and {high}")
    return value


def _float_query(request: web.Request, name: str, default: float) -> float:
    text = request.query.get(name)
    try:
        value = default if text is None else float(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}={text!r}: not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise web.HTTPBadRequest(text=f"{name}={text!r}: must be a finite number, not negative")
    return value


def _image(body: bytes, content_type: str = "image/jpeg") -> web.Response:
    return web.Response(body=body, content_type=content_type)


def _jpeg_stream(length: int | None) -> web.StreamResponse:
    """A JPEG answer streamed piece by piece: ``length`` bytes promised, or chunked if None."""
    response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    if length is None:
        response.enable_chunked_encoding()
    else:
        response.content_length = length
    return response


async def _token_picture(request: web.Request) -> bytes:
    return await _off_loop(pictures.token_picture, request.match_info["token"])


def _first_time(request: web.Request) -> bool:
    """True on the first request for this exact path and query, False ever after."""
    answered = request.app[ANSWERED]
    if request.path_qs in answered:
        return False
    answered.add(request.path_qs)
    return True


async def _send(response: web.StreamResponse, request: web.Request, pieces, pause: float = 0.0) -> None:
    """Stream ``pieces`` after the headers; a client that hangs up just ends the answer."""
    await response.prepare(request)
    try:
        for piece in pieces:
            if pause:
                await asyncio.sleep(pause)
            await response.write(piece)
        await response.write_eof()
    except ConnectionError:  # reset, or lost while waiting for the client to drain
        pass


def _picture_of(request: web.Request) -> tuple[str, int, int, int, int]:
    """wnid, variant, width, height and copy of a ``/picture/`` or ``/truth/`` request."""
    width = _int_query(request, "w", pictures.WIDTH, 1, pictures.MAX_SIDE)
    height = _int_query(request, "h", pictures.HEIGHT, 1, pictures.MAX_SIDE)
    copy = _int_query(request, "copy", 0, 1, 1_000_000)
    return request.match_info["wnid"], int(request.match_info["n"]), width, height, copy


@routes.get(r"/picture/{wnid}/{n:\d+}.jpg")
async def picture(request: web.Request) -> web.Response:
    return _image(await _off_loop(pictures.picture_jpeg, *_picture_of(request)))


@routes.get(r"/truth/{wnid}/{n:\d+}.json")
async def truth(request: web.Request) -> web.Response:
    """The true boxes of the picture the same path and query serve (``pictures.true_boxes``)."""
    (width, height), boxes = await _off_loop(pictures.true_boxes, *_picture_of(request))
    return web.json_response({"width": width, "height": height, "boxes": [list(box) for box in boxes]})


@routes.get("/files/{name:.+}")
async def folder_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or "\\" in name:
        raise web.HTTPForbidden(text=f"{name!r}: only plain names inside the folder")
    folder = request.app[FOLDER]
    if folder is None:
        raise web.HTTPNotFound(text="this host serves no folder")
    path = folder / relative
    try:  # no link out of the folder: a linked file, or a linked folder on the way
        if (
            path.is_symlink()
            or not path.is_file()
            or (len(relative.parts) > 1 and not path.resolve().is_relative_to(folder))
        ):
            raise FileNotFoundError(path)
        body = path.read_bytes()
    except OSError:
        raise web.HTTPNotFound(text=f"{name!r}: no such file") from None
    # Read on the loop and sent from memory: a photo is in the page cache, and FileResponse's
    # stat, executor hop and sendfile set-up cost the benchmarks' host more CPU than the read.
    content_type, _ = mimetypes.guess_type(name)
    return web.Response(body=body, content_type=content_type or "application/octet-stream")


@routes.get("/fault/404/{token:.+}")
async def fault_404(request: web.Request) -> web.Response:
    raise web.HTTPNotFound(text="no such picture")


@routes.get("/fault/flaky/{token:.+}")
async def fault_flaky(request: web.Request) -> web.Response:
    if _first_time(request):
        raise web.HTTPInternalServerError(text="try again")
    return _image(await _token_picture(request))


@routes.get("/fault/ratelimit/{token:.+}")
async def fault_ratelimit(request: web.Request) -> web.Response:
    after = _int_query(request, "after", 1, 0, 86_400)
    if _first_time(request):
        raise web.HTTPTooManyRequests(headers={"Retry-After": str(after)}, text="slow down")
    return _image(await _token_picture(request))


@routes.get("/fault/slow/{token:.+}")
async def fault_slow(request: web.Request) -> web.StreamResponse:
    """Headers at once, then the picture in SLOW_PIECES pieces, one every S/SLOW_PIECES s:
    every gap is shorter than a per-read timeout, so only a total timeout stops it."""
    seconds = _float_query(request, "seconds", 30.0)
    body = await _token_picture(request)
    response = _jpeg_stream(len(body))
    step = -(-len(body) // SLOW_PIECES)
    pieces = (body[i : i + step] for i in range(0, len(body), step))
    await _send(response, request, pieces, pause=seconds / SLOW_PIECES)
    return response


@routes.get("/fault/reset/{token:.+}")
async def fault_reset(request: web.Request) -> web.StreamResponse:
    """Half the promised picture, then a TCP reset (SO_LINGER 0 makes close send RST)."""
    body = await _token_picture(request)
    response = _jpeg_stream(len(body))
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    transport = request.transport
    if transport is not None:
        no_linger = struct.pack("ii", 1, 0)
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, no_linger)
        transport.abort()
    return response


@routes.get("/fault/truncated/{token:.+}")
async def fault_truncated(request: web.Request) -> web.Response:
    body = await _token_picture(request)
    return _image(body[: len(body) // 2])


@routes.get("/fault/html/{token:.+}")
async def fault_html(request: web.Request) -> web.Response:
    return web.Response(text=PLACEHOLDER_PAGE, content_type="text/html")


@routes.get("/fault/empty/{token:.+}")
async def fault_empty(request: web.Request) -> web.Response:
    return _image(b"")


@routes.get("/fault/wrongtype/{token:.+}")
async def fault_wrongtype(request: web.Request) -> web.Response:
    return _image(await _token_picture(request), content_type="text/html")


async def _huge(request: web.Request, chunked: bool) -> web.StreamResponse:
    """``mb`` MiB (default 64): a JPEG's start, then zeros, never held in memory at once."""
    size = int(_float_query(request, "mb", 64.0) * (1 << 20))
    head = (await _token_picture(request))[:size]
    response = _jpeg_stream(None if chunked else size)
    zeros = memoryview(bytes(HUGE_PIECE))
    rest = size - len(head)
    tail = (zeros[: min(HUGE_PIECE, rest - i)] for i in range(0, rest, HUGE_PIECE))
    await _send(response, request, itertools.chain([head] if head else [], tail))
    return response


@routes.get("/fault/huge/{token:.+}")
async def fault_huge(request: web.Request) -> web.StreamResponse:
    return await _huge(request, chunked=False)


@routes.get("/fault/huge-chunked/{token:.+}")
async def fault_huge_chunked(request: web.Request) -> web.StreamResponse:
    return await _huge(request, chunked=True)


@routes.get("/fault/bomb/{token:.+}")
async def fault_bomb(request: web.Request) -> web.Response:
    return _image(await _off_loop(pictures.bomb_png), content_type="image/png")


@routes.get(r"/fault/redirect/{n:\d+}/{token:.+}")
async def fault_redirect(request: web.Request) -> web.Response:
    """A chain of ``n`` relative redirects that ends in a picture."""
    hops = int(request.match_info["n"])
    if hops:
        raise web.HTTPFound(f"/fault/redirect/{hops - 1}/{request.match_info['token']}")
    return _image(await _token_picture(request))


@routes.get("/fault/loop/{token:.+}")
async def fault_loop(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.path_qs)


@routes.get("/fault/private/{token:.+}")
async def fault_private(request: web.Request) -> web.Response:
    """Off to the cloud metadata address, which a downloader must never fetch."""
    raise web.HTTPFound(f"http://169.254.169.254/latest/meta-data/{request.match_info['token']}")


@routes.get("/fault/offsite/{token:.+}")
async def fault_offsite(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"ftp://127.0.0.1/{request.match_info['token']}")


@routes.get("/robots.txt")
async def robots_txt(request: web.Request) -> web.Response:
    rules = request.app[ROBOTS].get(_address(request))
    if rules is None:
        raise web.HTTPNotFound(text="no robots.txt here")
    if rules == "timeout":
        await asyncio.sleep(ROBOTS_STALL)
    if rules == "error":
        raise web.HTTPInternalServerError(text="robots.txt is broken today")
    return web.Response(text=rules, content_type="text/plain")


@routes.get("/optout/{signal}/{token:.+}")
async def optout(request: web.Request) -> web.Response:
    signal = request.match_info["signal"]
    if signal not in OPTOUTS:
        raise web.HTTPNotFound(text=f"{signal!r}: no such opt-out; one of {', '.join(OPTOUTS)}")
    response = _image(await _token_picture(request))
    name, value = OPTOUTS[signal]
    response.headers[name] = value
    return response


@routes.get("/limited/{token:.+}")
async def limited(request: web.Request) -> web.Response:
    """A host that allows ``rate`` requests a second to /limited/ and answers the rest 429."""
    rate = _int_query(request, "rate", 2, 1, 10_000)
    now = time.monotonic()
    recent = [t for t in request.app[LIMITED].get(_address(request), []) if now - t < 1.0]
    recent.append(now)
    request.app[LIMITED][_address(request)] = recent
    if len(recent) > rate:
        raise web.HTTPTooManyRequests(headers={"Retry-After": "1"}, text=f"at most {rate} requests a second")
    return _image(await _token_picture(request))


@routes.get("/format/{kind}/{token:.+}")
async def image_format(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    if kind not in pictures.FORMATS:
        raise web.HTTPNotFound(text=f"{kind!r}: no such format; one of {', '.join(pictures.FORMATS)}")
    content_type = pictures.FORMATS[kind][0]
    return _image(await _off_loop(pictures.format_picture, kind, request.match_info["token"]), content_type)


@routes.post("/demo/catalogue")
async def demo_catalogue(request: web.Request) -> web.Response:
    """Which of this host's paths stand in for the search results of each class (``demo.catalogue``)."""
    try:
        asked = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="the body must be JSON: {wnids: [...], per_class: N, seed: S}") from None
    wnids = asked.get("wnids") if isinstance(asked, dict) else None
    per_class, seed = (asked.get("per_class", 60), asked.get("seed", 0)) if isinstance(asked, dict) else (None, None)
    if not (isinstance(wnids, list) and wnids and all(isinstance(w, str) and w.isalnum() for w in wnids)):
        raise web.HTTPBadRequest(text="wnids: a list of class names (letters and digits)")
    if not (isinstance(per_class, int) and 1 <= per_class <= demo.MAX_PER_CLASS and isinstance(seed, int)):
        raise web.HTTPBadRequest(text=f"per_class: 1 to {demo.MAX_PER_CLASS}; seed: an integer")
    try:
        items = demo.catalogue(wnids, per_class, seed)
    except ValueError as e:
        raise web.HTTPBadRequest(text=str(e)) from None
    return web.json_response({"candidates": [item.listing() for item in items]})


class ImageHost(BackgroundServer):
    """Runs make_app(...) on a background thread with its own event loop, on 127.0.0.1,
    so synchronous code (tests, benchmarks, ``python -m pipeline.imagehost``) can use it as a web server.

    ``with ImageHost() as host:`` starts it (port 0 picks a free port, then ``host.port``
    holds it) and stops it on leaving; a port in use raises OSError from ``__enter__``.
    """

    name = "imagehost"

    def __init__(
        self,
        folder: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        aliases: int = 0,
        robots: dict[str, str] | None = None,
    ):
        self.folder = folder
        self.host = host
        self.port = port
        self.aliases = [f"127.0.0.{n}" for n in range(2, 2 + aliases)]
        self.robots = robots
        self.log: list[Request] = []  # appended on the host's thread; list appends are atomic

    def make_app(self) -> web.Application:
        return make_app(self.folder, self.log, self.robots)

    async def sites(self, runner: web.AppRunner) -> int:
        # A backlog above any client's concurrency: a burst of connects must not overflow it.
        await web.TCPSite(runner, self.host, self.port, backlog=1024).start()
        port = runner.addresses[0][1]
        for alias in self.aliases:
            await web.TCPSite(runner, alias, port, backlog=1024).start()
        return port

    def url(self, path: str, alias: int = 0) -> str:
        """The URL of ``path`` on the host, or on its alias number ``alias`` (1 = 127.0.0.2)."""
        return f"http://{self.aliases[alias - 1] if alias else self.host}:{self.port}{path}"

    def requests_to(self, path_prefix: str) -> list[Request]:
        return [r for r in list(self.log) if r.path.startswith(path_prefix)]
