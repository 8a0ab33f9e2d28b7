"""``POST /legacy/``: the upload API ``twine upload --repository-url`` and ``uv publish --publish-url`` speak,
and ``read-auth``: HTTP basic auth against the users file.

An upload is a ``multipart/form-data`` body (warehouse's legacy API): ``:action=file_upload``,
``name``, ``version``, ``filetype``, ``sha256_digest`` and the file as the part ``content``. It is
spooled under ``state/uploads/`` (outside ``web/``: a client never sees it), its size bounded by
``[serve] max-upload-mb`` while it streams in, then published through the same engine as
``mirror add`` (:class:`~mirror.private.publish.PrivateIndex`) under the run lock.

Answers: 200 published; 401 no credentials; 403 wrong ones; 409 the file name exists (what
twine's ``--skip-existing`` recognizes, as from pypiserver); 413 too large; 400 anything refused
(with the reason as the status line's phrase, which twine and uv print); 503 a sync holds the
lock for longer than :data:`LOCK_WAIT` seconds; 507 the disk is full. Nothing is published
unless the answer is 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import BodyPartReader, web

from mirror._config import Config
from mirror._state import STATE_DB, Lock, State
from mirror._stateloss import check_state
from mirror._users import Users
from mirror.core.private import check_form, parse_distribution
from mirror.errors import AlreadyPublished, EnvironmentFault, LockHeld, MirrorError, Refused
from mirror.private.publish import PrivateIndex
from mirror.storage.base import Storage

UPLOAD_PATHS = ("/legacy/", "/legacy")
LOCK_WAIT = 60.0
"""Seconds an upload waits for a running sync to release the lock before it answers 503."""
_FIELD_BYTES = 64 * 1024
_MAX_PARTS = 500
_CHUNK = 1 << 16
_STALE_SPOOL_SECONDS = 3600.0
_REALM = {"WWW-Authenticate": 'Basic realm="mirror", charset="UTF-8"'}


class ReadAuth:
    """``read-auth = true``: every read needs a user of the users file (uploads check their own)."""

    def __init__(self, users: Users) -> None:
        self.users = users

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse | None:
        if urlsplit(request.raw_path).path in UPLOAD_PATHS:
            return None
        if await _authenticate(self.users, request.headers.get("Authorization")) is not None:
            return None
        return _answer(HTTPStatus.UNAUTHORIZED, "credentials required", _REALM)


class Uploads:
    """The upload endpoint; ``open_storage`` gives the mirror's storage for a state (the CLI's choice of backend)."""

    def __init__(
        self,
        config: Config,
        users: Users,
        open_storage: Callable[[State], Storage],
        *,
        lock_wait: float = LOCK_WAIT,
    ) -> None:
        self.config, self.users, self._open_storage = config, users, open_storage
        self.max_bytes = config.serve.max_upload_bytes
        self.lock_wait = lock_wait
        self._one_at_a_time = asyncio.Lock()
        _remove_stale_spools(config.state_dir / "uploads")

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse | None:
        if urlsplit(request.raw_path).path not in UPLOAD_PATHS:
            return None
        if request.method != "POST":
            return _answer(HTTPStatus.METHOD_NOT_ALLOWED, "uploads are POST", {"Allow": "POST"})
        authorization = request.headers.get("Authorization")
        if not authorization:
            return _answer(HTTPStatus.UNAUTHORIZED, "credentials required", _REALM)
        if await _authenticate(self.users, authorization) is None:
            return _answer(HTTPStatus.FORBIDDEN, "invalid user name or password")
        if request.content_length is not None and request.content_length > self.max_bytes:
            return _too_large(self.max_bytes)
        spool = self.config.state_dir / "uploads" / f"upload-{secrets.token_hex(8)}.part"
        try:
            return await self._receive(request, spool)
        finally:
            with contextlib.suppress(FileNotFoundError):
                spool.unlink()

    async def _receive(self, request: web.BaseRequest, spool: Path) -> web.StreamResponse:
        if not request.content_type.startswith("multipart/form-data"):
            return _answer(HTTPStatus.BAD_REQUEST, "expected a multipart/form-data upload")
        try:
            form, filename, sha256 = await self._read_form(request, spool)
        except _TooLarge:
            return _too_large(self.max_bytes)
        except Refused as exc:
            return _answer(HTTPStatus.BAD_REQUEST, str(exc))
        except ValueError as exc:  # aiohttp's complaint about a malformed multipart body
            return _answer(HTTPStatus.BAD_REQUEST, f"malformed multipart body: {exc}")
        except OSError as exc:
            return _answer(HTTPStatus.INSUFFICIENT_STORAGE, f"cannot spool the upload: {exc.strerror or exc}")
        action = form.get(":action")
        if action != "file_upload":
            return _answer(HTTPStatus.BAD_REQUEST, f"unsupported :action {str(action)[:40]!r} (only file_upload)")
        if filename is None:
            return _answer(HTTPStatus.BAD_REQUEST, "no file in the upload (the part named content)")
        form_sha = form.get("sha256_digest")
        if form_sha is not None and form_sha.strip().lower() != sha256:
            return _answer(HTTPStatus.BAD_REQUEST, f"{filename}: the bytes received do not match sha256_digest")
        return await self._publish(spool, filename, form)

    async def _read_form(self, request: web.BaseRequest, spool: Path) -> tuple[dict[str, str], str | None, str]:
        form: dict[str, str] = {}
        filename: str | None = None
        digest = hashlib.sha256()
        reader = await request.multipart()
        total = 0
        for _ in range(_MAX_PARTS):
            part = await reader.next()
            if part is None:
                return form, filename, digest.hexdigest()
            if not isinstance(part, BodyPartReader):
                raise Refused("nested multipart bodies are not an upload")
            if part.name == "content":
                if filename is not None:
                    raise Refused("more than one file in one upload")
                filename = part.filename or ""
                parse_distribution(filename)  # a bad or path-like name is refused before a byte is spooled
                total += await self._spool(part, spool, digest, self.max_bytes - total)
            else:
                value = await _read_field(part)
                total += len(value)
                if part.name and part.name not in form:
                    form[part.name] = value
            if total > self.max_bytes:
                raise _TooLarge
        raise Refused(f"more than {_MAX_PARTS} form fields")

    async def _spool(self, part: BodyPartReader, spool: Path, digest: hashlib._Hash, room: int) -> int:
        spool.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        fd = os.open(spool, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            while chunk := await part.read_chunk(_CHUNK):
                size += len(chunk)
                if size > room:
                    raise _TooLarge
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        return size

    async def _publish(self, spool: Path, filename: str, form: dict[str, str]) -> web.StreamResponse:
        try:
            check_form(parse_distribution(filename), form.get("name"), form.get("version"), form.get("filetype"))
        except Refused as exc:
            return _answer(HTTPStatus.BAD_REQUEST, str(exc))
        async with self._one_at_a_time:
            try:
                lock = await _take_lock(self.config.state_dir / "lock", self.lock_wait)
            except LockHeld as exc:
                return _answer(HTTPStatus.SERVICE_UNAVAILABLE, f"{exc}; try again later", {"Retry-After": "60"})
            try:
                return await self._publish_locked(spool, filename, form.get("sha256_digest"))
            finally:
                lock.__exit__(None, None, None)

    async def _publish_locked(self, spool: Path, filename: str, sha256: str | None) -> web.StreamResponse:
        db = self.config.state_dir / STATE_DB
        existed = db.exists()
        try:
            state = State(db)
        except MirrorError as exc:
            return _answer(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc))
        try:
            storage = self._open_storage(state)
            check_state(storage, self.config.web_location, self.config.state_dir, state if existed else None)
            async with storage.publishing():
                added = await PrivateIndex(self.config, state, storage).add(spool, filename, sha256=sha256)
        except AlreadyPublished as exc:
            return _answer(HTTPStatus.CONFLICT, f"File already exists: {exc}")
        except Refused as exc:
            return _answer(HTTPStatus.BAD_REQUEST, str(exc))
        except EnvironmentFault as exc:
            status = HTTPStatus.INSUFFICIENT_STORAGE if "disk" in str(exc) else HTTPStatus.INTERNAL_SERVER_ERROR
            return _answer(status, str(exc))
        except MirrorError as exc:
            return _answer(HTTPStatus.BAD_REQUEST, str(exc))
        finally:
            state.close()
        return _answer(HTTPStatus.OK, f"published {added.dist.filename} ({added.size} bytes, sha256 {added.sha256})")


class _TooLarge(Exception):
    pass


async def _authenticate(users: Users, authorization: str | None) -> str | None:
    """Remembered credentials at once; new ones through scrypt on a thread (the loop serves others meanwhile)."""
    known = users.remembered(authorization)
    if known is not None or not authorization:
        return known
    return await asyncio.to_thread(users.authenticate, authorization)


async def _take_lock(path: Path, wait: float) -> Lock:
    """The run lock, waiting up to ``wait`` seconds for a sync to finish."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        lock = Lock(path)
        try:
            return lock.__enter__()
        except LockHeld:
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.25)


async def _read_field(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        data += chunk
        if len(data) > _FIELD_BYTES:
            raise Refused(f"form field {str(part.name)[:40]!r} is longer than {_FIELD_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(f"form field {str(part.name)[:40]!r} is not UTF-8") from None


def _remove_stale_spools(directory: Path) -> None:
    """Spooled bodies of a server killed mid-upload (an hour old: never one in flight)."""
    with contextlib.suppress(OSError):
        for path in directory.glob("upload-*.part"):
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > _STALE_SPOOL_SECONDS:
                    path.unlink()


def _too_large(limit: int) -> web.Response:
    return _answer(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        f"upload larger than max-upload-mb ({limit // (1024 * 1024)} MiB); nothing written",
        {"Connection": "close"},
    )


def _answer(status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The message as the status line's phrase too: twine and uv show the phrase of a failed upload."""
    line = " ".join(message.split())
    phrase = "".join(c if 32 <= ord(c) < 127 else "?" for c in line)[:300]
    return web.Response(
        status=status,
        reason=phrase or status.phrase,
        text=f"{status.value} {line}\n",
        headers={**(headers or {}), "Content-Type": "text/plain; charset=utf-8"},
    )
