"""``mirror serve`` over a mirror kept in object storage (``[storage] backend = "s3"``).

The same answers as :class:`~mirror.serve.static.MirrorServer` gives for ``web/`` on disk (PEP 691
negotiation, ``Vary: Accept``, gzip for pages, ETag/Last-Modified and 304, Range, ``/simple/<name>``
redirected), read from the bucket with obstore's async calls on the event loop. The bucket's keys
are the paths under ``web/``; the store already carries the prefix.

What differs from the disk, and why:
- validators are the object's own: its ETag (S3's, strong) and its Last-Modified;
- a URL is mapped to a key, never resolved: the segments ``.``/``..``, backslashes, NUL and
  temporary names are refused before any request reaches the bucket, and the client's query
  string never does (S3 would read ``?acl`` or ``?versionId=`` as another resource);
- a page is one GET (its bytes and metadata together, so they cannot disagree); a file is a HEAD
  (size and validators, for Range and 304) then a GET of the range, streamed in
  :data:`CHUNK`-sized pieces at the client's pace, so memory stays bounded whatever the file's size;
- the bucket unreachable or refusing is a 502 and one log line, never a traceback.

Only GET and HEAD are answered: this server writes nothing.
"""

from __future__ import annotations

import asyncio
import gzip
import sys
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import obstore
from aiohttp import web
from obstore.exceptions import BaseError

from mirror.core import objects
from mirror.core.conditional import Validators, not_modified, range_allowed
from mirror.core.layout import TEMP_SUFFIX
from mirror.core.negotiate import choose
from mirror.core.ranges import Unsatisfiable, parse_range
from mirror.serve.static import (
    _LARGE,
    BACKLOG,
    IDLE_TIMEOUT,
    PAGE_CACHE,
    MirrorServer,
    _accepts_gzip,
    _not_modified,
    _serve_forever,
    _status,
)

if TYPE_CHECKING:
    from obstore import ObjectMeta
    from obstore.store import ObjectStore

CHUNK = 256 * 1024
"""Bytes of a file held per connection while it streams from the bucket to the client."""


class _Missing(Exception):
    """The URL names no object this server serves."""


class ObjectServer(MirrorServer):
    """``mirror serve`` for a bucket: GET and HEAD of the ``web/`` layout kept in ``store``."""

    def __init__(
        self,
        store: ObjectStore,
        host: str,
        port: int,
        *,
        where: str,
        log: bool = True,
        idle_timeout: float = IDLE_TIMEOUT,
        backlog: int = BACKLOG,
    ) -> None:
        # The parent's file-system root is never read here (every request is answered by _answer
        # below); /dev/null is a root under which nothing exists, whatever a later change does.
        super().__init__(Path("/dev/null"), host, port, log=log, idle_timeout=idle_timeout, backlog=backlog)
        self.store = store
        self.where = where
        """What the store is, for messages (``s3://bucket/prefix``)."""

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return _status(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET, HEAD"})
        parts = urlsplit(request.raw_path)
        if parts.path == "/":
            return _status(HTTPStatus.FOUND, {"Location": "/simple/"})
        try:
            key = object_key(unquote(parts.path))
            if parts.path.endswith("/"):
                return await self._object_page(request, key)
            try:
                return await self._object_file(request, key)
            except _Missing:
                # No object of that name: a "directory" that holds a page gets its slash, as on disk.
                if key and await self._exists(f"{key}/index.html"):
                    query = f"?{parts.query}" if parts.query else ""
                    return _status(HTTPStatus.MOVED_PERMANENTLY, {"Location": parts.path + "/" + query})
                raise
        except _Missing:
            return _status(HTTPStatus.NOT_FOUND)
        except BaseError as exc:  # the bucket is down, refuses us, or answered nonsense
            self._log(f"mirror serve: error: {request.method} {request.raw_path}: {self.where}: {_one_line(exc)}")
            return _status(HTTPStatus.BAD_GATEWAY)

    async def _exists(self, key: str) -> bool:
        try:
            await obstore.head_async(self.store, key)
        except FileNotFoundError:
            return False
        return True

    async def _object_page(self, request: web.BaseRequest, directory: str) -> web.StreamResponse:
        fmt = choose(request.headers.get("Accept"))
        key = f"{directory}/{fmt.filename}" if directory else fmt.filename
        try:
            result = await obstore.get_async(self.store, key)
            validators = _validators(result.meta)
            data = bytes(await result.bytes_async())
        except FileNotFoundError:
            raise _Missing(key) from None
        gzipped = _accepts_gzip(request.headers.get("Accept-Encoding", ""))
        headers = {
            "Content-Type": fmt.content_type,
            "Vary": "Accept, Accept-Encoding",
            "Cache-Control": PAGE_CACHE,
            "ETag": validators.weak_etag if gzipped else validators.etag,
            "Last-Modified": validators.last_modified,
        }
        if not_modified(validators, request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since")):
            return _not_modified(headers)
        if gzipped:
            if len(data) > _LARGE:
                data = await asyncio.to_thread(gzip.compress, data, 6, mtime=0)
            else:
                data = gzip.compress(data, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        return web.Response(status=HTTPStatus.OK, body=data, headers=headers)

    async def _object_file(self, request: web.BaseRequest, key: str) -> web.StreamResponse:
        if not key:
            raise _Missing(key)
        try:
            meta = await obstore.head_async(self.store, key)
        except FileNotFoundError:
            raise _Missing(key) from None
        validators, size = _validators(meta), meta["size"]
        # The headers the object was stored with (mirror.core.objects), as nginx in front of the
        # bucket passes them on: one answer whichever server a client goes through.
        headers = {
            "Content-Type": objects.content_type(key),
            "Cache-Control": objects.cache_control(key),
            "Accept-Ranges": "bytes",
            "ETag": validators.etag,
            "Last-Modified": validators.last_modified,
        }
        if not_modified(validators, request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since")):
            return _not_modified(headers)
        status, start, length = HTTPStatus.OK, 0, size
        # RFC 9110 §14.2: Range applies to GET only; §13.1.5: If-Range may veto it.
        if request.method == "GET" and range_allowed(validators, request.headers.get("If-Range")):
            try:
                wanted = parse_range(request.headers.get("Range"), size)
            except Unsatisfiable:
                return _status(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, {"Content-Range": f"bytes */{size}"})
            if wanted is not None:
                status, start, length = HTTPStatus.PARTIAL_CONTENT, wanted.start, wanted.length
                headers["Content-Range"] = wanted.content_range(size)
        headers["Content-Length"] = str(length)
        if request.method != "GET" or not length:
            response = web.StreamResponse(status=status, headers=headers)
            await response.prepare(request)
            await response.write_eof()
            return response
        # The bytes of the version the HEAD described: a replaced object fails the GET instead of
        # mixing two versions under one ETag.
        result = await obstore.get_async(
            self.store, key, options={"range": (start, start + length), "if_match": validators.etag}
        )
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        try:
            async for chunk in result.stream(min_chunk_size=CHUNK):
                await response.write(bytes(chunk))
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as exc:  # the status line is out: all that is left is to cut the connection
            self._log(f"mirror serve: error: sending {key}: {self.where}: {_one_line(exc)}")
            if request.transport is not None:
                request.transport.close()
        return response


def object_key(path: str) -> str:
    """The key a URL path (percent-decoded) names, without leading or trailing slash; :class:`_Missing`
    for one that is not ours to serve (a dot segment, a backslash, a NUL, a temporary name)."""
    segments = [s for s in path.split("/") if s]
    if any(s in {".", ".."} or "\\" in s or "\0" in s or s.endswith(TEMP_SUFFIX) for s in segments):
        raise _Missing(path)
    return "/".join(segments)


def _validators(meta: ObjectMeta) -> Validators:
    """The object's ETag (made strong and quoted if the store did not) and Last-Modified."""
    etag = meta["e_tag"] or ""
    etag = etag.removeprefix("W/")
    if not etag.startswith('"'):
        etag = f'"{etag}"'
    return Validators(etag, int(meta["last_modified"].timestamp()))


def _one_line(exc: BaseException) -> str:
    """obstore's messages run over many lines (the whole error chain): the first one says it."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def serve(store: ObjectStore, where: str, host: str, port: int) -> None:
    """Serve the bucket until interrupted (KeyboardInterrupt propagates to the caller)."""
    server = ObjectServer(store, host, port, where=where)

    def started(url: str) -> None:
        print(f"serving {where} at {url}simple/ (Ctrl-C stops)", file=sys.stderr, flush=True)

    asyncio.run(_serve_forever(server, started))


__all__ = ["CHUNK", "ObjectServer", "object_key", "serve"]
