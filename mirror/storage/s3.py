"""S3-compatible object storage (AWS S3, Ceph RGW, SeaweedFS, MinIO, R2) on obstore.

Keys are the paths under ``web/`` exactly (under ``prefix/`` when one is set), so a web server
or CDN in front of the bucket serves the same layout as nginx serves from disk.

Publication: a PUT is atomic per object, so there is no temp-and-rename. A download is held in
memory up to :data:`SINGLE_PUT` bytes and sent as one PUT on commit; past that it streams as a
multipart upload whose completion waits for :meth:`S3Writer.commit`, which the caller makes only
after size and sha256 are verified: an aborted or killed upload is never listed nor served
(S3 keeps an incomplete multipart upload invisible; a bucket lifecycle rule
``AbortIncompleteMultipartUpload`` reclaims the parts a killed run left).

Every object carries the ``Content-Type`` and ``Cache-Control`` of :mod:`mirror.core.objects`
and its sha256 as user metadata (``x-amz-meta-sha256``).

Client: obstore (Rust ``object_store``), chosen by measurement (issue 15: 3,300-3,500 PUT/s at 32
concurrent against SeaweedFS, aiobotocore 720-1,300). It is the ``s3`` extra: most mirrors are on
disk and need no native S3 client. Throttling (503 SlowDown) and other 5xx answers are retried by
obstore with exponential backoff (:data:`_RETRY`).
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import hashlib
import io
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from mirror.core import objects
from mirror.core.verify import walk_key
from mirror.errors import EnvironmentFault, IntegrityError
from mirror.storage.base import ChangeHook, Entry, check_path

if TYPE_CHECKING:
    from obstore import Attributes, ReadableFile
    from obstore.store import S3Store

    from mirror._config import StorageConfig

SINGLE_PUT = 8 << 20
"""A file up to this size is one PUT; a larger one a multipart upload of parts this size."""
_PART_CONCURRENCY = 2
"""Parts of one upload in flight: with the engine's workers this bounds the memory uploads hold."""
_QUEUE_CHUNKS = 4
"""Download chunks waiting for the multipart upload (backpressure towards the download)."""
_READ_CHUNK = 1 << 20
_RETRY: dict[str, Any] = {
    "max_retries": 10,
    "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=15), "base": 2},
    "retry_timeout": timedelta(minutes=3),
}
_CLIENT: dict[str, Any] = {"connect_timeout": "10s", "timeout": "300s"}
_EXTRA = "the S3 backend needs obstore: pip install 'mirror[s3]'"


def open_s3(config: StorageConfig, *, on_change: ChangeHook | None = None) -> S3Storage:
    """The bucket ``config`` names, checked to exist and answer with these credentials."""
    try:
        from obstore.store import S3Store
    except ImportError:
        raise EnvironmentFault(_EXTRA) from None
    options: dict[str, Any] = {"region": config.region}
    if config.endpoint_url:
        options["endpoint"] = config.endpoint_url
    options.update(_profile_credentials())
    client = dict(_CLIENT, allow_http=config.endpoint_url.startswith("http://"))
    where = f"s3://{config.bucket}/{config.prefix}".rstrip("/")
    try:
        store = S3Store(
            config.bucket,
            prefix=config.prefix or None,
            client_options=cast(Any, client),
            retry_config=cast(Any, _RETRY),
            **options,
        )
    except Exception as exc:
        raise EnvironmentFault(f"{where}: {_reason(exc)}") from None
    storage = S3Storage(store, where, on_change=on_change)
    storage.check_bucket()
    return storage


def _profile_credentials() -> dict[str, str]:
    """Keys from the AWS shared credentials file when the environment names none.

    object_store reads ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, web identity and the
    container and instance metadata services itself; the profile file (``AWS_PROFILE``, or
    ``default``) is the usual source it lacks.
    """
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return {}
    path = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials")
    profile = os.environ.get("AWS_PROFILE") or "default"
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, configparser.Error):
        return {}
    if not parser.has_section(profile):
        return {}
    section = parser[profile]
    found = {
        "access_key_id": section.get("aws_access_key_id", ""),
        "secret_access_key": section.get("aws_secret_access_key", ""),
        "session_token": section.get("aws_session_token", ""),
    }
    return {key: value for key, value in found.items() if value}


# -- errors ----------------------------------------------------------------------------------------

_CODE = re.compile(r"<Code>([^<]{1,64})</Code>")
_STATUS = re.compile(r"status code: (\d{3})")
_REASONS = {
    "NoSuchBucket": "the bucket does not exist",
    "InvalidAccessKeyId": "the access key is not known to the server (bad credentials)",
    "SignatureDoesNotMatch": "the server refused the request signature (bad secret key)",
    "AccessDenied": "access denied (the credentials lack permission)",
    "ExpiredToken": "the credentials have expired",
    "InvalidToken": "the session token is invalid",
    "QuotaExceeded": "the bucket's quota is exceeded",
    "EntityTooLarge": "the server refused the object's size (quota or limit)",
    "XMinioStorageFull": "the storage is full",
    "XMinioAdminBucketQuotaExceeded": "the bucket's quota is exceeded",
    "InsufficientStorage": "the storage is full",
    "SlowDown": "the server kept throttling requests (503 SlowDown) past every retry",
}


def _reason(exc: BaseException) -> str:
    """One line for what obstore raised: the S3 error code read plainly, or its first line."""
    text = str(exc)
    code = _CODE.search(text)
    if code is not None:
        known = _REASONS.get(code.group(1))
        if known is not None:
            return known
        status = _STATUS.search(text)
        return f"S3 error {code.group(1)}" + (f" (HTTP {status.group(1)})" if status else "")
    if "quota" in text.lower():
        return "the bucket's quota is exceeded"
    if "error sending request" in text or "Connection refused" in text or "dns error" in text:
        return "cannot reach the S3 endpoint"
    if "timed out" in text.lower() or "timeout" in text.lower():
        return "the S3 endpoint timed out"
    status = _STATUS.search(text)
    if status is not None:
        return f"the S3 server answered HTTP {status.group(1)}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:200]


# -- writing ---------------------------------------------------------------------------------------


class S3Writer:
    """One download: buffered, or streamed into a multipart upload that completes only on commit."""

    def __init__(self, storage: S3Storage, path: str, sha256: str | None) -> None:
        self._storage, self._path, self._expected = storage, path, sha256
        self._digest = hashlib.sha256()
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._send: MemoryObjectSendStream[bytes] | None = None
        self._upload: asyncio.Task[object] | None = None
        self._committing = False
        self._done = False

    async def write(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        if self._send is None:
            self._buffer.append(chunk)
            self._buffered += len(chunk)
            if self._buffered > SINGLE_PUT:
                await self._start_multipart()
            return
        await self._send_chunk(chunk)

    async def _send_chunk(self, chunk: bytes) -> None:
        """Hand a chunk to the upload; if the upload fails meanwhile, its error (it stops reading: never wait on it)."""
        assert self._send is not None and self._upload is not None
        sending = asyncio.ensure_future(self._send.send(chunk))
        try:
            await asyncio.wait({sending, self._upload}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not sending.done():
                sending.cancel()
        if sending.done() and not sending.cancelled() and sending.exception() is None:
            return
        await self._upload  # raises the upload's error, in one line
        raise EnvironmentFault(f"{self._storage.where}/{self._path}: the upload stopped early")

    async def _start_multipart(self) -> None:
        send, receive = anyio.create_memory_object_stream[bytes](_QUEUE_CHUNKS)
        self._send = send
        self._upload = asyncio.ensure_future(self._storage.put_stream(self._path, self._parts(receive), self._expected))
        pending, self._buffer, self._buffered = self._buffer, [], 0
        for chunk in pending:
            await self._send_chunk(chunk)

    async def _parts(self, receive: MemoryObjectReceiveStream[bytes]) -> AsyncIterator[bytes]:
        async with receive:
            async for chunk in receive:
                yield chunk
        if not self._committing:  # closed by abort: obstore aborts the multipart upload
            raise _Aborted

    async def commit(self) -> None:
        digest = self._digest.hexdigest()
        if self._expected is not None and digest != self._expected:
            self.abort()
            raise IntegrityError(f"{self._path}: sha256 {digest} is not the expected {self._expected}")
        if self._send is None:
            body, self._buffer = b"".join(self._buffer), []
            await self._storage.put_async(self._path, body, digest)
        else:
            assert self._upload is not None
            self._committing = True
            self._send.close()
            await self._upload
        self._done = True
        self._storage.tell(self._path, False)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._buffer.clear()
        if self._send is not None and self._upload is not None:
            self._send.close()
            self._storage.forget_later(self._upload)


class _RawObject(io.RawIOBase):
    """obstore's readable object as a raw file, so that it buffers, closes and works as a context manager."""

    def __init__(self, reader: ReadableFile) -> None:
        self._reader = reader

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._reader.read(len(buffer))
        except Exception as exc:
            raise OSError(_reason(exc)) from None
        size = len(data)
        memoryview(buffer)[:size] = memoryview(data)
        return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._reader.seek(offset, whence)

    def tell(self) -> int:
        return self._reader.tell()

    def close(self) -> None:
        self._reader.close()
        super().close()


class _Aborted(Exception):
    """Ends an aborted download's part stream, so that obstore aborts its multipart upload."""


# -- the storage -----------------------------------------------------------------------------------


class S3Storage:
    """The ``web/`` tree as objects in one bucket: implements :class:`~mirror.storage.base.Storage`."""

    temp_names = False

    def __init__(self, store: S3Store, where: str, *, on_change: ChangeHook | None = None) -> None:
        import obstore

        self._obs = obstore
        self._store = store
        self.where = where
        """``s3://bucket/prefix``, for messages."""
        self._on_change = on_change
        self._aborting: set[asyncio.Future[object]] = set()

    @property
    def store(self) -> S3Store:
        """The obstore client on the bucket (and prefix): ``mirror serve`` reads through it."""
        return self._store

    def _fault(self, exc: BaseException, path: str = "") -> EnvironmentFault:
        where = f"{self.where}/{path}" if path else self.where
        return EnvironmentFault(f"{where}: {_reason(exc)}")

    def check_bucket(self) -> None:
        """One request that fails plainly when the bucket, the endpoint or the credentials are wrong."""
        try:
            next(iter(self._obs.list(self._store, "simple/index.html", chunk_size=1)), None)
        except Exception as exc:
            raise self._fault(exc) from None

    def tell(self, path: str, deleted: bool) -> None:
        if self._on_change is not None:
            self._on_change(path, deleted)

    def _attributes(self, path: str, sha256: str | None) -> Attributes:
        attributes: Attributes = {
            "Content-Type": objects.content_type(path),
            "Cache-Control": objects.cache_control(path),
        }
        if sha256 is not None:
            attributes["sha256"] = sha256
        return attributes

    # -- what the writers call --------------------------------------------------------------------

    async def put_async(self, path: str, body: bytes, sha256: str) -> None:
        key = check_path(path)
        try:
            await self._obs.put_async(
                self._store, key, body, attributes=self._attributes(path, sha256), use_multipart=False
            )
        except Exception as exc:
            raise self._fault(exc, path) from None

    async def put_stream(self, path: str, parts: AsyncIterator[bytes], sha256: str | None) -> None:
        key = check_path(path)
        try:
            await self._obs.put_async(
                self._store,
                key,
                parts,
                attributes=self._attributes(path, sha256),
                use_multipart=True,
                chunk_size=SINGLE_PUT,
                max_concurrency=_PART_CONCURRENCY,
            )
        except _Aborted:
            raise
        except Exception as exc:
            if isinstance(exc.__cause__, _Aborted) or "_Aborted" in str(exc):
                raise _Aborted from None
            raise self._fault(exc, path) from None

    def forget_later(self, upload: asyncio.Future[object]) -> None:
        """An aborted upload winds down (obstore aborts it) on its own; :meth:`publishing` waits for it."""
        self._aborting.add(upload)
        upload.add_done_callback(self._settled)

    def _settled(self, upload: asyncio.Future[object]) -> None:
        self._aborting.discard(upload)
        if not upload.cancelled():
            upload.exception()  # retrieved: an aborted upload's failure is expected

    # -- the protocol -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def publishing(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            while self._aborting:
                await asyncio.wait(list(self._aborting))

    def open_async_writer(self, path: str, sha256: str | None = None) -> S3Writer:
        return S3Writer(self, check_path(path), sha256)

    async def write_pages(self, pages: Iterable[tuple[str, bytes]]) -> None:
        pending = list(pages)
        for path, body in pending:  # in order: JSON, then both HTML copies
            await self.put_async(path, body, hashlib.sha256(body).hexdigest())
        for path, _ in pending:
            self.tell(path, False)

    def write_atomic(self, path: str, chunks: Iterable[bytes]) -> None:
        """Spooled (to a temporary file past :data:`SINGLE_PUT`) and hashed, then one upload with its sha256."""
        check_path(path)
        digest = hashlib.sha256()
        with tempfile.SpooledTemporaryFile(max_size=SINGLE_PUT) as spool:
            for chunk in chunks:
                digest.update(chunk)
                spool.write(chunk)
            spool.seek(0)
            self._put_file(path, cast(IO[bytes], spool), digest.hexdigest())
        self.tell(path, False)

    def _put_file(self, path: str, source: IO[bytes] | Path, sha256: str) -> None:
        try:
            self._obs.put(
                self._store,
                path,
                source,
                attributes=self._attributes(path, sha256),
                chunk_size=SINGLE_PUT,
                max_concurrency=_PART_CONCURRENCY,
            )
        except Exception as exc:
            raise self._fault(exc, path) from None

    def move_in(self, path: str, source: Path) -> bool:
        check_path(path)
        digest = hashlib.sha256()
        try:
            with source.open("rb") as handle:
                while block := handle.read(_READ_CHUNK):
                    digest.update(block)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise EnvironmentFault(f"cannot read {source}: {exc.strerror}") from None
        self._put_file(path, source, digest.hexdigest())
        source.unlink()
        self.tell(path, False)
        return True

    def size(self, path: str) -> int | None:
        key = check_path(path)
        try:
            meta = self._obs.head(self._store, key)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._fault(exc, path) from None
        return int(meta["size"])

    def sha256(self, path: str) -> str | None:
        """The sha256 the object was published with (its metadata), or None: missing, or not recorded."""
        key = check_path(path)
        try:
            result = self._obs.get(self._store, key, options={"head": True})
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._fault(exc, path) from None
        return result.attributes.get("sha256")

    def read(self, path: str) -> Iterator[bytes]:
        key = check_path(path)
        try:
            result = self._obs.get(self._store, key)
            for chunk in result.stream(min_chunk_size=_READ_CHUNK):
                yield bytes(chunk)
        except FileNotFoundError:
            raise EnvironmentFault(f"{self.where}/{path}: no such object") from None
        except EnvironmentFault:
            raise
        except Exception as exc:
            raise self._fault(exc, path) from None

    def open_seekable(self, path: str) -> IO[bytes]:
        """Ranged GETs behind a buffer: reading a wheel's zip directory fetches its tail, not the wheel."""
        key = check_path(path)
        try:
            reader = self._obs.open_reader(self._store, key, buffer_size=_READ_CHUNK)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise OSError(f"{self.where}/{path}: {_reason(exc)}") from None
        return cast(IO[bytes], io.BufferedReader(_RawObject(reader), _READ_CHUNK))

    def delete(self, path: str) -> None:
        key = check_path(path)
        try:
            self._obs.delete(self._store, key)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._fault(exc, path) from None
        self.tell(path, True)  # also when it was already gone: a crash may have lost the first record

    def _listing(self, directory: str) -> tuple[list[str], list[tuple[str, int]]]:
        """Subdirectory names and (file name, size) directly in ``directory``: one delimited listing."""
        prefix = f"{check_path(directory)}/" if directory else ""
        try:
            found = self._obs.list_with_delimiter(self._store, prefix or None)
        except Exception as exc:
            raise self._fault(exc, directory) from None
        dirs = [p.rstrip("/")[len(prefix) :] for p in found["common_prefixes"]]
        # SeaweedFS lists a directory (one a deletion emptied) as an object named like it: skipped.
        files = [
            (meta["path"][len(prefix) :], int(meta["size"]))
            for meta in found["objects"]
            if meta["path"].startswith(prefix)
        ]
        return dirs, files

    def scan(self, directory: str) -> Iterator[Entry]:
        dirs, files = self._listing(directory)
        for name in dirs:
            yield Entry(name, True, 0)
        for name, size in files:
            yield Entry(name, False, size)

    def files_in(self, directory: str) -> list[str]:
        _, files = self._listing(directory)
        return sorted(f"{directory}/{name}" for name, _ in files)

    def remove_temps(self, directory: str) -> int:
        """None to remove: an unfinished upload is an incomplete multipart upload, never an object."""
        return 0

    def walk(self, top: str, after: str = "") -> Iterator[tuple[str, int]]:
        """Every object under ``top`` as (path, size), in sorted path order, only those after ``after``.

        A directory listing per level costs a request per directory: on the ``packages/ab/cd/<hash>/``
        layout, about one per file. Instead each directory directly in ``top`` is listed flat
        (paginated, 1,000 keys a request) and sorted here: the order S3 promises (UTF-8 bytes,
        the same as code points) is not what every server keeps (SeaweedFS lists depth first,
        ``a/x`` before ``a-b``). Memory: the keys of one such directory, 1/256 of the mirror.
        """
        dirs, files = self._listing(top)
        prefix = f"{top}/" if top else ""
        entries = [(name, True, 0) for name in dirs] + [(name, False, size) for name, size in files]
        entries.sort(key=lambda e: walk_key(e[0], e[1]))
        for name, is_dir, size in entries:
            path = prefix + name
            if not is_dir:
                if path > after:
                    yield path, size
                continue
            below = path + "/"
            if below < after and not after.startswith(below):
                continue  # every key below sorts before the cursor: done in an earlier pass
            yield from sorted((p, n) for p, n in self._flat(below) if p > after)

    def _flat(self, prefix: str) -> Iterator[tuple[str, int]]:
        try:
            for batch in self._obs.list(self._store, prefix, chunk_size=1000):
                for meta in batch:
                    if meta["path"].startswith(prefix):  # not SeaweedFS's entry for an emptied directory
                        yield meta["path"], int(meta["size"])
        except Exception as exc:
            raise self._fault(exc, prefix) from None
