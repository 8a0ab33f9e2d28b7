"""``mirror serve``: a read-only web server over ``web/`` with PEP 691 negotiation, on aiohttp.

For trying a mirror out, for tests, and for hosts without nginx. It answers like
``examples/nginx/mirror.conf``: negotiated pages with ``Vary: Accept`` and a short cache
lifetime, gzip for pages, immutable files with Range support, ETag and Last-Modified on every
page and file with 304 for conditional requests, ``/simple/<name>`` redirected to
``/simple/<name>/``.

What it never does:
- serve anything outside ``web/``: every file is resolved to its real path, which must lie
  inside ``web/``, and opened without following a final symlink, so a link swapped in after the
  check is refused too; only regular files are served (a directory named ``index.v1_json`` is a 404);
- serve a temporary file (``*.mirror-tmp``);
- die of a request: a handler error is a 500 and one log line.

Connections: an asyncio server (no thread per connection) with a listen backlog of
:data:`BACKLOG`; a connection with no complete request for :data:`IDLE_TIMEOUT` seconds
(before its first request, between requests, or halfway through a request's headers) is closed.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import stat
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from aiohttp import web

from mirror.core.conditional import Validators, not_modified, range_allowed
from mirror.core.layout import TEMP_SUFFIX
from mirror.core.negotiate import choose
from mirror.core.ranges import Unsatisfiable, parse_range

if TYPE_CHECKING:
    from mirror.serve.pullthrough import PullThrough

PAGE_CACHE = "max-age=60, public"
FILE_CACHE = "max-age=31536000, public, immutable"
BACKLOG = 1024
"""Pending connections the kernel queues before accept (the kernel caps it at somaxconn)."""
IDLE_TIMEOUT = 30.0
"""Seconds a connection may wait without a complete request before it is closed."""
_LARGE = 256 * 1024
"""Pages above this are read and compressed off the event loop."""
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".v1_html": "application/vnd.pypi.simple.v1+html; charset=utf-8",
    ".v1_json": "application/vnd.pypi.simple.v1+json",
    ".metadata": "text/plain; charset=utf-8",
}
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse | None]]
"""Answers a request before the static tree does (uploads, read-auth), or returns None to pass it on."""
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True, slots=True)
class _Opened:
    """A regular file inside ``web/``, open, with what its ``fstat`` said."""

    fd: int
    size: int
    validators: Validators


class MirrorServer:
    """The aiohttp application over ``web``; :meth:`start` binds, :meth:`close` stops."""

    def __init__(
        self,
        web_root: Path,
        host: str,
        port: int,
        *,
        log: bool = True,
        idle_timeout: float = IDLE_TIMEOUT,
        backlog: int = BACKLOG,
        handlers: Sequence[Handler] = (),
        pull: PullThrough | None = None,
    ) -> None:
        self.web = web_root.resolve()
        self._handlers = tuple(handlers)
        self.pull = pull  # pull-through: asked before anything is served (mirror/serve/pullthrough.py)
        self.log = log
        self._host, self._port, self._backlog = host, port, backlog
        self._idle_timeout = idle_timeout
        self._runner: web.ServerRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Bind and listen; returns the base URL (``http://host:port/``)."""
        # The low-level server, no router: every request reaches _handle, whatever its path
        # holds (a router's pattern would answer some of them itself).
        handler = web.Server(
            self._handle,
            access_log=None,
            keepalive_timeout=self._idle_timeout,
            logger=_one_line_logger(),
            max_field_size=16384,
        )
        if self.pull is not None:
            await self.pull.start()
        self._runner = web.ServerRunner(handler, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, backlog=self._backlog)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        host, port = self._runner.addresses[0][:2]
        host = f"[{host}]" if ":" in str(host) else str(host)
        self.url = f"http://{host}:{port}/"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self.pull is not None:
            await self.pull.close()

    # -- requests -------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            response = await self._answer(request)
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client went away: nothing to answer
        except Exception as exc:  # one bad request must not take the server down
            self._log(f"mirror serve: error: {request.method} {request.raw_path}: {type(exc).__name__}: {exc}")
            response = _status(HTTPStatus.INTERNAL_SERVER_ERROR)
        if self.log:
            self._log(f'{request.remote} "{request.method} {request.raw_path}" {response.status}')
        return response

    def _log(self, line: str) -> None:
        print(_printable(line), file=sys.stderr, flush=True)

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        for handler in self._handlers:
            answer = await handler(request)
            if answer is not None:
                return answer
        if request.method not in ("GET", "HEAD"):
            return _status(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET, HEAD"})
        parts = urlsplit(request.raw_path)
        if parts.path == "/":
            return _status(HTTPStatus.FOUND, {"Location": "/simple/"})
        if self.pull is not None:
            early = await self.pull.prepare(unquote(parts.path), parts.query)
            if early is not None:
                return early
        target = _resolve(self.web, unquote(parts.path))
        if target is None:
            return _status(HTTPStatus.NOT_FOUND)
        if target.is_dir():
            if not parts.path.endswith("/"):
                query = f"?{parts.query}" if parts.query else ""
                return _status(HTTPStatus.MOVED_PERMANENTLY, {"Location": parts.path + "/" + query})
            return await self._page(request, target)
        return await self._file(request, target)

    async def _page(self, request: web.BaseRequest, directory: Path) -> web.StreamResponse:
        fmt = choose(request.headers.get("Accept"))
        opened = _open_inside(self.web, directory / fmt.filename)
        if opened is None:
            return _status(HTTPStatus.NOT_FOUND)
        gzipped = _accepts_gzip(request.headers.get("Accept-Encoding", ""))
        validators = opened.validators
        headers = {
            "Content-Type": fmt.content_type,
            "Vary": "Accept, Accept-Encoding",
            "Cache-Control": PAGE_CACHE,
            "ETag": validators.weak_etag if gzipped else validators.etag,
            "Last-Modified": validators.last_modified,
        }
        if not_modified(validators, request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since")):
            os.close(opened.fd)
            return _not_modified(headers)
        if opened.size > _LARGE:
            data = await asyncio.to_thread(_read_page, opened, gzipped)
        else:
            data = _read_page(opened, gzipped)
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(status=HTTPStatus.OK, body=data, headers=headers)

    async def _file(self, request: web.BaseRequest, path: Path) -> web.StreamResponse:
        opened = _open_inside(self.web, path)
        if opened is None:
            return _status(HTTPStatus.NOT_FOUND)
        with os.fdopen(opened.fd, "rb") as handle:
            validators = opened.validators
            headers = {
                "Content-Type": _TYPES.get(path.suffix, "application/octet-stream"),
                "Cache-Control": FILE_CACHE if "/packages/" in path.as_posix() else PAGE_CACHE,
                "Accept-Ranges": "bytes",
                "ETag": validators.etag,
                "Last-Modified": validators.last_modified,
            }
            if not_modified(validators, request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since")):
                return _not_modified(headers)
            status, start, length = HTTPStatus.OK, 0, opened.size
            # §14.2: Range applies to GET only; §13.1.5: If-Range may veto it.
            if request.method == "GET" and range_allowed(validators, request.headers.get("If-Range")):
                try:
                    wanted = parse_range(request.headers.get("Range"), opened.size)
                except Unsatisfiable:
                    return _status(
                        HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                        {"Content-Range": f"bytes */{opened.size}"},
                    )
                if wanted is not None:
                    status, start, length = HTTPStatus.PARTIAL_CONTENT, wanted.start, wanted.length
                    headers["Content-Range"] = wanted.content_range(opened.size)
            headers["Content-Length"] = str(length)
            response = web.StreamResponse(status=status, headers=headers)
            await response.prepare(request)
            try:
                if request.method == "GET" and length:
                    await _send(request, handle, start, length)
                await response.write_eof()
            except (ConnectionError, asyncio.CancelledError):
                raise
            except Exception as exc:  # the status line is out: all that is left is to cut the connection
                self._log(f"mirror serve: error: sending {path}: {type(exc).__name__}: {exc}")
                if request.transport is not None:
                    request.transport.close()
            return response


def _resolve(web_root: Path, path: str) -> Path | None:
    """The file or directory ``path`` names under ``web_root``, or None if it is not ours to serve."""
    segments = [s for s in path.split("/") if s]
    if any(s in {".", ".."} or "\\" in s or "\0" in s or s.endswith(TEMP_SUFFIX) for s in segments):
        return None
    return _real_inside(web_root, web_root.joinpath(*segments))


def _real_inside(web_root: Path, candidate: Path) -> Path | None:
    """``candidate`` with every symlink resolved, if that lies inside ``web_root``; else None."""
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    # A symlink out of the tree is as much an escape as a "..".
    return real if real == web_root or real.is_relative_to(web_root) else None


def _open_inside(web_root: Path, candidate: Path) -> _Opened | None:
    """``candidate``, opened, if it is a regular file whose real path lies inside ``web_root``.

    The real path is opened with ``O_NOFOLLOW``: a symlink put in its place between the check
    and the open is refused, not followed.
    """
    real = _real_inside(web_root, candidate)
    if real is None or real.name.endswith(TEMP_SUFFIX):
        return None
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return _Opened(fd, info.st_size, Validators.of(info.st_mtime_ns, info.st_size))


def _read_page(opened: _Opened, gzipped: bool) -> bytes:
    with os.fdopen(opened.fd, "rb") as handle:
        data = handle.read()
    return gzip.compress(data, compresslevel=6, mtime=0) if gzipped else data


async def _send(request: web.BaseRequest, handle: object, start: int, length: int) -> None:
    """``length`` bytes of the file from ``start``: ``sendfile`` where the transport allows it."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away")
    loop = asyncio.get_running_loop()
    await loop.sendfile(transport, handle, start, length)  # type: ignore[arg-type]


def _not_modified(headers: dict[str, str]) -> web.StreamResponse:
    # §15.4.5: a 304 carries the validators and caching headers a 200 would, and no content.
    kept = {k: v for k, v in headers.items() if k in ("ETag", "Last-Modified", "Cache-Control", "Vary")}
    return web.Response(status=HTTPStatus.NOT_MODIFIED, headers=kept)


def _status(status: HTTPStatus, headers: dict[str, str] | None = None) -> web.Response:
    text = f"{status.value} {status.phrase}\n".encode()
    return web.Response(status=status, body=text, headers={**(headers or {}), "Content-Type": "text/plain"})


class _OneLine(logging.Formatter):
    """aiohttp's own complaints (a malformed request, a client gone mid-answer): one line, no traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"mirror serve: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f": {type(exc).__name__}: {exc}"
        return _printable(text)


def _one_line_logger() -> logging.Logger:
    # A Logger of our own, not one from logging.getLogger: no process-wide registry, no global config.
    logger = logging.Logger("mirror.serve", logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logger.addHandler(handler)
    return logger


def _printable(text: str, limit: int = 500) -> str:
    """A log line: control characters escaped (no injected lines), long ones cut."""
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


def _accepts_gzip(header: str) -> bool:
    for element in header.split(","):
        coding, *params = (p.strip() for p in element.split(";"))
        if coding.lower() == "gzip":
            return not any(p.replace(" ", "") in {"q=0", "q=0.0", "q=0.00", "q=0.000"} for p in params)
    return False


async def _serve_forever(server: MirrorServer, started: Callable[[str], None]) -> None:
    started(await server.start())
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()


def serve(
    web_root: Path, host: str, port: int, handlers: Sequence[Handler] = (), pull: PullThrough | None = None
) -> None:
    """Serve until interrupted (KeyboardInterrupt propagates to the caller)."""
    server = MirrorServer(web_root, host, port, handlers=handlers, pull=pull)

    def started(url: str) -> None:
        print(f"serving {server.web} at {url}simple/ (Ctrl-C stops)", file=sys.stderr, flush=True)

    asyncio.run(_serve_forever(server, started))


__all__ = ["BACKLOG", "FILE_CACHE", "IDLE_TIMEOUT", "PAGE_CACHE", "Handler", "MirrorServer", "serve"]
