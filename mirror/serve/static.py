"""``mirror serve``: a small read-only web server over ``web/`` with PEP 691 negotiation.

For trying a mirror out, for tests, and for hosts without nginx. It answers like
``examples/nginx/mirror.conf``: negotiated pages with ``Vary: Accept`` and a short cache
lifetime, gzip for pages, immutable files with Range support, ``/simple/<name>`` redirected to
``/simple/<name>/``. Nothing outside ``web/`` is reachable; temporary files are never served.
"""

from __future__ import annotations

import gzip
import http.server
import os
import socket
import sys
from http import HTTPStatus
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from mirror.core.layout import TEMP_SUFFIX
from mirror.core.negotiate import choose
from mirror.core.ranges import Unsatisfiable, parse_range

PAGE_CACHE = "max-age=60, public"
FILE_CACHE = "max-age=31536000, public, immutable"
_CHUNK = 1 << 16
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".v1_html": "application/vnd.pypi.simple.v1+html; charset=utf-8",
    ".v1_json": "application/vnd.pypi.simple.v1+json",
    ".metadata": "text/plain; charset=utf-8",
}


class MirrorServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, web: Path, address: tuple[str, int], *, log: bool = True) -> None:
        self.web = web.resolve()
        self.log = log
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host!s}]" if ":" in str(host) else str(host)
        return f"http://{host}:{port}/"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: MirrorServer
    server_version = "mirror-serve"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _refuse(self) -> None:
        self._status(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def log_message(self, format: str, *args: object) -> None:
        if self.server.log:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    # -- routing --------------------------------------------------------------------------------

    def _answer(self, *, body: bool) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/":
            self._status(HTTPStatus.FOUND, {"Location": "/simple/"})
            return
        target = _resolve(self.server.web, unquote(parts.path))
        if target is None:
            self._status(HTTPStatus.NOT_FOUND)
        elif target.is_dir():
            if not parts.path.endswith("/"):
                query = f"?{parts.query}" if parts.query else ""
                self._status(HTTPStatus.MOVED_PERMANENTLY, {"Location": parts.path + "/" + query})
            elif (target / "index.html").is_file():
                self._page(target, body=body)
            else:
                self._status(HTTPStatus.NOT_FOUND)
        elif target.is_file():
            self._file(target, body=body)
        else:
            self._status(HTTPStatus.NOT_FOUND)

    def _page(self, directory: Path, *, body: bool) -> None:
        fmt = choose(self.headers.get("Accept"))
        try:
            data = (directory / fmt.filename).read_bytes()
        except FileNotFoundError:
            self._status(HTTPStatus.NOT_FOUND)
            return
        headers = {"Content-Type": fmt.content_type, "Vary": "Accept, Accept-Encoding", "Cache-Control": PAGE_CACHE}
        if _accepts_gzip(self.headers.get("Accept-Encoding", "")):
            data = gzip.compress(data, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        headers["Content-Length"] = str(len(data))
        self._head(HTTPStatus.OK, headers)
        if body:
            self.wfile.write(data)

    def _file(self, path: Path, *, body: bool) -> None:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            headers = {
                "Content-Type": _TYPES.get(path.suffix, "application/octet-stream"),
                "Cache-Control": FILE_CACHE if "/packages/" in path.as_posix() else PAGE_CACHE,
                "Accept-Ranges": "bytes",
            }
            try:
                wanted = parse_range(self.headers.get("Range"), size)
            except Unsatisfiable:
                self._status(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, {"Content-Range": f"bytes */{size}"})
                return
            status, start, length = HTTPStatus.OK, 0, size
            if wanted is not None:
                status, start, length = HTTPStatus.PARTIAL_CONTENT, wanted.start, wanted.length
                headers["Content-Range"] = wanted.content_range(size)
            headers["Content-Length"] = str(length)
            self._head(status, headers)
            if body:
                handle.seek(start)
                _copy(handle, self.wfile, length)

    def _head(self, status: HTTPStatus, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _status(self, status: HTTPStatus, headers: dict[str, str] | None = None) -> None:
        text = f"{status.value} {status.phrase}\n".encode()
        self._head(status, {**(headers or {}), "Content-Type": "text/plain", "Content-Length": str(len(text))})
        if self.command != "HEAD":
            self.wfile.write(text)


def _resolve(web: Path, path: str) -> Path | None:
    """The file or directory ``path`` names under ``web``, or None if it is not ours to serve."""
    segments = [s for s in path.split("/") if s]
    if any(s in {".", ".."} or "\\" in s or "\0" in s or s.endswith(TEMP_SUFFIX) for s in segments):
        return None
    candidate = web.joinpath(*segments)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    # A symlink out of the tree is as much an escape as a "..".
    return real if real == web or real.is_relative_to(web) else None


def _accepts_gzip(header: str) -> bool:
    for element in header.split(","):
        coding, *params = (p.strip() for p in element.split(";"))
        if coding.lower() == "gzip":
            return not any(p.replace(" ", "") in {"q=0", "q=0.0", "q=0.00", "q=0.000"} for p in params)
    return False


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


def _copy(source: BinaryIO, sink: _Sink, length: int) -> None:
    remaining = length
    while remaining > 0:
        chunk = source.read(min(_CHUNK, remaining))
        if not chunk:
            break
        sink.write(chunk)
        remaining -= len(chunk)


def serve(web: Path, host: str, port: int) -> None:
    """Serve until interrupted."""
    with MirrorServer(web, (host, port)) as server:
        print(f"serving {web} at {server.url}simple/ (Ctrl-C stops)", file=sys.stderr, flush=True)
        server.serve_forever()


__all__ = ["FILE_CACHE", "PAGE_CACHE", "MirrorServer", "serve"]
