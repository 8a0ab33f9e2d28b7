"""The upstream client: httpx's API over a fast transport, negotiation, retries, verified streaming.

Plain httpx spends about 1 ms of CPU per request; over the aiohttp transport it is about a
third of that, which is the difference between being CPU-bound and network-bound on a
mirror's many small requests. ``http2 = true`` switches to httpx's own transport, for
upstreams where multiplexing matters more than per-request CPU.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import io
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn, Protocol, TypeVar

import aiohttp
import anyio
import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from mirror import __version__
from mirror._config import Config
from mirror._decoding import ACCEPT_ENCODING, BoundedDecoder, DecodeError
from mirror._stalls import Stalls
from mirror.core.models import Hashes
from mirror.core.parse import parse_serial
from mirror.errors import ConfigError, IntegrityError, UpstreamError
from mirror.storage.base import AsyncWriter

ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
JSON_TYPES = (
    "application/vnd.pypi.simple.v1+json",
    "application/vnd.pypi.simple.latest+json",
    "application/json",
)
HTML_TYPES = ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.latest+html", "text/html")
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_MAX_RETRY_AFTER = 300.0
_FIRST_BACKOFF = 0.25
# The most a body read returns at once (less when less has arrived).
_READ_SIZE = 1 << 18
_MAX_REDIRECTS = 5
_STALLED = "the upstream sent nothing within the timeout"
T = TypeVar("T")


class NotAPageType(UpstreamError):
    """The upstream answered a page request with something that is no index page (its Content-Type)."""


class TransientError(Exception):
    """Worth another try: a 5xx, a 429, a reset, a timeout."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Page:
    """A fetched index page, or a 304 (``body`` empty, ``not_modified`` true)."""

    url: str
    body: bytes
    format: str
    """``json`` or ``html``."""
    serial: int | None
    etag: str | None
    last_modified: str | None
    not_modified: bool = False


@dataclass(frozen=True, slots=True)
class Fetched:
    size: int
    sha256: str


@dataclass
class Counters:
    requests: int = 0
    bytes: int = 0


def user_agent(contact: str) -> str:
    extra = f"; {contact}" if contact else ""
    return f"mirror/{__version__} (PyPI mirror; httpx/{httpx.__version__}{extra})"


def _ssl_context(config: Config) -> ssl.SSLContext | bool:
    if not config.verify_tls:
        return False
    if config.ca_bundle is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(config.ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{config.source}: [mirror] ca-bundle {config.ca_bundle}: {exc}") from None


class _NoCookies(httpx.Cookies):
    """A mirror sends no cookies and keeps none; httpx would otherwise parse every response for them."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _Client(httpx.AsyncClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        pass


class Reply(Protocol):
    """What the upstream answered, whichever client asked: status, headers, the final URL, the raw body."""

    @property
    def status_code(self) -> int: ...

    def header(self, name: str) -> str | None:
        """Every value of the header ``name`` (case-insensitive), joined by ", " as httpx joins them; None if absent."""

    @property
    def url(self) -> str:
        """After redirects."""

    async def read_raw(self) -> bytes:
        """The next piece of the body as sent (still content-encoded), at most ``_READ_SIZE``; b"" at its end."""


class Client(Protocol):
    """One shared connection pool; ``stream`` raises TransientError or UpstreamError, nothing else of its own."""

    def stream(self, method: str, url: str, headers: Mapping[str, str]) -> AbstractAsyncContextManager[Reply]: ...

    async def aclose(self) -> None: ...


class _HttpxReply:
    __slots__ = ("_pieces", "_response", "status_code")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self._pieces: AsyncIterator[bytes] | None = None

    def header(self, name: str) -> str | None:
        value: str | None = self._response.headers.get(name)
        return value

    @property
    def url(self) -> str:
        return str(self._response.url)

    async def read_raw(self) -> bytes:
        if self._pieces is None:
            self._pieces = self._response.aiter_raw(_READ_SIZE)
        try:
            return await anext(self._pieces, b"")
        except httpx.TransportError as exc:
            raise TransientError(f"{self.url}: {type(exc).__name__} while reading: {exc}") from exc


class _HttpxClient:
    """httpx with its own transport: for ``http2 = true``, where multiplexing matters more than CPU."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @asynccontextmanager
    async def stream(self, method: str, url: str, headers: Mapping[str, str]) -> AsyncIterator[Reply]:
        try:
            async with self._client.stream(method, url, headers=headers) as response:
                yield _HttpxReply(response)
        except httpx.TooManyRedirects:
            raise UpstreamError(f"{url}: too many redirects") from None
        except httpx.UnsupportedProtocol as exc:
            raise UpstreamError(f"{url}: unsupported URL ({exc})") from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise TransientError(f"{url}: {type(exc).__name__}: {str(exc) or 'connection failed'}") from exc

    async def aclose(self) -> None:
        await self._client.aclose()


class _AiohttpReply:
    __slots__ = ("_response", "_stalls", "status_code")

    def __init__(self, response: aiohttp.ClientResponse, stalls: Stalls) -> None:
        self._response, self._stalls = response, stalls
        self.status_code = response.status

    def header(self, name: str) -> str | None:
        # A repeated header (two Content-Encodings: a body encoded twice) reads as httpx read it.
        values = self._response.headers.getall(name, ())
        return ", ".join(values) if values else None

    @property
    def url(self) -> str:
        return str(self._response.url)

    async def read_raw(self) -> bytes:
        wait = self._stalls.start()
        try:
            return await self._response.content.read(_READ_SIZE)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"{self.url}: {_aiohttp_error(exc)} while reading: {exc}") from exc
        except asyncio.CancelledError:
            if wait.timed_out():
                raise TransientError(f"{self.url}: ReadTimeout while reading: {_STALLED}") from None
            raise
        finally:
            self._stalls.stop(wait)


class _AiohttpClient:
    """aiohttp's client, called directly.

    httpx over the aiohttp transport spent as much CPU above the transport (building and merging
    the request, its URL and headers, the response wrappers) as aiohttp spent below it: about a
    third of the pages-only profile (benchmarks/README.md). The behaviour is the one that pair had:
    the same timeouts (the read timeout kept by mirror._stalls), pool, TLS context, redirect limit,
    and no decoding here (mirror._decoding).
    """

    def __init__(self, session: aiohttp.ClientSession, stalls: Stalls) -> None:
        self._session, self._stalls = session, stalls

    def stream(self, method: str, url: str, headers: Mapping[str, str]) -> _AiohttpExchange:
        return _AiohttpExchange(self._session, self._stalls, method, url, headers)

    async def aclose(self) -> None:
        self._stalls.close()
        await self._session.close()


class _AiohttpExchange:
    """One request and its response, as an async context manager.

    A class, not an ``asynccontextmanager`` generator: this runs once per request, and the
    generator's machinery cost as much as the rest of this module's per-request work. aiohttp's
    errors, raised on the way in or from the body inside, become ours on the way out.
    """

    __slots__ = ("_context", "_stalls", "_url")

    def __init__(
        self, session: aiohttp.ClientSession, stalls: Stalls, method: str, url: str, headers: Mapping[str, str]
    ) -> None:
        self._url, self._stalls = url, stalls
        self._context = session.request(method, url, headers=headers, max_redirects=_MAX_REDIRECTS)

    async def __aenter__(self) -> Reply:
        wait = self._stalls.start()
        try:
            return _AiohttpReply(await self._context.__aenter__(), self._stalls)
        except (aiohttp.ClientError, TimeoutError) as exc:
            _raise_ours(self._url, exc)
        except asyncio.CancelledError:
            if wait.timed_out():
                raise TransientError(f"{self._url}: ReadTimeout: {_STALLED}") from None
            raise
        finally:
            self._stalls.stop(wait)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            await self._context.__aexit__(kind, exc, traceback)
        except (aiohttp.ClientError, TimeoutError) as failure:
            _raise_ours(self._url, failure)
        if isinstance(exc, (aiohttp.ClientError, TimeoutError)):
            _raise_ours(self._url, exc)


def _raise_ours(url: str, exc: aiohttp.ClientError | TimeoutError) -> NoReturn:
    """Raise our error for an aiohttp error."""
    if isinstance(exc, aiohttp.TooManyRedirects):
        raise UpstreamError(f"{url}: too many redirects") from None
    if isinstance(exc, aiohttp.InvalidURL):
        raise UpstreamError(f"{url}: unsupported URL ({exc})") from None
    raise TransientError(f"{url}: {_aiohttp_error(exc)}: {str(exc) or 'connection failed'}") from exc


def _aiohttp_error(exc: BaseException) -> str:
    # The names httpx gave the same faults, so log lines read as before.
    if isinstance(exc, TimeoutError):
        return "ReadTimeout" if isinstance(exc, aiohttp.SocketTimeoutError) else "ConnectTimeout"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "ReadError"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "ConnectError"
    return type(exc).__name__


def make_client(config: Config) -> Client:
    # Only what mirror._decoding decodes in bounded pieces (httpx would add br/zstd when installed).
    headers = {"User-Agent": user_agent(config.contact), "Accept-Encoding": ACCEPT_ENCODING}
    verify = _ssl_context(config)
    limits = httpx.Limits(max_connections=config.workers, max_keepalive_connections=config.workers)
    if config.http2:
        try:
            return _HttpxClient(
                _Client(
                    http2=True,
                    verify=verify,
                    timeout=httpx.Timeout(config.timeout),
                    limits=limits,
                    headers=headers,
                    follow_redirects=True,
                )
            )
        except ImportError:
            raise ConfigError(f"{config.source}: [mirror] http2 = true needs the h2 package") from None
    # The TLS context httpx builds (certifi, or SSL_CERT_FILE/SSL_CERT_DIR), as the aiohttp transport did.
    context = httpx.create_ssl_context(verify=verify, trust_env=True)
    connector = aiohttp.TCPConnector(limit=config.workers, keepalive_timeout=limits.keepalive_expiry, ssl=context)
    # The read timeout is mirror._stalls's, not aiohttp's sock_read (a timer per chunk).
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=config.timeout, sock_read=None, connect=config.timeout)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers=headers,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
    )
    return _AiohttpClient(session, Stalls(config.timeout))


class Upstream:
    """One shared client; a limiter bounds concurrent requests to ``workers``."""

    def __init__(self, config: Config, client: Client | None = None) -> None:
        self._config = config
        self._client = client or make_client(config)
        # asyncio's own semaphore: taken without a trip through the event loop when a slot is free
        # (a CapacityLimiter yields on every acquire), and without anyio's cancellation check, which
        # looks up the current task: 2% of a sync's CPU at one acquire per request.
        self._limiter = asyncio.Semaphore(config.workers)
        self.counters = Counters()

    async def __aenter__(self) -> Upstream:
        return self

    async def __aexit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType]) -> None:
        await self._client.aclose()

    def spare(self) -> bool:
        """True when a request could start now, without waiting for a slot."""
        return not self._limiter.locked()

    async def _with_retries(self, once: Callable[[], Awaitable[T]]) -> T:
        """Run ``once``; on a transient fault, tenacity takes over for the remaining tries.

        The first try goes without tenacity's machinery: nearly every request succeeds at once,
        and a mirror makes hundreds of thousands of them.
        """
        try:
            return await once()
        except TransientError as exc:
            if self._config.retries == 0:
                raise
            first = exc
        await anyio.sleep(first.retry_after if first.retry_after is not None else _FIRST_BACKOFF)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self._config.retries),
            wait=_wait_honouring_retry_after(wait_exponential_jitter(multiplier=0.5, max=30.0, jitter=0.25)),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await once()
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_page(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> Page | None:
        """GET an index page (None on 404). Transient faults are retried; the body is size-bounded."""
        headers = _page_headers(etag, last_modified)

        async def read(response: Reply) -> bytes:
            return await self._read_bounded(response, self._config.max_page_bytes)

        return await self._with_retries(lambda: self._page_once(url, headers, read))

    async def root_head(self, url: str) -> tuple[int | None, str | None]:
        """The root index's size (Content-Length) and format (``json``/``html``), or None each where unknown.

        A GET whose body is not read (the connection is dropped): some index servers answer HEAD
        with a body, which breaks the connection for the next request.
        """

        async def once() -> tuple[int | None, str | None]:
            async with self._request("GET", url, {"Accept": ACCEPT}) as response:
                if response.status_code in _RETRY_STATUS:
                    _raise_for_status(response)
                if not 200 <= response.status_code < 300:
                    return None, None
                declared = response.header("content-length") or ""
                try:
                    kind: str | None = _page_format(response)
                except UpstreamError:
                    kind = None
                return (int(declared) if declared.isdigit() else None), kind

        return await self._with_retries(once)

    async def download_root(
        self, url: str, writer_factory: Callable[[], AsyncWriter], *, etag: str | None, last_modified: str | None
    ) -> Page | None:
        """Stream the root index into a writer (it can be tens of MB); the Page carries no body."""
        headers = _page_headers(etag, last_modified)

        async def read(response: Reply) -> bytes:
            await self._stream_into(response, writer_factory(), None, None, limit=self._config.max_root_bytes)
            return b""

        return await self._with_retries(lambda: self._page_once(url, headers, read))

    async def _page_once(
        self, url: str, headers: Mapping[str, str], read: Callable[[Reply], Awaitable[bytes]]
    ) -> Page | None:
        async with self._request("GET", url, headers) as response:
            if response.status_code == 404:
                return None
            meta = _page_meta(response)
            if response.status_code == 304:
                return Page(str(response.url), b"", "", *meta, not_modified=True)
            _raise_for_status(response)
            kind = _page_format(response)
            return Page(str(response.url), await read(response), kind, *meta)

    async def _read_bounded(self, response: Reply, limit: int) -> bytes:
        declared = response.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise UpstreamError(f"{response.url}: page of {int(declared)} bytes exceeds the {limit // 2**20} MB limit")
        # One growing buffer whose bytes getvalue() hands over without a copy: a list of chunks
        # and its join held every large page twice at its peak.
        body = io.BytesIO()
        async for chunk in _Body(response):
            if body.tell() + len(chunk) > limit:
                raise UpstreamError(f"{response.url}: page exceeds the {limit // 2**20} MB limit")
            body.write(chunk)
        self.counters.bytes += body.tell()
        return body.getvalue()

    async def download(
        self, url: str, writer_factory: Callable[[], AsyncWriter], size: int | None, hashes: Hashes
    ) -> Fetched | None:
        """Fetch a file into a fresh writer, verify size and hash, commit. None on 404.

        Transient faults restart the download from scratch; a mismatch raises IntegrityError
        (not retried here: the caller decides whether to try once more).
        """

        async def once() -> Fetched | None:
            async with self._request("GET", url, {}) as response:
                if response.status_code == 404:
                    return None
                _raise_for_status(response)
                return await self._stream_into(response, writer_factory(), size, hashes)

        return await self._with_retries(once)

    async def _stream_into(
        self,
        response: Reply,
        writer: AsyncWriter,
        size: int | None,
        hashes: Hashes | None,
        *,
        limit: int | None = None,
    ) -> Fetched:
        check = _Checker(str(response.url), size, hashes, limit)
        try:
            async for chunk in _Body(response):
                check.update(chunk)
                await writer.write(chunk)
            fetched = check.finish()
            await writer.commit()
        except BaseException:
            writer.abort()
            raise
        self.counters.bytes += fetched.size
        return fetched

    def _request(self, method: str, url: str, headers: Mapping[str, str]) -> _Limited:
        return _Limited(self, method, url, headers)


class _Limited:
    """A request within the upstream's limit on concurrent requests: ``async with`` gives its Reply."""

    __slots__ = ("_exchange", "_headers", "_method", "_upstream", "_url")

    def __init__(self, upstream: Upstream, method: str, url: str, headers: Mapping[str, str]) -> None:
        self._upstream, self._method, self._url, self._headers = upstream, method, url, headers
        self._exchange: AbstractAsyncContextManager[Reply] | None = None

    async def __aenter__(self) -> Reply:
        upstream = self._upstream
        await upstream._limiter.acquire()
        try:
            upstream.counters.requests += 1
            self._exchange = upstream._client.stream(self._method, self._url, self._headers)
            return await self._exchange.__aenter__()
        except BaseException:
            self._exchange = None
            upstream._limiter.release()
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        assert self._exchange is not None
        try:
            await self._exchange.__aexit__(kind, exc, traceback)
        finally:
            self._upstream._limiter.release()


class _Body:
    """The decoded body, in pieces of at most ``_READ_SIZE`` (see :mod:`mirror._decoding`).

    An async iterator class rather than an async generator: asyncio registers every async
    generator for finalization on its first step (a WeakSet entry), two per request before.
    """

    __slots__ = ("_decoder", "_pieces", "_response")

    def __init__(self, response: Reply) -> None:
        self._response = response
        self._decoder = BoundedDecoder(response.header("content-encoding") or "", _READ_SIZE)
        self._pieces: Iterator[bytes] | None = None

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._pieces is not None:
                try:
                    piece = next(self._pieces, None)
                except DecodeError as exc:
                    raise TransientError(f"{self._response.url}: body does not decode: {exc}") from exc
                if piece is not None:
                    return piece
                self._pieces = None
            chunk = await self._response.read_raw()
            if not chunk:
                raise StopAsyncIteration
            if self._decoder.identity:
                return chunk
            self._pieces = self._decoder.decode(chunk)


class _Checker:
    """Counts and hashes a body while it streams; stops early when it outgrows its declared size."""

    def __init__(self, url: str, size: int | None, hashes: Hashes | None, limit: int | None = None) -> None:
        self._url, self._size, self._limit = url, size, limit
        self._sha256 = hashlib.sha256()
        self._other: tuple[str, str, Any] | None = None
        expected = dict(hashes or {})
        self._expected_sha256 = expected.get("sha256")
        if self._expected_sha256 is None:
            for name in ("sha512", "sha384", "blake2b", "sha3_256", "sha224", "sha1", "md5"):
                if name in expected:
                    self._other = (name, expected[name], hashlib.new(name))
                    break
        self._count = 0

    def update(self, chunk: bytes) -> None:
        self._count += len(chunk)
        if self._size is not None and self._count > self._size:
            raise IntegrityError(f"{self._url}: more bytes than the declared {self._size}")
        if self._limit is not None and self._count > self._limit:
            raise UpstreamError(f"{self._url}: more than {self._limit // 2**20} MB (max-root-mb)")
        self._sha256.update(chunk)
        if self._other is not None:
            self._other[2].update(chunk)

    def finish(self) -> Fetched:
        if self._size is not None and self._count != self._size:
            raise IntegrityError(f"{self._url}: got {self._count} bytes, expected {self._size}")
        digest = self._sha256.hexdigest()
        if self._expected_sha256 is not None and digest != self._expected_sha256:
            raise IntegrityError(f"{self._url}: sha256 mismatch (got {digest[:16]}…)")
        if self._other is not None:
            name, want, hasher = self._other
            if hasher.hexdigest() != want:
                raise IntegrityError(f"{self._url}: {name} mismatch")
        return Fetched(self._count, digest)


def _raise_for_status(response: Reply) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in _RETRY_STATUS:
        raise TransientError(f"{response.url}: HTTP {status}", _retry_after(response))
    raise UpstreamError(f"{response.url}: HTTP {status}")


def _retry_after(response: Reply) -> float | None:
    value = response.header("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return min(float(value), _MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), _MAX_RETRY_AFTER))


def _wait_honouring_retry_after(base: Callable[[RetryCallState], float]) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return exc.retry_after
        return base(state)

    return wait


def _page_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    headers = {"Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def _page_meta(response: Reply) -> tuple[int | None, str | None, str | None]:
    return (
        parse_serial(response.header("x-pypi-last-serial")),
        response.header("etag"),
        response.header("last-modified"),
    )


def _page_format(response: Reply) -> str:
    content_type = (response.header("content-type") or "").split(";", 1)[0].strip().lower()
    if content_type in JSON_TYPES:
        return "json"
    if content_type in HTML_TYPES:
        return "html"
    raise NotAPageType(f"{response.url}: unexpected Content-Type {content_type or '(none)'!r} for an index page")
