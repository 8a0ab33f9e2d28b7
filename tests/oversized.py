"""An upstream that sends oversized answers: a gzip root "bomb", a root that stalls mid-body, huge pages.

Used by ``tests/integration/test_bounds.py`` and ``benchmarks/bounds.py`` (which measures the
mirror's peak memory against the same answers at full size).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import zlib
from dataclasses import dataclass, field

from tests.servers import InThread

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
SDIST = b"a small sdist"


def gzip_of_spaces(size: int) -> bytes:
    """A gzip body that expands to ``size`` bytes (about 1000:1), made without holding ``size`` bytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b" " * (1 << 20)
    parts = [packer.compress(b"<!DOCTYPE html><html><body>\n")]
    for _ in range(size >> 20):
        parts.append(packer.compress(block))
    parts.append(packer.compress(b"</body></html>\n"))
    parts.append(packer.flush())
    return b"".join(parts)


def json_links_page(name: str, count: int, *, hashed: bool = True) -> bytes:
    digest = {"sha256": "0" * 64} if hashed else {}
    files = [{"filename": f"{name}-{i}.tar.gz", "url": f"{name}-{i}.tar.gz", "hashes": digest} for i in range(count)]
    return json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": files}).encode()


def html_links_page(name: str, count: int) -> bytes:
    links = "".join(f'<a href="{name}-{i}.tar.gz#sha256={"0" * 64}">{name}-{i}.tar.gz</a>\n' for i in range(count))
    return f"<!DOCTYPE html><html><body>{links}</body></html>".encode()


@dataclass
class Answers:
    """What the server says; tests change it between runs."""

    root: bytes = b""
    root_encoding: str = ""
    root_etag: str = '"v1"'
    stall_root_after: int | None = None
    """Send this many bytes of the root, then stall until the server stops (a run to kill mid-download)."""
    pages: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


def simple_root(names: list[str]) -> bytes:
    links = "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
    return f"<!DOCTYPE html><html><body>{links}</body></html>".encode()


def sdist_page(name: str) -> tuple[str, bytes]:
    entry = {
        "filename": f"{name}-1.0.tar.gz",
        "url": f"/files/{name}-1.0.tar.gz",
        "hashes": {"sha256": hashlib.sha256(SDIST).hexdigest()},
        "size": len(SDIST),
    }
    return JSON_TYPE, json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": [entry]}).encode()


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client hanging up on a bomb is the point, not a server error


class OversizedServer(InThread):
    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.stop = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                got = outer.answers
                if self.path == "/simple/":
                    self._root(got)
                elif self.path.startswith("/simple/") and self.path[8:].rstrip("/") in got.pages:
                    content_type, body = got.pages[self.path[8:].rstrip("/")]
                    self._send(200, body, {"Content-Type": content_type})
                elif self.path.startswith("/files/") and self.path[7:] in got.files:
                    self._send(200, got.files[self.path[7:]], {"Content-Type": "application/octet-stream"})
                else:
                    self._send(404, b"not found", {"Content-Type": "text/plain"})

            def _root(self, got: Answers) -> None:
                if got.stall_root_after is None and self.headers.get("If-None-Match") == got.root_etag:
                    self._send(304, b"", {"ETag": got.root_etag})
                    return
                headers = {"Content-Type": "text/html", "ETag": got.root_etag}
                if got.root_encoding:
                    headers["Content-Encoding"] = got.root_encoding
                if got.stall_root_after is None:
                    self._send(200, got.root, headers)
                    return
                self._send(200, got.root[: got.stall_root_after], headers, length=len(got.root))
                outer.stop.wait(60)

            def _send(self, status: int, body: bytes, headers: dict[str, str], length: int | None = None) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(_QuietServer(("127.0.0.1", 0), Handler))

    @property
    def simple_url(self) -> str:
        return self.url + "simple/"

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        super().__exit__(*exc)
