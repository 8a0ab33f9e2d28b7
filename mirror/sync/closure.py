"""Syncing an allowlist's dependency closure: sync what is wanted, read its metadata, grow, repeat.

Round 1 syncs the allowlist's roots; after each round the ``.metadata`` files of the releases it
kept are read from disk and their ``Requires-Dist`` evaluated for the target environments (see
:mod:`mirror.core.closure`); new names or wider specifiers make the next round, until nothing
changes. While resolving, a project keeps what last run's closure kept too, so a want that only
grows across rounds never deletes files a later round fetches again; projects whose final want is
narrower are re-planned once at the end. The closure is stored for the next run and ``--explain``.

The engine drives this through :meth:`~mirror.sync.engine.Syncer.queue` and
:meth:`~mirror.sync.engine.Syncer.sync_queued`; it passes itself in as an :class:`Engine`, so
this module never imports the engine (no import cycle).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

import anyio
from packaging.utils import NormalizedName

from mirror._http import TransientError, Upstream
from mirror._progress import Reporter
from mirror._state import State
from mirror.core import layout
from mirror.core.closure import Want, dependencies, grow
from mirror.core.environments import default_targets
from mirror.core.filters import FilterChain, file_version
from mirror.core.models import IndexEntry
from mirror.core.plan import Action, Download, IndexChange, ProjectPlan
from mirror.errors import MirrorError, UpstreamError
from mirror.storage.base import Storage
from mirror.sync.run import Options, RunReport


class Engine(Protocol):
    """What the rounds need of the sync engine (:class:`~mirror.sync.engine.Syncer` is one)."""

    @property
    def state(self) -> State: ...
    @property
    def storage(self) -> Storage: ...
    @property
    def upstream(self) -> Upstream: ...
    @property
    def reporter(self) -> Reporter: ...
    @property
    def options(self) -> Options: ...
    @property
    def report(self) -> RunReport: ...
    @property
    def filters(self) -> FilterChain: ...
    @property
    def replan(self) -> set[NormalizedName]: ...
    @property
    def dry_plans(self) -> Mapping[NormalizedName, ProjectPlan] | None:
        """A dry run's plans, kept to read the metadata they would fetch."""

    def filters_changed(self) -> bool: ...

    def listed(self, name: NormalizedName) -> IndexEntry | None:
        """The upstream's entry for ``name`` (None: the upstream does not have it)."""

    def report_dry_plan(self, name: NormalizedName, plan: ProjectPlan) -> None: ...

    def queue(self, filters: FilterChain, work: Iterable[IndexChange]) -> int:
        """Decide by ``filters`` and queue ``work``; returns how many projects are queued."""

    async def sync_queued(self) -> None: ...


def last_closure(base: FilterChain, state: State) -> FilterChain:
    """``base`` deciding by the closure the last complete run stored (for a run limited to some projects)."""
    roots = base.dependency_roots() or {}
    return base.with_closure(grow(_stored(state), roots, roots))


async def sync_closure(syncer: Engine) -> FilterChain:
    """Sync the closure of ``syncer.filters``' roots, round by round; returns the chain deciding by it."""
    base = syncer.filters
    roots = base.dependency_roots() or {}
    previous = _stored(syncer.state)
    resolution = _Resolution(syncer, base, roots, previous)
    await resolution.run()
    resolution.conclude()
    return base.with_closure(resolution.wants)


def _stored(state: State) -> dict[NormalizedName, Want]:
    return {name: Want.from_key(text) for name, text in state.closure().items()}


class _Resolution:
    """One run's closure: what is wanted, what was read, what each project was synced with."""

    def __init__(
        self,
        syncer: Engine,
        base: FilterChain,
        roots: Mapping[NormalizedName, Want],
        previous: Mapping[NormalizedName, Want],
    ) -> None:
        self.syncer, self.base, self.roots, self.previous = syncer, base, roots, previous
        self.targets = base.targets() or default_targets()
        self.wants: dict[NormalizedName, Want] = dict(roots)
        self.read: dict[NormalizedName, Want] = {}  # the want each project's dependencies were read for
        self.used: dict[NormalizedName, Want] = {}  # the want each project was last synced with in this run
        self.unresolved: set[NormalizedName] = set()
        self.rounds = 0

    async def run(self) -> None:
        while todo := {n: w for n, w in self.wants.items() if self.read.get(n) != w}:
            self.rounds += 1
            widened = {n: w.merge(self.previous[n]) if n in self.previous else w for n, w in self.wants.items()}
            await _sync_round(self.syncer, self.base.with_closure(widened), todo, widened, self.used, self.rounds)
            fetched = await _dry_metadata(self.syncer, todo) if self.syncer.options.dry_run else {}
            for name, want in todo.items():
                self._follow(name, want, fetched.get(name))
        if self.syncer.report.failed or self.syncer.report.deferred:
            # A project that failed may need what the last closure held: nothing of that goes this run.
            self.wants = grow(self.wants, self.previous, {})
        narrowed = {n: w for n, w in self.wants.items() if self.used.get(n) != w}
        if narrowed:
            await _sync_round(
                self.syncer, self.base.with_closure(self.wants), narrowed, self.wants, self.used, self.rounds + 1
            )

    def _follow(self, name: NormalizedName, want: Want, fetched: list[bytes] | None) -> None:
        """Grow the wants by what the kept releases of ``name`` require."""
        self.read[name] = want
        if not self.syncer.filters.keep_project(name):
            return  # another filter drops it (a blocklist): neither it nor its dependencies are mirrored
        documents, blind = _kept_metadata(self.syncer, name, want)
        if blind and not fetched:
            self.unresolved.add(name)
        found = dependencies([*documents, *(fetched or ())], want, self.targets)
        self.wants = grow(self.wants, found, self.roots)

    def conclude(self) -> None:
        syncer = self.syncer
        for name, plan in sorted((syncer.dry_plans or {}).items()):
            syncer.report_dry_plan(name, plan)
        syncer.report.unresolved = sorted(self.unresolved)
        missing = sorted(n for n in self.wants if syncer.listed(n) is None)
        if missing:
            syncer.reporter.info(f"dependency closure: {len(missing)} projects not on the upstream, e.g. {missing[0]}")
        syncer.reporter.info(f"dependency closure: {len(self.wants)} projects after {self.rounds} rounds")
        if not syncer.options.dry_run:
            syncer.state.replace_closure((name, want.key()) for name, want in sorted(self.wants.items()))


async def _sync_round(
    syncer: Engine,
    chain: FilterChain,
    todo: Mapping[NormalizedName, Want],
    applied: Mapping[NormalizedName, Want],
    used: dict[NormalizedName, Want],
    number: int,
) -> None:
    count = syncer.queue(chain, _work(syncer, chain, todo, applied, used))
    if number == 1:
        syncer.reporter.start(count, 0)
    else:
        syncer.reporter.info(f"dependency closure: round {number}, {count} projects to sync")
    await syncer.sync_queued()
    for name in todo:
        used[name] = applied[name]


def _work(
    syncer: Engine,
    chain: FilterChain,
    todo: Mapping[NormalizedName, Want],
    applied: Mapping[NormalizedName, Want],
    used: Mapping[NormalizedName, Want],
) -> Iterator[IndexChange]:
    stored = _stored(syncer.state)
    refilter = syncer.options.force_check or syncer.filters_changed()
    for name in sorted(todo):
        entry = syncer.listed(name)
        if entry is None or not chain.keep_project(name):
            continue
        local = syncer.state.local_project(name)
        # The kept releases depend on the want: one other than when the project was last synced re-plans it.
        last = used.get(name, stored.get(name))
        replan = refilter or last != applied[name] or name in syncer.replan
        stale = local is None or local.serial is None or entry.serial is None or entry.serial > local.serial
        if replan or stale:
            if replan:
                syncer.replan.add(name)
            yield IndexChange(Action.SYNC, name, entry.serial)


async def _dry_metadata(syncer: Engine, names: Iterable[NormalizedName]) -> dict[NormalizedName, list[bytes]]:
    """For a dry run: the metadata the planned downloads would bring, fetched into memory (written nowhere)."""
    plans = syncer.dry_plans or {}
    found: dict[NormalizedName, list[bytes]] = {}

    async def fetch(name: NormalizedName, download: Download) -> None:
        writer = _MemoryWriter()
        try:
            if await syncer.upstream.download(download.url, lambda: writer, None, download.hashes) is not None:
                found.setdefault(name, []).append(writer.body)
        except (TransientError, MirrorError) as exc:
            syncer.reporter.info(f"dry run: cannot read {download.url} ({exc}); its dependencies are not planned")

    async with anyio.create_task_group() as group:
        for name in names:
            plan = plans.get(name)
            for download in plan.metadata if plan is not None else ():
                group.start_soon(fetch, name, download)
    return found


class _MemoryWriter:
    """Holds a ``.metadata`` document a dry run reads; bounded, since the upstream is not trusted."""

    _LIMIT = 16 << 20

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self.body = b""

    async def write(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._LIMIT:
            raise UpstreamError(f"a metadata file over {self._LIMIT >> 20} MiB")
        self._chunks.append(chunk)

    async def commit(self) -> None:
        self.body = b"".join(self._chunks)

    def abort(self) -> None:
        self._chunks.clear()


def _kept_metadata(syncer: Engine, name: NormalizedName, want: Want) -> tuple[list[bytes], bool]:
    """The metadata documents of the project's files on disk in versions ``want`` allows.

    A wheel without a ``.metadata`` file (an upstream without PEP 658) is read for its own
    ``METADATA``. The second value is True when some such release has no metadata at all (sdist
    only): its dependencies cannot be known without building it.
    """
    files = syncer.state.project_files(name)
    documents: list[bytes] = []
    described: dict[str, bool] = {}
    for path in files:
        if path.endswith((layout.METADATA_SUFFIX, layout.PROVENANCE_SUFFIX)):
            continue
        version = file_version(path.rpartition("/")[2])
        if not want.allows(version):
            continue
        meta = layout.metadata_path(path)
        document = b"".join(syncer.storage.read(meta)) if meta in files else _wheel_metadata(syncer.storage, path)
        described[version] = described.get(version, False) or document is not None
        if document is not None:
            documents.append(document)
    return documents, not all(described.values())


def _wheel_metadata(storage: Storage, path: str) -> bytes | None:
    """``*.dist-info/METADATA`` of a mirrored wheel (zip reads only the directory and that member)."""
    if not path.endswith(".whl"):
        return None
    try:
        with storage.open_seekable(path) as handle, zipfile.ZipFile(handle) as wheel:
            for member in wheel.namelist():
                top, _, rest = member.partition("/")
                if top.endswith(".dist-info") and rest == "METADATA":
                    return wheel.read(member)
    except (OSError, zipfile.BadZipFile):
        return None
    return None
