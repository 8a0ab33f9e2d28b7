"""The aiohttp application: routing, negotiation, caching and fault delivery.

Every request goes through :meth:`Site.handle`, which (1) consumes the
pre-handling faults, (2) computes a :class:`Reply` synchronously from the
immutable model snapshots, (3) records the request and (4) sends the reply,
possibly damaged by a body fault.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from aiohttp import web
from packaging.utils import canonicalize_name

from .faults import BodyFault, Faults, Plan
from .model import FileEntry, Index, Project
from .negotiate import Format, negotiate
from .render import SiteOptions, render_legacy_json, render_project, render_provenance, render_root

__all__ = ["Reply", "RequestLog", "RequestRecord", "Site"]

_PROJECT = re.compile(r"^/simple/(?P<name>[^/]+)(?P<slash>/?)$")
_LEGACY = re.compile(r"^/pypi/(?P<name>[^/]+)/json/?$")
_PACKAGES = re.compile(r"^/packages/(?P<path>.+)$")
_FILES = re.compile(r"^/files/(?P<filename>[^/]+)$")
_PROVENANCE = re.compile(r"^/integrity/(?P<filename>[^/]+)/provenance$")
_METADATA_SUFFIX = ".metadata"
#: Upper bound on waiting for a partial body to leave the socket buffer.
_FLUSH_TIMEOUT = 5.0


@dataclass(frozen=True)
class RequestRecord:
    """One request as seen by the server."""

    method: str
    path: str
    status: int
    accept: str | None
    fault: str | None = None


class RequestLog:
    """A thread-safe append-only list of :class:`RequestRecord`."""

    def __init__(self, enabled: bool = True) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self.enabled = enabled

    def append(self, record: RequestRecord) -> None:
        if self.enabled:
            with self._lock:
                self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        """A copy of the records so far."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


@dataclass(frozen=True)
class Reply:
    """A response before it is put on the wire."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Fault label for the request log (e.g. "stale").
    note: str | None = None

    @classmethod
    def text(cls, status: int, message: str, **headers: str) -> Reply:
        """A small text/plain reply (errors, redirects)."""
        hdrs = {"Content-Type": "text/plain; charset=utf-8", **headers}
        return cls(status, f"{message}\n".encode(), hdrs)

    @classmethod
    def redirect(cls, location: str) -> Reply:
        return cls.text(301, f"Moved to {location}", Location=location)


class Site:
    """Request handling for one running :class:`~.server.FakePyPI`."""

    def __init__(self, index: Index, faults: Faults, log: RequestLog, opts: SiteOptions) -> None:
        self.index = index
        self.faults = faults
        self.log = log
        self.opts = opts

    def make_app(self) -> web.Application:
        """An aiohttp application routing everything through :meth:`handle`."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Entry point for every request."""
        path = request.path
        plan = self.faults.plan(path, is_download=_is_download(path))
        if plan.delay:
            await asyncio.sleep(plan.delay)
        reply = self._fault_reply(plan) if plan.fail_status else self.route(request)
        body_fault = self._body_fault(request, reply, plan)
        self._record(request, reply, plan, body_fault)
        return await send(request, reply, body_fault)

    # -- routing -------------------------------------------------------------

    def route(self, request: web.Request) -> Reply:
        """Compute the reply for a request (no faults)."""
        if request.method not in ("GET", "HEAD"):
            return Reply.text(405, "Method Not Allowed", Allow="GET, HEAD")
        path = request.path
        if path in ("/simple", "/simple/"):
            return self._root(request) if path.endswith("/") else Reply.redirect("/simple/")
        if m := _PROJECT.match(path):
            return self._project(request, m["name"], bool(m["slash"]))
        if m := _LEGACY.match(path):
            return self._legacy(m["name"])
        if m := _PACKAGES.match(path):
            return self._blob(m["path"], self.index.blob_by_path)
        if m := _FILES.match(path):
            return self._blob(m["filename"], self.index.blob_by_filename)
        if (m := _PROVENANCE.match(path)) and self.opts.provenance != "none":
            return self._provenance(m["filename"])
        return Reply.text(404, "Not Found")

    def _provenance(self, filename: str) -> Reply:
        """PEP 740: the provenance object of a live file."""
        entry = self.index.blob_by_filename(filename)
        if entry is None:
            return Reply.text(404, "Not Found")
        return Reply(200, render_provenance(entry), {"Content-Type": "application/vnd.pypi.integrity.v1+json"})

    def _root(self, request: web.Request) -> Reply:
        root = self.index.root()
        render = partial(render_root, root, opts=self.opts)
        return self._page(request, render, root.cache, root.serial)

    def _project(self, request: web.Request, name: str, slash: bool) -> Reply:
        normalized = canonicalize_name(name)
        if normalized != name or not slash:
            return Reply.redirect(f"/simple/{normalized}/")
        project, note = self._snapshot(normalized)
        if project is None:
            return replace(Reply.text(404, "Not Found"), note=note)
        render = partial(render_project, project, opts=self.opts)
        return replace(self._page(request, render, project.cache, project.serial), note=note)

    def _legacy(self, name: str) -> Reply:
        normalized = canonicalize_name(name)
        if self.opts.html_only:
            return Reply.text(404, "Not Found")
        if normalized != name:
            return Reply.redirect(f"/pypi/{normalized}/json")
        project, note = self._snapshot(normalized)
        if project is None:
            return replace(Reply.text(404, "Not Found"), note=note)
        render = partial(render_legacy_json, project, self.opts)
        body = _cached(project.cache, ("legacy", self.opts), render)
        headers = {"Content-Type": "application/json", "X-PyPI-Last-Serial": str(project.serial)}
        return Reply(200, body, headers, note)

    def _snapshot(self, normalized: str) -> tuple[Project | None, str | None]:
        """The project's snapshot to serve and a "stale" note if applicable.

        A stale request gets the snapshot before the latest mutation (None,
        i.e. 404, if the project did not exist before it).
        """
        if self.faults.take_stale(normalized):
            return self.index.previous(normalized), "stale"
        return self.index.project(normalized), None

    def _page(
        self,
        request: web.Request,
        render: Callable[[Format], bytes],
        cache: dict[Any, Any],
        serial: int,
    ) -> Reply:
        """A negotiated, cached, ETag-validated simple-index page."""
        fmt = Format.HTML if self.opts.html_only else negotiate(request.headers.get("Accept"))
        if fmt is None:
            return Reply.text(406, "Not Acceptable")
        body, etag = _cached(cache, (fmt, self.opts), lambda: _with_etag(fmt, render(fmt)))
        headers = {"Content-Type": fmt.content_type, "ETag": etag, "Vary": "Accept"}
        if self.opts.show_serial:
            headers["X-PyPI-Last-Serial"] = str(serial)
        if etag_matches(request.headers.get("If-None-Match"), etag):
            return Reply(304, b"", headers)
        return Reply(200, body, headers)

    def _blob(self, key: str, lookup: Callable[[str], FileEntry | None]) -> Reply:
        """A distribution file, or its ``.metadata`` sidecar."""
        entry = lookup(key)
        if entry is not None:
            return _octets(entry.built.content)
        if key.endswith(_METADATA_SUFFIX):
            entry = lookup(key[: -len(_METADATA_SUFFIX)])
            if entry is not None and entry.built.metadata is not None:
                return _octets(entry.built.metadata)
        return Reply.text(404, "Not Found")

    # -- faults & logging ----------------------------------------------------

    @staticmethod
    def _fault_reply(plan: Plan) -> Reply:
        status = plan.fail_status or 503
        extra = {"Retry-After": str(plan.retry_after)} if plan.retry_after is not None else {}
        return Reply.text(status, f"Injected fault: HTTP {status}", **extra)

    def _body_fault(self, request: web.Request, reply: Reply, plan: Plan) -> BodyFault | None:
        """The body fault to apply, consuming a counted one only if usable."""
        if reply.status != 200 or not reply.body or request.method == "HEAD":
            return None
        return plan.body or self.faults.take_body_fault(request.path)

    def _record(self, request: web.Request, reply: Reply, plan: Plan, body: BodyFault | None) -> None:
        labels = [x for x in (plan.label, reply.note, body) if x]
        self.log.append(
            RequestRecord(
                method=request.method,
                path=request.path,
                status=reply.status,
                accept=request.headers.get("Accept"),
                fault=",".join(labels) or None,
            )
        )


# -- helpers --------------------------------------------------------------------


def _is_download(path: str) -> bool:
    return path.startswith(("/packages/", "/files/", "/integrity/"))


def _octets(data: bytes) -> Reply:
    return Reply(200, data, {"Content-Type": "application/octet-stream"})


def _cached(cache: dict[Any, Any], key: Any, make: Callable[[], Any]) -> Any:
    """Memoize ``make()`` in a snapshot's cache (benign races only)."""
    try:
        return cache[key]
    except KeyError:
        value = cache[key] = make()
        return value


def _with_etag(fmt: Format, body: bytes) -> tuple[bytes, str]:
    """A body and its strong ETag (distinct per representation)."""
    digest = hashlib.sha256(fmt.value.encode() + b"\0" + body).hexdigest()[:32]
    return body, f'"{digest}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of an If-None-Match header against an ETag."""
    if not if_none_match:
        return False
    candidates = [c.strip() for c in if_none_match.split(",")]
    return any(c == "*" or c.removeprefix("W/") == etag for c in candidates)


# -- sending --------------------------------------------------------------------


async def send(request: web.Request, reply: Reply, fault: BodyFault | None) -> web.StreamResponse:
    """Put a reply on the wire, damaged as ``fault`` says."""
    body = reply.body
    if fault == "corrupt":
        body = corrupt_bytes(body)
    elif fault == "oversize":
        body = body + oversize_tail(body)
    elif fault in ("reset", "truncate"):
        return await _send_partial(request, reply, reset=fault == "reset")
    return web.Response(status=reply.status, body=body, headers=reply.headers)


def corrupt_bytes(body: bytes) -> bytes:
    """Flip every bit of a few deterministic bytes; same length."""
    damaged = bytearray(body)
    for pos in {0, len(body) // 2, len(body) - 1}:
        damaged[pos] ^= 0xFF
    return bytes(damaged)


def oversize_tail(body: bytes) -> bytes:
    """Extra bytes appended by the ``oversize`` fault."""
    return b"\0OVERSIZE\0" * (1 + len(body) // 20)


async def _send_partial(request: web.Request, reply: Reply, *, reset: bool) -> web.StreamResponse:
    """Announce the full length, send half the body, then cut the connection.

    ``reset`` aborts with a TCP RST (SO_LINGER 0); otherwise the connection
    is closed cleanly (FIN) after the partial body has been flushed.
    """
    response = web.StreamResponse(status=reply.status, headers=reply.headers)
    response.content_length = len(reply.body)
    await response.prepare(request)
    await response.write(reply.body[: len(reply.body) // 2])
    transport = request.transport
    if transport is not None:
        await _flush(transport)
        if reset:
            _abort_with_rst(transport)
        else:
            transport.close()
    return response


async def _flush(transport: asyncio.BaseTransport) -> None:
    """Wait until the transport has handed its buffer to the kernel."""
    assert isinstance(transport, asyncio.WriteTransport)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _FLUSH_TIMEOUT
    while transport.get_write_buffer_size() and loop.time() < deadline:
        await asyncio.sleep(0.001)


def _abort_with_rst(transport: asyncio.BaseTransport) -> None:
    """Close the connection so that the peer sees ECONNRESET."""
    assert isinstance(transport, asyncio.WriteTransport)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
