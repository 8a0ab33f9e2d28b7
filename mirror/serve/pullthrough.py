"""Pull-through for ``mirror serve``: what the tree lacks is fetched through the sync engine on request.

- ``/simple/<name>/`` of a project the tree does not hold, that the filters allow: its page is
  fetched, filtered, planned and published by :meth:`Syncer.pull` (the very code of ``mirror
  sync``, with its guards and the name reservations of private projects) and answered; the root
  follows once the burst of pulls is over (at most :data:`ROOT_MAX_DELAY` into it), one write for
  all of them (it lists only published pages, so the order of publication holds). The project
  joins the wanted set (``pulled`` in state), so ``mirror sync`` keeps it fresh.
- Its files are not fetched with the page: the page links them and state records them as lazy
  (``lazy`` in state); the first request for one fetches, verifies (sha256 and size), publishes
  and serves it (:meth:`Syncer.fetch_lazy`).
- A pulled-through page older than ``pull-through-max-age`` is refreshed on request with a
  conditional request; an upstream that does not answer gets one log line, and what the tree
  holds is served.
- Concurrent requests for one page or one file make one upstream fetch (single flight); pulls of
  different projects run side by side (up to ``workers``), and share one write of the root.

Everything that writes runs under the run lock (``state/lock``), taken when pull-through work
starts and given back as soon as none is left, so ``mirror sync`` from the timer runs between
requests. While a sync holds it, a missing page or file waits up to :data:`LOCK_WAIT` seconds,
then is answered 503 with ``Retry-After``; a stale page is served as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp import web
from packaging.utils import NormalizedName

from mirror._config import Config
from mirror._http import Upstream
from mirror._plugins import load_chain
from mirror._state import STATE_DB, Lock, State
from mirror.core import layout
from mirror.core.filters import FilterChain
from mirror.errors import LockHeld, MirrorError, UnsafeName
from mirror.storage.fs import FileStorage
from mirror.sync.engine import PullResult, Syncer

LOCK_WAIT = 10.0
"""Seconds a request for something missing waits for a running ``mirror sync`` to give the lock back."""
RETRY_AFTER = 30
"""What a 503 tells the client to wait (pip and uv retry a 503 by themselves)."""
_DOWN_BACKOFF = 30.0
"""After the upstream failed, stale pages are served without asking it again for this long."""
ROOT_DELAY = 0.05
"""Seconds a root write waits for more pulls to finish: a burst of cold pages shares one write."""
ROOT_MAX_DELAY = 1.0
"""The longest a root write waits for a burst of pulls to end."""
LINGER = 0.25
"""Seconds the lock and state stay open after the last pull-through work: pip asks for a project's
dependencies one after another, and each would otherwise open the state and take the lock again.
The root is written before each answer all the same; a sync waits at most this long for the lock."""


class Busy(Exception):
    """A sync holds the lock for longer than a request may wait."""


@dataclass
class _Session:
    """The lock, the state and one :class:`Syncer`, shared by all pull-through work in flight."""

    lock: Lock
    state: State
    syncer: Syncer
    users: int = 0
    closing: asyncio.TimerHandle | None = None


class _Silent:
    """The engine's reporter here: pull-through logs its own one line per event."""

    def start(self, projects: int, deletions: int) -> None: ...
    def project_done(self, name: str, outcome: str, message: str | None) -> None: ...
    def file_done(self, path: str, size: int) -> None: ...
    def info(self, message: str) -> None: ...
    def detail(self, message: str) -> None: ...
    def close(self) -> None: ...


class PullThrough:
    """Answers for what the tree lacks; :meth:`prepare` is asked before every GET/HEAD is served."""

    def __init__(
        self, config: Config, *, log: Callable[[str], None] | None = None, lock_wait: float = LOCK_WAIT
    ) -> None:
        self.config, self._lock_wait = config, lock_wait
        self.web = config.web.resolve()
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._filters: FilterChain | None = None
        self._upstream: Upstream | None = None
        self._opener: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(config.workers)
        self._root_writer: asyncio.Task[None] | None = None
        self._session: _Session | None = None
        self._closing: asyncio.Task[None] | None = None
        self._pages: dict[NormalizedName, asyncio.Task[PullResult]] = {}
        self._files: dict[str, asyncio.Task[bool]] = {}
        self._down_until = 0.0
        self._reader: sqlite3.Connection | None = None

    async def start(self) -> None:
        self.config.require_upstream()
        self._filters = load_chain(self.config.filters, str(self.config.source))
        self._upstream = await Upstream(self.config).__aenter__()

    async def close(self) -> None:
        if self._root_writer is not None:
            await self._root_writer
        for task in [*self._pages.values(), *self._files.values()]:
            task.cancel()
        session = self._session
        if session is not None and session.users == 0:
            if session.closing is not None:
                session.closing.cancel()
            self._end(session)
        if self._closing is not None:
            await self._closing
        if self._upstream is not None:
            await self._upstream.__aexit__(None, None, None)  # type: ignore[arg-type]
        if self._reader is not None:
            self._reader.close()

    @property
    def idle(self) -> bool:
        """No pull-through work in flight and the lock given back (``mirror sync`` can take it)."""
        return self._session is None and (self._closing is None or self._closing.done())

    # -- what the static server asks --------------------------------------------------------------

    async def prepare(self, path: str, query: str) -> web.StreamResponse | None:
        """Make ``path`` servable from the tree if pull-through can; a response only when it cannot.

        None: serve it from the tree as usual (it is there, or it is nothing pull-through knows).
        """
        segments = path.split("/")
        if len(segments) == 4 and segments[:2] == ["", layout.SIMPLE] and segments[2] and segments[3] == "":
            return await self._page(segments[2], query)
        if len(segments) > 2 and segments[:2] == ["", layout.PACKAGES] and segments[-1]:
            return await self._file(path.lstrip("/"))
        return None

    # -- pages ------------------------------------------------------------------------------------

    async def _page(self, segment: str, query: str) -> web.StreamResponse | None:
        try:
            name = layout.project_name(segment)
        except UnsafeName:
            return None  # nothing pull-through may fetch (".." included): the tree answers (404)
        present = (self.web / layout.SIMPLE / segment / layout.PAGE_FILES[2]).is_file()
        if present and not self._stale(segment):
            return None
        if name != segment:
            if present:
                return None
            # The upstream's canonical URL, as PyPI redirects: pip and uv always ask with it.
            return _status(
                HTTPStatus.MOVED_PERMANENTLY, {"Location": f"/simple/{name}/" + (f"?{query}" if query else "")}
            )
        if present and time.monotonic() < self._down_until:
            return None
        try:
            result = await self.pull(name)
        except Busy:
            if present:
                return None
            return _status(HTTPStatus.SERVICE_UNAVAILABLE, {"Retry-After": str(RETRY_AFTER)})
        if result.ok:
            return None
        if result.kind == "failed":
            self._down_until = time.monotonic() + _DOWN_BACKOFF
            if present:
                self._log(f"mirror serve: upstream unreachable, serving the page held for {name}: {result.message}")
                return None
            self._log(f"mirror serve: pull-through of {name} failed: {result.message}")
            return _status(HTTPStatus.BAD_GATEWAY)
        if present:
            return None  # refused or gone upstream now: the next sync decides; the tree answers meanwhile
        return _status(HTTPStatus.NOT_FOUND)

    def _stale(self, segment: str) -> bool:
        """A pulled-through page last fetched more than ``pull-through-max-age`` seconds ago."""
        checked = self._read("SELECT checked FROM pulled WHERE name = ?", segment)
        return isinstance(checked, float | int) and time.time() - checked > self.config.serve.pull_through_max_age

    async def pull(self, name: NormalizedName) -> PullResult:
        """Pull one project's page, once however many ask at the same time."""
        task = self._pages.get(name)
        if task is None:
            # A task of its own: a client that goes away does not cancel the pull others wait for.
            task = self._pages[name] = asyncio.ensure_future(self._pull_one(name))
            task.add_done_callback(lambda _: self._pages.pop(name, None))
        return await asyncio.shield(task)

    async def _pull_one(self, name: NormalizedName) -> PullResult:
        try:
            async with self._session_for() as syncer:
                async with self._slots:
                    result = await syncer.pull(name)
                if result.ok:
                    self._root_soon()
                return result
        except Busy:
            raise
        except Exception as exc:  # the upstream went away mid-pull (NotAnIndex, UpstreamUnreachable), a full disk
            return PullResult(name, "failed", _one_line(exc))

    def _root_soon(self) -> None:
        """Have the root list what was just published, in one write for the pulls that finish meanwhile.

        The answer does not wait for it: the page is published, the root (which may only ever list
        published pages) follows when the burst is over; pip and uv never read the root.
        """
        if self._root_writer is None or self._root_writer.done():
            self._root_writer = asyncio.ensure_future(self._write_root())

    async def _write_root(self) -> None:
        try:
            async with self._session_for() as syncer:  # the lock stays taken until the root is written
                # Once the burst is over (or ROOT_MAX_DELAY into it): rewriting the root, which lists
                # every published project, between the pages of a burst is CPU the answers wait for.
                deadline = time.monotonic() + ROOT_MAX_DELAY
                await asyncio.sleep(ROOT_DELAY)
                while self._pages and time.monotonic() < deadline:
                    await asyncio.sleep(ROOT_DELAY)
                syncer.write_root_if_changed()
        except (Busy, MirrorError, OSError) as exc:  # the session's end writes it, or the next sync
            self._log(f"mirror serve: error: writing the root index: {_one_line(exc)}")

    # -- files ------------------------------------------------------------------------------------

    async def _file(self, rel: str) -> web.StreamResponse | None:
        if any(part in {"", ".", ".."} or "\\" in part or "\0" in part for part in rel.split("/")):
            return None  # never a path state records: the tree answers (404)
        if (self.web / rel).is_file():
            return None
        if self._read("SELECT 1 FROM lazy WHERE path = ?", rel) is None:
            return None  # no page links it lazily: the tree answers (404)
        task = self._files.get(rel)
        if task is None:
            # A task of its own: a client that goes away does not cancel the fetch others wait for.
            task = self._files[rel] = asyncio.ensure_future(self._fetch(rel))
            task.add_done_callback(lambda _: self._files.pop(rel, None))
        try:
            fetched = await asyncio.shield(task)
        except Busy:
            return _status(HTTPStatus.SERVICE_UNAVAILABLE, {"Retry-After": str(RETRY_AFTER)})
        return None if fetched else _status(HTTPStatus.BAD_GATEWAY)

    async def _fetch(self, rel: str) -> bool:
        try:
            async with self._session_for() as syncer:
                return await syncer.fetch_lazy(rel)
        except Busy:
            raise
        except (MirrorError, OSError) as exc:
            self._log(f"mirror serve: fetching {rel} from the upstream failed: {_one_line(exc)}")
            return False

    # -- the session: lock, state, engine ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _session_for(self) -> AsyncIterator[Syncer]:
        while (session := self._session) is None:
            # Every request waits on the one opening: all resume together once it is open (a lock
            # handed from waiter to waiter cost each of 32 cold requests a turn of the busy loop).
            if self._opener is None:
                self._opener = asyncio.ensure_future(self._open_session())
                # Its failure (Busy) reaches every waiter; retrieved here too, in case none is left.
                self._opener.add_done_callback(lambda task: task.cancelled() or task.exception())
            await asyncio.shield(self._opener)
        session.users += 1
        if session.closing is not None:
            session.closing.cancel()
            session.closing = None
        try:
            yield session.syncer
        finally:
            session.users -= 1
            if session.users == 0:
                session.closing = asyncio.get_running_loop().call_later(LINGER, self._end, session)

    async def _open_session(self) -> None:
        try:
            self._session = await self._open()
        finally:
            self._opener = None

    def _end(self, session: _Session) -> None:
        """Give the lock back: the root is already written; a diff file, the journal cleared, the state closed."""
        if session.users or self._session is not session:
            return
        self._session = None
        try:
            session.syncer.finish_pull()
        except MirrorError as exc:
            self._log(f"mirror serve: error: ending pull-through work: {_one_line(exc)}")
        # Closing checkpoints the state's write-ahead log: tens of milliseconds the event loop need not wait.
        self._closing = asyncio.ensure_future(self._close_session(session))

    async def _close_session(self, session: _Session) -> None:
        try:
            await asyncio.to_thread(session.state.close)
        finally:
            session.lock.__exit__()

    async def _open(self) -> _Session:
        if self._closing is not None:
            await asyncio.shield(self._closing)  # the previous session is giving the lock back
        lock = Lock(self.config.state_dir / "lock")
        deadline = time.monotonic() + self._lock_wait
        while True:
            try:
                lock.__enter__()
                break
            except LockHeld:
                if time.monotonic() >= deadline:
                    raise Busy() from None
                await asyncio.sleep(0.1)
        assert self._filters is not None and self._upstream is not None
        filters, upstream = self._filters, self._upstream

        def begin() -> _Session:
            state = State(self.config.state_dir / STATE_DB)
            try:
                storage = FileStorage(
                    self.config.web, fsync=self.config.fsync, on_change=state.record_change, threads=True
                )
                syncer = Syncer(self.config, state, storage, upstream, filters, _Silent())
                syncer.recover()
            except BaseException:
                state.close()
                raise
            return _Session(lock, state, syncer)

        try:
            # Opening the state and cleaning up after a killed run touch the disk: not on the event loop.
            return await asyncio.to_thread(begin)
        except BaseException:
            lock.__exit__()
            raise

    def _read(self, query: str, key: str) -> object | None:
        """One value from state, read-only (the lock is not needed to read a committed row)."""
        try:
            if self._reader is None:
                db = self.config.state_dir / STATE_DB
                self._reader = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, check_same_thread=False)
            row = self._reader.execute(query, (key,)).fetchone()
        except sqlite3.Error:
            return None  # no state yet, or one made before pull-through: nothing pulled
        return None if row is None else row[0]


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return " ".join(str(exc).split()) or type(exc).__name__


def _status(status: HTTPStatus, headers: dict[str, str] | None = None) -> web.Response:
    text = f"{status.value} {status.phrase}\n".encode()
    return web.Response(status=status, body=text, headers={**(headers or {}), "Content-Type": "text/plain"})


__all__ = ["LOCK_WAIT", "RETRY_AFTER", "Busy", "PullThrough"]
