"""The sync orchestrator: discover → plan → execute, in the publication order of ARCHITECTURE.md.

1. each file downloads to a temp name beside its target, is verified, then renamed;
2. then its ``.metadata``; 3. then the project's pages; 4. then the root index;
5. then the serial is committed to state. Deleting goes the other way.
A crash anywhere leaves the previous consistent tree visible; the next run repairs it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urljoin

import anyio
from packaging.utils import NormalizedName

from mirror._config import Config
from mirror._http import NotAPageType, Page, TransientError, Upstream
from mirror._progress import Reporter
from mirror._state import State
from mirror._stateloss import check_root, remember_root, root_is_ours
from mirror.core import layout, parse, render
from mirror.core.filters import FilterChain, ProjectFilter
from mirror.core.models import IndexEntry, IndexMeta, ProjectPage
from mirror.core.plan import (
    Action,
    DeletionBudget,
    Download,
    IndexChange,
    LocalFile,
    LocalProject,
    ProjectPlan,
    check_deletion_guard,
    check_file_guard,
    check_page_shrink,
    check_serial,
    plan_index,
    plan_project,
    published_page,
    upstream_drops,
)
from mirror.errors import (
    Deferred,
    DeletionGuardTripped,
    IntegrityError,
    NotAnIndex,
    PrivateName,
    ProjectError,
    StalePage,
    SuspiciousPage,
    UnsafeName,
    UpstreamError,
    UpstreamUnreachable,
)
from mirror.storage.base import Storage
from mirror.storage.fs import fatal
from mirror.sync import closure, diffs, recovery
from mirror.sync.fanout import fan_out
from mirror.sync.journal import TempJournal
from mirror.sync.run import Options, RunReport

ROOT_CACHE = "root-index.body"
TEMP_JOURNAL = "temp-dirs.journal"
# After this many projects in a row fail to connect, the upstream is gone, not flaky.
_UNREACHABLE_STREAK = 25
# After this many projects fail to give a project page (404, not a simple page) before any did, the
# upstream is no simple index (a web page, a listing of something else): said once, exit 4, not retried forever.
_NOT_AN_INDEX_STREAK = 10
# Discovery. When a run wants a finite, known set of projects (named, allowlisted, a stored closure),
# their pages can be fetched directly instead of the root index. A root without per-project serials
# (PEP 503 HTML, as the real index here and pypiserver serve) spares no page fetch: every wanted page
# is fetched either way, so direct always wins. A JSON root with serials spares the fetches of
# unchanged projects, and costs its size: measured against the real index (benchmarks/discovery.py)
# its 40 MB root takes ~18 s wall, ~8 s CPU to fetch and stage, while 100 popular projects' pages
# (59 MB: popular pages are big) take ~2-8 s; a median project page is ~30 KB. So the root is used
# when it is smaller than ROOT_BYTES_PER_PAGE bytes per wanted project (a small upstream: one
# request, often a 304, tells the serials of all), and the pages go direct when the root is large
# (PyPI's: up to ~1200 wanted projects).
ROOT_BYTES_PER_PAGE = 32 * 1024
# A project name that is one plain path segment (what layout.project_name lets through).
_PLAIN_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?")
# A page that 404s in a direct run is asked for once more after this long before its project goes.
_GONE_RECHECK_SECONDS = 1.0


class Syncer:
    def __init__(
        self,
        config: Config,
        state: State,
        storage: Storage,
        upstream: Upstream,
        filters: FilterChain,
        reporter: Reporter,
        options: Options | None = None,
    ) -> None:
        self.config, self.state, self.storage, self.upstream = config, state, storage, upstream
        # Projects pull-through brought in are wanted like the ones the filters name (ARCHITECTURE.md, "Pull-through").
        self.filters = filters.with_pulled(state.pulled())
        self.reporter, self.options = reporter, options or Options()
        self.report = RunReport(started=time.time())
        self._changed = False
        self._connect_streak = 0
        self._not_pages = 0
        self._got_a_page = False
        # Paths claimed by projects in flight: two projects of one run can never write one path.
        self._claims: dict[str, str] = {}
        # Journal lines may go only once the state rows of the work they cover are committed.
        self._journal = TempJournal(config.state_dir / TEMP_JOURNAL, before_compact=state.commit)
        # Projects whose page must be fetched unconditionally: what the filters keep of it may have changed.
        self.replan: set[NormalizedName] = set()
        self._rechecks_scheduled = False
        self._refilter: bool | None = None
        # A dry run resolving a closure keeps each plan, to read the metadata it would fetch.
        self.dry_plans: dict[NormalizedName, ProjectPlan] | None = None
        # What this run may still delete because the upstream stopped offering it (set by run()).
        self._budget = DeletionBudget(0, 0, config.max_delete_fraction)
        # Direct discovery: the wanted pages are fetched without the root index (see ROOT_BYTES_PER_PAGE).
        self.direct = False
        self._gone: set[NormalizedName] = set()  # held projects whose page now 404s
        self._missing: set[NormalizedName] = set()  # wanted projects the upstream never had
        self._seen_serial: int | None = None
        self._named: frozenset[NormalizedName] | None = None
        # Private projects (mirror add, uploads): never taken from the upstream, never deleted by a sync.
        self._private: frozenset[NormalizedName] = state.private_names()
        # Whether the tree may hold what state does not know (see _state_may_lag): read once a run.
        self._may_lag: bool | None = None
        self._pulling: set[NormalizedName] = set()  # the names pull-through is fetching now

    # -- the run ------------------------------------------------------------------------------

    def reserved(self, name: NormalizedName) -> bool:
        """A private project: the guard against dependency confusion, asked wherever work is decided."""
        return name in self._private

    async def run(self) -> RunReport:
        if not self.options.dry_run:
            self._clean_journal()
            _discard_root_cache(self.config.state_dir)
        wanted = self._wanted_estimate()
        root = None if await self._direct_is_cheaper(wanted) else await self._refresh_root(wanted)
        if root is None:
            self._go_direct(wanted or frozenset())
        serial_mode = self.state.get_meta("serials") == "1"
        rechecks = self.state.due_rechecks(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        self._rechecks_scheduled = rechecks is not None
        self.replan |= rechecks or set()
        if (
            root is not None
            and root.not_modified
            and serial_mode
            and self._was_clean()
            and not self._forced()
            and not rechecks
        ):
            self.reporter.info("upstream unchanged since the last complete run")
            return self._finish(root_serial=self.state.get_int("upstream_serial"))
        totals = self.state.totals()
        self._budget = DeletionBudget(totals.files, totals.bytes, self.config.max_delete_fraction)
        resolving = self.filters.dependency_roots() is not None and await self._resolve()
        self._report_unlisted()
        self._plan_index(resolving)
        syncs, deletes = self.state.count_work(Action.SYNC), self.state.count_work(Action.DELETE)
        self.report.planned += syncs
        if not self.options.projects and not self.direct:
            # Only what the upstream stopped listing counts: removals the filters asked for are intended.
            guarded = self.state.count_upstream_deletions()
            check_deletion_guard(guarded, self.state.totals().projects, self.config.max_delete_fraction)
            check_file_guard(self._budget, *self.state.upstream_deletion_totals())
        if not resolving:
            self.reporter.start(syncs, deletes)
        await self.sync_queued()
        if self.direct:
            self._queue_gone()
        if self.options.dry_run:
            self._report_dry_deletions()
            return self._finish(root_serial=None)
        self._delete_projects(self.state.count_work(Action.DELETE))
        return self._finish(root_serial=self._run_serial())

    async def _resolve(self) -> bool:
        """Sync the dependency closure round by round; then ``self.filters`` decides by it.

        False when the run names projects: it cannot see the whole closure, so it decides by the last one.
        """
        if self.options.projects:
            self.filters = closure.last_closure(self.filters, self.state)
            return False
        if self.options.dry_run:
            self.dry_plans = {}
        self.filters = await closure.sync_closure(self)
        return True

    def queue(self, filters: FilterChain, work: Iterable[IndexChange]) -> int:
        """Decide by ``filters`` from now on and queue ``work`` (a closure round); returns the projects queued."""
        self.filters = filters
        self.state.store_work(w for w in work if not self.reserved(w.name))
        count = self.state.count_work(Action.SYNC)
        self.report.planned += count
        return count

    def _forced(self) -> bool:
        return self.options.force_check or bool(self.options.projects)

    def _was_clean(self) -> bool:
        return self.state.get_meta("clean") == "1" and self.state.get_meta("filters") == self._filters_key()

    def filters_changed(self) -> bool:
        # Asked once per page fetch: the answer cannot change before the run records the new key.
        if self._refilter is None:
            self._refilter = self.state.get_meta("filters") != self._filters_key()
        return self._refilter

    def _must_refetch(self, name: NormalizedName) -> bool:
        # Projects named on the command line (and by verify --repair) are looked at for real.
        named = name in (self._wanted_names() or ())
        return self.options.force_check or named or name in self.replan or self.filters_changed()

    def _filters_key(self) -> str:
        return repr(
            (
                self.config.filters.enabled,
                sorted((k, repr(v)) for k, v in self.config.filters.options.items()),
                self.filters.fingerprint(),
            )
        )

    def _plan_index(self, resolving: bool) -> None:
        """Plan the run into the work table (a resolving run queues only the deletions here).

        When every listed and every local project takes part as it is (no names on the command line,
        no project filter, no recheck due, no private names: the common case, a million names) SQLite plans it in one
        pass; otherwise the Python merge sees each name through the run's filters.
        """
        whole = (
            not self.direct
            and self._wanted_names() is None
            and not self.replan
            and not any(isinstance(plugin, ProjectFilter) for plugin in self.filters.plugins)
            and not self._private  # reserved names are neither synced nor deleted: the Python merge skips them
        )
        if whole:
            recheck_all = self.options.force_check or self.filters_changed()
            self.state.plan_work(recheck_all=recheck_all, deletions_only=resolving)
            return
        changes = plan_index(self._upstream_entries(), self._local_entries())
        self.state.store_work(c for c in changes if not resolving or c.action is Action.DELETE)

    def _upstream_entries(self) -> Iterator[IndexEntry]:
        if self.direct:
            yield from self._direct_entries()
            return
        wanted = self._wanted_names()
        for entry in self.state.iter_upstream():
            if wanted is not None and entry.name not in wanted:
                continue
            if self.filters.keep_project(entry.name) and not self.reserved(entry.name):
                yield entry

    def _local_entries(self) -> Iterator[LocalProject]:
        wanted = self._wanted_names()
        forced = self.options.force_check or self.filters_changed()
        for local in self.state.iter_local():
            if (wanted is not None and local.name not in wanted) or self.reserved(local.name):
                continue  # a private project is neither synced nor deleted by the sync
            # A forced check or changed filters: every project is looked at again.
            yield LocalProject(local.name, None) if forced or local.name in self.replan else local

    def _report_unlisted(self) -> None:
        """A project named on the command line that the upstream does not list (and we never had): a typo?

        It is reported as failed, so the run exits 1 instead of succeeding at nothing.
        """
        for name in sorted(self._private & (self._wanted_names() or frozenset())):
            self.reporter.info(f"{name}: a private project; the sync never takes it from the upstream")
        if self.direct:
            return  # a direct run learns it from the page's 404 (_note_gone)
        for name in sorted(self._wanted_names() or ()):
            if self.state.upstream_entry(name) is None and self.state.project(name) is None:
                message = f"{name}: not listed by the upstream index (is the name right?)"
                self.report.failed[name] = message
                self.reporter.project_done(name, "failed", message)

    def _wanted_names(self) -> frozenset[NormalizedName] | None:
        if not self.options.projects:
            return None
        if self._named is None:
            self._named = frozenset(layout.project_name(name) for name in self.options.projects)
        return self._named

    # -- direct discovery: the wanted pages, without the root index ------------------------------------

    def _wanted_estimate(self) -> frozenset[NormalizedName] | None:
        """The projects this run can want, when that is a finite set known before anything is fetched."""
        named = self._wanted_names()
        if named is not None:
            return named
        wanted = self.filters.wanted_projects()
        if wanted is not None and self.filters.dependency_roots() is not None:
            # The closure grows from its roots; the last run's closure is the best guess of its size.
            wanted |= frozenset(self.state.closure())
        return wanted

    async def _direct_is_cheaper(self, wanted: frozenset[NormalizedName] | None) -> bool:
        """The discovery rule (see ROOT_BYTES_PER_PAGE)."""
        if wanted is None:
            return False
        size, serials = self.state.get_int("root_bytes"), self.state.get_meta("serials")
        if size is None:
            # Learnt once (and again on every full fetch of the root) from a GET whose body is not read.
            try:
                size, kind = await self.upstream.root_head(self.config.require_upstream())
            except (TransientError, UpstreamError):
                size, kind = None, None
            if size is None:
                return True  # no root, or one that will not say its size: the wanted pages it is
            serials = "0" if kind == "html" else serials
            self.state.set_meta("root_bytes", size)
            self.state.set_meta("serials", serials)
        return serials == "0" or size > len(wanted) * ROOT_BYTES_PER_PAGE

    def _go_direct(self, wanted: frozenset[NormalizedName]) -> None:
        self.direct = True
        # The stored listing is not refreshed by this run: the next run that needs the root fetches it whole.
        self.state.set_meta("root_etag", None)
        self.state.set_meta("root_last_modified", None)
        self.state.set_meta("clean", "0")
        self.reporter.info(f"fetching the pages of {len(wanted)} wanted projects directly, not the upstream index")

    def _direct_entries(self) -> Iterator[IndexEntry]:
        named = self._wanted_names()
        wanted = named if named is not None else self.filters.wanted_projects() or ()
        for name in sorted(wanted):
            if self.reserved(name):
                continue
            if name not in self._gone and name not in self._missing and self.filters.keep_project(name):
                yield IndexEntry(name, None)

    def listed(self, name: NormalizedName) -> IndexEntry | None:
        """The upstream's entry for ``name``; in a direct run every wanted name is assumed listed until it 404s."""
        if self.direct:
            return None if name in self._gone or name in self._missing else IndexEntry(name, None)
        return self.state.upstream_entry(name)

    def _note_listed(self, name: NormalizedName, serial: int | None) -> None:
        """A direct run keeps the stored listing true of what it saw (verify --repair reads it)."""
        if self.direct and self.state.upstream_entry(name) != IndexEntry(name, serial):
            self.state.set_upstream(name, serial)

    def _note_gone(self, name: NormalizedName) -> None:
        self.state.set_upstream(name, None, listed=False)
        if self.state.project(name) is not None:
            self._gone.add(name)
            self.reporter.info(f"{name}: the upstream no longer has it (its page is 404)")
            return
        self._missing.add(name)
        if name in (self._wanted_names() or ()) or name in self._pulling:
            self.report.failed[name] = f"{name}: not listed by the upstream index (its page is 404)"
            self.reporter.project_done(name, "failed", self.report.failed[name])
        else:
            self.reporter.info(f"{name}: wanted but not on the upstream (its page is 404)")

    def _queue_gone(self) -> None:
        """Queue the deletion of held projects whose page 404s, under the deletion guard."""
        if not self._gone:
            return
        if not self.options.projects:
            try:
                check_deletion_guard(len(self._gone), self.state.totals().projects, self.config.max_delete_fraction)
            except DeletionGuardTripped as exc:
                for name in self._gone:
                    self.report.deferred[name] = f"{name}: its page is 404; not deleted ({exc})"
                if not self.options.dry_run:
                    self._finish(root_serial=None)  # what did sync is published; the run is not clean
                raise
        self.state.queue_deletions(sorted(self._gone))

    def _run_serial(self) -> int | None:
        if not self.direct:
            return self.state.get_int("upstream_serial")
        # No root says where the upstream is: the newest page this run saw, never older than before.
        known = [s for s in (self.state.get_int("serial"), self._seen_serial) if s is not None]
        return max(known) if known else None

    def _finish(self, root_serial: int | None) -> RunReport:
        report = self.report
        report.finished = time.time()
        report.requests = self.upstream.counters.requests
        report.serial = root_serial
        if self.options.dry_run:
            return report
        clean = not report.failed and not report.deferred
        if not self.options.projects:
            self.state.set_meta("clean", "1" if clean else "0")
            self.state.set_meta("filters", self._filters_key())
            if clean and root_serial is not None:
                self.state.set_meta("serial", root_serial)
        if self._changed or self.storage.size(layout.root_paths()[2]) is None:
            # The root claims the serial of the last run that completed, never a partial one.
            self._write_root()
        self.state.set_meta("last_run", _run_summary(report))
        diffs.write_run_diff(self.config, self.state)
        self.state.commit()
        self._journal.clear()
        return report

    # -- discovery ------------------------------------------------------------------------------

    async def _refresh_root(self, wanted: frozenset[NormalizedName] | None) -> Page | None:
        """Fetch the root index (conditionally); stage its listing into state when it changed.

        None when the upstream has no root page but the run knows what it wants (fetched directly).
        """
        upstream = self.config.require_upstream()
        etag = None if self._forced() else self.state.get_meta("root_etag")
        modified = None if self._forced() else self.state.get_meta("root_last_modified")
        cache = self.config.state_dir / ROOT_CACHE
        try:
            page = await self.upstream.download_root(
                upstream, lambda: _PathWriter(cache), etag=etag, last_modified=modified
            )
        except (TransientError, UpstreamError) as exc:
            raise UpstreamUnreachable(f"cannot fetch the upstream index {upstream}: {exc}") from None
        if page is None:
            if wanted is not None:
                return None
            raise UpstreamUnreachable(f"the upstream index {upstream} answered 404")
        if page.not_modified:
            return page
        with contextlib.suppress(OSError):
            self.state.set_meta("root_bytes", cache.stat().st_size)
        try:
            meta = self._stage_root(cache, page)
        finally:
            with contextlib.suppress(FileNotFoundError):
                cache.unlink()
        serial = page.serial if page.serial is not None else meta.last_serial
        # A new listing is not yet mirrored: until a run completes against it, a 304 must replan.
        self.state.set_meta("clean", "0")
        self.state.set_meta("upstream_serial", serial)
        self.state.set_meta("root_etag", page.etag)
        self.state.set_meta("root_last_modified", page.last_modified)
        self.state.commit()
        return page

    def _stage_root(self, cache: Path, page: Page) -> IndexMeta:
        parser: parse.IndexJsonParser | parse.IndexHtmlParser = (
            parse.IndexJsonParser() if page.format == "json" else parse.IndexHtmlParser()
        )
        first: list[int | None] = []  # the first project's serial

        def batches() -> Iterator[parse.IndexBatch]:
            for chunk in _read_chunks(cache):
                batch = parser.feed_batch(chunk)
                if batch.serials and not first:
                    first.append(batch.serials[0])
                yield batch

        try:
            count = self.state.replace_upstream(batches())
            meta = parser.close()
        except UpstreamError as exc:
            raise UpstreamUnreachable(f"the upstream index is unusable: {exc}") from None
        # An index either gives every project a serial (PyPI, mirrors) or none (pypiserver, static trees).
        self.state.set_meta("serials", "1" if first and first[0] is not None else "0")
        self.reporter.info(f"upstream lists {count} projects" + (f" at serial {page.serial}" if page.serial else ""))
        for line in parser.dropped.lines():
            self.reporter.detail(f"left out of the upstream index: {line}")
        if parser.skipped.count:
            self.reporter.info(
                f"skipped {parser.skipped.count} unusable entries of the upstream index, "
                f"e.g. {parser.skipped.examples[0]}"
            )
        return meta

    # -- syncing projects -------------------------------------------------------------------------

    async def sync_queued(self) -> None:
        """Sync every project queued in state, with ``config.workers`` workers."""
        # The workers share one iterator over the queue (one coroutine at a time advances it):
        # a memory stream between a producer and them cost a checkpoint and a wake-up per project.
        work = self.state.iter_work(Action.SYNC)

        async def worker() -> None:
            for change in work:
                await self._sync_one(change)

        async with anyio.create_task_group() as group:
            for _ in range(self.config.workers):
                group.start_soon(worker)

    async def _sync_one(self, change: IndexChange) -> None:
        name = change.name
        try:
            outcome = await self._sync_project(name, change.serial)
        except Deferred as exc:
            self.report.deferred[name] = _about(name, exc)
            self.reporter.project_done(name, "deferred", _about(name, exc))
            return
        except _Gone:
            self._note_gone(name)
            return
        except ProjectError as exc:
            self._note_failure(name, exc)
            return
        self._connect_streak = 0
        if outcome == "unchanged":
            self.report.unchanged += 1
        else:
            self.report.synced += 1
        self.reporter.project_done(name, outcome, None)

    def _note_failure(self, name: str, exc: ProjectError) -> None:
        self.report.failed[name] = _about(name, exc)
        self.reporter.project_done(name, "failed", _about(name, exc))
        if isinstance(exc, _NotAPage) and not self._got_a_page:
            self._not_pages += 1
            planned = self.report.planned
            if self._not_pages >= _NOT_AN_INDEX_STREAK or self._not_pages >= planned >= 3:
                raise NotAnIndex(
                    f"the upstream {self.config.require_upstream()} is not a simple index: "
                    f"none of the first {self._not_pages} projects it lists has a project page ({exc})"
                )
        if isinstance(exc.__cause__, TransientError) or isinstance(exc, _Unreachable):
            self._connect_streak += 1
            # Also after progress: an upstream gone mid-run must not cost one failure line per remaining project.
            if self._connect_streak >= _UNREACHABLE_STREAK:
                raise UpstreamUnreachable(f"the upstream stopped answering: {exc}")
        else:
            self._connect_streak = 0

    async def _sync_project(self, name: NormalizedName, promised: int | None) -> str:
        if self.reserved(name):  # whatever asked (a closure round, a pull-through): never from the upstream
            raise PrivateName(f"{name}: a private project; never taken from the upstream")
        page, response, digest, known = await self._fetch_page(name, promised)
        if page is None:
            return "unchanged"
        held = self.state.project_files(name)
        plan = plan_project(self._filter(page), held, require_hashes=self.config.require_hashes)
        lazy = self._lazy_part(name, plan)
        if lazy:
            plan = _without(plan, lazy)
        pages = None
        if not plan.fetches and not plan.deletes:
            # Nothing to fetch or delete: these are the pages to publish, unless they are served already.
            pages = self._pages(name, plan, lazy, held)
            # A project state has never seen has no pages to compare with (a stat, an S3 HEAD,
            # per new project), unless the tree may hold what state does not know.
            if (known or self._state_may_lag()) and self._published_as(pages):
                # Same files, hashes, yanks, status and metadata as served: no rename, no diff line.
                if not self.options.dry_run:
                    self._remember(name, page.last_serial, response, digest)
                return "unchanged"
        self._guard_deletions(page, plan, held)
        if self.options.dry_run:
            self._report_dry_plan(name, plan)
            return "planned"
        self._claim(name, plan)
        try:
            self.state.register_project(name)
            self._journal.add(
                name, (p.rpartition("/")[0] for p in (*(d.path for d in plan.fetches), layout.page_paths(name)[0]))
            )
            if plan.fetches:
                # What the page is rendered from: the files held before, and those just recorded.
                held = dict(held)
                await self._fetch_files(name, plan, held)
            if lazy:
                # Recorded (and committed) before a page links them: a request for one finds where to fetch it.
                self.state.add_lazy(name, ((d.path, d.url, d.size, d.hashes["sha256"]) for d in lazy.values()))
                self.state.commit()
            await self.storage.write_pages(pages if pages is not None else self._pages(name, plan, lazy, held))
        finally:
            self._release(name, plan)
            self._journal.done(name)
        self.state.keep_lazy(name, lazy)
        for path in plan.deletes:
            self.storage.delete(path)
            self.report.files_deleted += 1
        self.state.remove_files(plan.deletes)
        self.state.publish_project(name, page.last_serial, response.etag, response.last_modified, digest)
        self._changed = True
        return "synced"

    def _guard_deletions(self, page: ProjectPage, plan: ProjectPlan, held: dict[str, LocalFile]) -> None:
        """Defer a page that would delete much of what the mirror holds: a glitch until proven otherwise."""
        dropped = upstream_drops(page, plan.deletes, held)
        if not dropped:
            return
        if self.state.get_meta("serials") == "0":
            check_page_shrink(page, held, dropped, self.config.max_project_delete_fraction)
        size = sum(f.size for f in dropped)
        complaint = self._budget.complaint(len(dropped), size)
        if complaint is not None:
            raise SuspiciousPage(f"{page.name}: would delete {len(dropped)} files; {complaint}; retried next run")
        self._budget.spend(len(dropped), size)

    async def _fetch_page(
        self, name: NormalizedName, promised: int | None
    ) -> tuple[ProjectPage | None, Page, str | None, bool]:
        """The project's page, fresh enough for the serial the root promised, its body's sha256,
        and whether state knew the project.

        None if not modified: a 304, or (for upstreams without validators) the very body the
        published pages were made from, with the same filters.
        """
        url = self._page_url(name)
        known = self.state.project(name)
        knew = known is not None
        conditional = promised is None and knew and not self._must_refetch(name)
        etag, modified = (known[1], known[2]) if conditional and known else (None, None)
        serial: int | None = None
        for attempt in range(self.config.stale_retries + 1):
            response = await self._get(url, etag, modified, name, recheck=knew)
            if response.not_modified:
                return None, response, None, knew
            digest = hashlib.sha256(response.body).hexdigest()
            if conditional and digest == self.state.page_digest(name):
                self._note_listed(name, known[0] if known else None)
                return None, response, digest, knew
            page = self._parse(name, response)
            serial = response.serial if response.serial is not None else page.last_serial
            if serial is not None and (self._seen_serial is None or serial > self._seen_serial):
                self._seen_serial = serial
            if check_serial(name, promised, serial):
                self._note_listed(name, serial)
                return _with_serial(page, serial), response, digest, knew
            if attempt < self.config.stale_retries:
                await anyio.sleep(min(0.5 * 2**attempt, 10.0))
        raise StalePage(
            f"{name}: upstream page is at serial {serial}, the index promised {promised}; retrying next run"
        )

    def _page_url(self, name: NormalizedName) -> str:
        upstream = self.config.require_upstream()
        # What urljoin gives for a plain name under a plain base, without its parsing (2% of a page's CPU).
        if _PLAIN_NAME.fullmatch(name) and upstream.endswith("/") and "?" not in upstream and "#" not in upstream:
            return f"{upstream}{name}/"
        return urljoin(upstream, f"{name}/")

    async def _get(self, url: str, etag: str | None, modified: str | None, name: str, *, recheck: bool) -> Page:
        try:
            response = await self.upstream.get_page(url, etag=etag, last_modified=modified)
            if response is None and self.direct and recheck:
                # A held project goes only if its page is still 404 a moment later (not one CDN hiccup).
                await anyio.sleep(_GONE_RECHECK_SECONDS)
                response = await self.upstream.get_page(url, etag=etag, last_modified=modified)
        except TransientError as exc:
            raise _Unreachable(f"{name}: {exc}") from exc
        except NotAPageType as exc:
            raise _NotAPage(f"{name}: {exc}") from None
        if response is None:
            if self.direct:
                raise _Gone(f"{name}: its page is 404")
            raise _NotAPage(f"{name}: listed by the upstream index but its page is 404")
        if response.not_modified:
            self._got_a_page = True
        return response

    def _parse(self, name: NormalizedName, response: Page) -> ProjectPage:
        limit = self.config.max_page_files
        try:
            if response.format == "json":
                page = parse.parse_project_json(response.body, response.url, max_files=limit)
            else:
                page = parse.parse_project_html(response.body, response.url, name, max_files=limit)
        except UpstreamError as exc:
            raise _NotAPage(str(exc)) from None
        self._got_a_page = True
        if page.name != name:
            raise UpstreamError(f"{name}: the upstream page is for another project ({page.name!r})")
        for line in page.dropped:
            self.reporter.detail(f"{name}: left out of the upstream page: {line}")
        if response.format == "html" and not page.files and not parse.has_index_markers(response.body):
            # A 200 "Maintenance" page parses as a project without files; emptying the project on it loses the mirror.
            raise UpstreamError(f"{name}: the upstream answered 200 with an HTML page that is not a project page")
        return page

    def _claim(self, name: str, plan: ProjectPlan) -> None:
        # Every distribution download is a planned file, so this checks each path once.
        paths = [item.path for item in plan.files] + [d.path for d in (*plan.metadata, *plan.provenance)]
        owners = self.state.file_owners(paths)  # one query per project, not one per path
        for path in paths:
            owner = self._claims.get(path) or owners.get(path)
            if owner is not None and owner != name:
                raise UnsafeName(f"{name}: {path} already belongs to project {owner}")
        for download in plan.fetches:
            self._claims[download.path] = name

    def _release(self, name: str, plan: ProjectPlan) -> None:
        for download in plan.fetches:
            if self._claims.get(download.path) == name:
                del self._claims[download.path]

    async def _fetch_files(self, name: str, plan: ProjectPlan, held: dict[str, LocalFile]) -> None:
        """Fetch the plan's files; each one recorded in state is also added to ``held``."""
        # Distribution files first, then their metadata and provenance (ARCHITECTURE.md, "Publication order").
        for batch, required in ((plan.downloads, True), (plan.metadata, False), (plan.provenance, False)):
            if not batch:
                continue  # a task group per empty batch was 5% of the pages-only profile
            if len(batch) == 1:
                await self._fetch_file(name, required, batch[0], held)
            else:
                fetch = functools.partial(self._fetch_file, name, required, held=held)
                await fan_out(batch, fetch, self.config.workers, self.upstream.spare)

    async def _fetch_file(
        self, name: str, required: bool, download: Download, held: dict[str, LocalFile] | None = None
    ) -> None:
        adopted = self._adopt(name, download)
        if adopted is not None:
            if held is not None:
                held[adopted.path] = adopted
            return
        for attempt in (1, 2):
            try:
                fetched = await self.upstream.download(
                    download.url,
                    lambda: self.storage.open_async_writer(download.path, download.hashes.get("sha256")),
                    download.size,
                    download.hashes,
                )
            except IntegrityError:
                if attempt == 2:
                    raise
                continue
            except TransientError as exc:
                raise _Unreachable(f"{name}: {exc}") from exc
            break
        else:
            raise AssertionError("the second attempt returns or raises")
        if fetched is None:
            if required:
                raise UpstreamError(f"{name}: {download.url} is 404")
            return  # a .metadata the page offered but the upstream does not have: not advertised
        recorded = LocalFile(download.path, fetched.size, fetched.sha256)
        self.state.add_file(name, recorded)
        if held is not None:
            held[recorded.path] = recorded
        self.report.files_added += 1
        self.report.bytes_added += fetched.size
        self.reporter.file_done(download.path, fetched.size)

    def _state_may_lag(self) -> bool:
        """Whether the tree may hold what state does not know: the published root is not the one
        state last wrote (a database restored from a backup, another writer). Checked once a run."""
        if self._may_lag is None:
            self._may_lag = not root_is_ours(self.state, self.storage)
        return self._may_lag

    def _adopt(self, name: str, download: Download) -> LocalFile | None:
        """A verified file already at its final name that state does not know (it is behind) is reused.

        Only looked for when the published root is not the one state last wrote (a database
        restored from a backup, another writer): a file system call (an S3 HEAD) per download
        otherwise finds nothing, since the start-of-run recovery has already recorded or removed
        what a killed run left. Were a file there anyway, it is downloaded again and replaced by
        the same verified bytes.
        """
        if not self._state_may_lag():
            return None
        size = self.storage.size(download.path)
        if size is None or (download.size is not None and size != download.size):
            return None
        digest = hashlib.sha256()
        for chunk in self.storage.read(download.path):
            digest.update(chunk)
        expected = download.hashes.get("sha256")
        if expected is not None and digest.hexdigest() != expected:
            return None
        adopted = LocalFile(download.path, size, digest.hexdigest())
        self.state.add_file(name, adopted)
        self.state.record_change(download.path, False)  # its first record may have died with the crash
        return adopted

    def _pages(
        self,
        name: NormalizedName,
        plan: ProjectPlan,
        lazy: Mapping[str, Download] | None = None,
        held: dict[str, LocalFile] | None = None,
    ) -> list[tuple[str, bytes]]:
        """The project's pages as they are to be published, JSON first.

        ``lazy`` files are linked without being held: they are fetched on first use (see :meth:`fetch_lazy`).
        ``held``: what state holds for the project, when the caller has it (just read, plus what
        this sync of the project has recorded since).
        """
        on_disk = self.state.project_files(name) if held is None else held
        if lazy:
            on_disk = {**on_disk, **{p: LocalFile(p, d.size or 0, d.hashes["sha256"]) for p, d in lazy.items()}}
        missing = [item.path for item in plan.files if item.path not in on_disk]
        if missing:
            raise UpstreamError(f"{name}: {len(missing)} files could not be fetched, e.g. {missing[0]}")
        versions = plan.page.versions if plan.page.versions is not None else parse.derive_versions(plan.page.files)
        page = published_page(plan, on_disk, versions)
        html, v1_html, v1_json = layout.page_paths(name)
        html_bytes = render.render_project_html(page)
        return [(v1_json, render.render_project_json(page)), (v1_html, html_bytes), (html, html_bytes)]

    def _published_as(self, pages: list[tuple[str, bytes]]) -> bool:
        """True when every page is already served with exactly these bytes."""
        for path, body in pages:
            if self.storage.size(path) != len(body) or b"".join(self.storage.read(path)) != body:
                return False
        return True

    def _remember(self, name: NormalizedName, serial: int | None, response: Page, digest: str | None) -> None:
        """Record an unchanged page's validators, only when they moved (the next request can then be a 304)."""
        local, known = self.state.local_project(name), self.state.project(name)
        moved = known is None or known[1:] != (response.etag, response.last_modified)
        if local is None or local.serial != serial or moved or self.state.page_digest(name) != digest:
            self.state.publish_project(name, serial, response.etag, response.last_modified, digest)

    # -- pull-through (mirror serve): a project on request, its files on first use ----------------------

    def _lazy_part(self, name: NormalizedName, plan: ProjectPlan) -> dict[str, Download]:
        """The fetches of ``plan`` left to first use: all of a pulled-through project's that can be verified then.

        A distribution file needs its sha256 and size from the page (the published page states its
        size); a ``.metadata`` or provenance file its sha256. The rest is fetched with the page.
        """
        if name not in self._pulling and not self.filters.lazy(name):
            return {}
        lazy = {d.path: d for d in plan.downloads if d.size is not None and "sha256" in d.hashes}
        lazy.update((d.path, d) for d in (*plan.metadata, *plan.provenance) if "sha256" in d.hashes)
        return lazy

    def recover(self) -> None:
        """Undo what a killed process left half-done; call once after taking the lock, before :meth:`pull`."""
        self._clean_journal()

    async def pull(self, name: NormalizedName) -> PullResult:
        """Fetch and publish the page of ``name`` exactly as a sync of it would, its files left to first use.

        A name the filters refuse is never fetched. Otherwise it joins the wanted set, so ``mirror
        sync`` keeps it fresh (unless the upstream has no such project). Pulls of different names
        may run concurrently, like a sync's workers; the root is left to :meth:`write_root_if_changed`.
        """
        if self.reserved(name):  # asked first: a private name never even joins the pulled set
            return PullResult(name, "refused", f"{name}: a private project; never taken from the upstream")
        decision = self.filters.project_decision(name, as_pulled=True)
        if decision is not None:
            return PullResult(name, "refused", f"{name}: {decision.reason} ({decision.plugin})")
        started = time.time()
        if name not in self.filters.pulled:
            # Wanted from now on (committed with its lazy files, before its page); dropped if it never publishes.
            self.state.add_pulled(name, started)
            self.filters = self.filters.with_pulled([name])
        self.direct = True
        self.report.failed.pop(name, None)
        self.report.deferred.pop(name, None)
        self._missing.discard(name)
        self._pulling.add(name)
        try:
            await self._sync_one(IndexChange(Action.SYNC, name))
        finally:
            self._pulling.discard(name)
            self._connect_streak = 0
        why = self.report.failed.get(name) or self.report.deferred.get(name)
        if why is None:
            # Committed with the next batch: until then a crash only makes the next sync look at it again.
            self.state.add_pulled(name, started)
            return PullResult(name, "ok")
        if self.storage.size(layout.page_paths(name)[2]) is None:
            self.state.drop_pulled(name)
        return PullResult(name, "missing" if name in self._missing else "failed", why)

    def write_root_if_changed(self) -> None:
        """The root index, if a pull published a project since it was last written."""
        if self._changed:
            self._changed = False
            self._write_root()
            self.state.commit()

    async def fetch_lazy(self, path: str) -> bool:
        """Fetch, verify (sha256 and size) and publish one file a pulled-through page links; False if none does.

        The same download path as a sync (temp name, verified, renamed, recorded); raises
        :class:`ProjectError` or :class:`IntegrityError` when the upstream cannot give it.
        """
        row = self.state.lazy_file(path)
        if row is None:
            return False
        project, url, size, sha256 = row
        key = f"file:{path}"  # not a project name: its journal entry is its own
        self._journal.add(key, [path.rpartition("/")[0]])
        try:
            await self._fetch_file(project, True, Download(url, path, size, {"sha256": sha256}))
        finally:
            self._journal.done(key)
        self.state.forget_lazy(path)
        self.state.commit()
        return True

    def finish_pull(self) -> None:
        """End a stretch of pull-through work, before the lock goes: the root if needed, a diff file, the journal."""
        self.write_root_if_changed()
        diffs.write_run_diff(self.config, self.state)
        self.state.commit()
        self._journal.clear()

    # -- the root index and deletions -------------------------------------------------------------

    def _write_root(self) -> None:
        self._journal.add(layout.SIMPLE, [layout.SIMPLE])
        write_root(self.state, self.storage)

    def _delete_projects(self, count: int) -> None:
        if count == 0:
            return
        # The root stops listing them first, then their pages go, then their files.
        self._write_root()
        for change in self.state.iter_work(Action.DELETE):
            if self.reserved(change.name):
                continue
            for path in layout.page_paths(change.name):
                self.storage.delete(path)
            files = self.state.project_files(change.name)
            for path in files:
                self.storage.delete(path)
            self.report.files_deleted += len(files)
            self.state.forget_project(change.name)
            self.report.deleted += 1
            self.reporter.project_done(change.name, "deleted", None)
        self._changed = True

    def _filter(self, page: ProjectPage) -> ProjectPage:
        kept, until = self.filters.filter_page_until(page)
        if not self.options.dry_run and (until is not None or self._rechecks_scheduled):
            self.state.set_recheck(page.name, until)
            self._rechecks_scheduled = True
        return kept

    def _report_dry_plan(self, name: NormalizedName, plan: ProjectPlan) -> None:
        if self.dry_plans is not None:
            self.dry_plans[name] = plan  # a closure may plan a project twice: reported once, at its end
            return
        self.report_dry_plan(name, plan)

    def report_dry_plan(self, name: NormalizedName, plan: ProjectPlan) -> None:
        local = self.state.project_files(name)
        add, add_bytes = len(plan.fetches), sum(d.size or 0 for d in plan.downloads)
        drop, drop_bytes = len(plan.deletes), sum(local[p].size for p in plan.deletes if p in local)
        self.report.would_download += add
        self.report.would_download_bytes += add_bytes
        self.report.would_delete += drop
        self.report.would_delete_bytes += drop_bytes
        if add or drop:
            self.reporter.info(f"would sync {name}: +{add} files ({add_bytes} bytes), -{drop} ({drop_bytes} bytes)")

    def _report_dry_deletions(self) -> None:
        for change in self.state.iter_work(Action.DELETE):
            files = self.state.project_files(change.name)
            size = sum(f.size for f in files.values())
            self.report.would_delete += 1
            self.report.would_delete_bytes += size
            self.reporter.info(f"would delete {change.name}: -{len(files)} files ({size} bytes)")

    def _clean_journal(self) -> None:
        """Undo what an interrupted run left half-done, in the order that keeps every page's links whole."""
        dirs = self._journal.dirs()
        if dirs:
            # The interrupted run may have published pages (or part of the root) and died before the
            # root: this run writes it even if every page now turns out unchanged.
            self._changed = True
        done = recovery.recover(dirs, self.storage, self.state)
        if done.temps:
            self.reporter.info(f"removed {done.temps} temporary files left by an interrupted run")
        if done.adopted:
            self.reporter.info(f"recorded {done.adopted} files an interrupted run published but never recorded")
        if done.strays:
            self.reporter.info(f"removed {done.strays} files an interrupted run published but no page links")
        self.state.commit()
        self._journal.clear()


@dataclass(frozen=True, slots=True)
class PullResult:
    """What :meth:`Syncer.pull` did for one name."""

    name: NormalizedName
    kind: Literal["ok", "refused", "missing", "failed"]
    """ok: published and current; refused: by a filter; missing: the upstream has no such project;
    failed: the upstream did not answer, or answered something the engine refuses."""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


def write_root(state: State, storage: Storage) -> None:
    """The root index: every published project not queued for deletion, at the last complete run's serial.

    Never without a project the current root lists that state does not know (a lost or behind state).
    """
    check_root(state, storage)
    serial = state.get_int("serial")
    html, v1_html, v1_json = layout.root_paths()
    storage.write_atomic(v1_json, render.render_index_json(state.iter_published(True), IndexMeta(last_serial=serial)))
    storage.write_atomic(v1_html, render.render_index_html(state.iter_published(True), serial))
    storage.write_atomic(html, render.render_index_html(state.iter_published(True), serial))
    remember_root(state, storage)


class _Unreachable(ProjectError):
    """A project failed because the upstream did not answer (after retries)."""


class _Gone(ProjectError):
    """In a direct run, a wanted project's page is 404: deleted upstream, or never there."""


class _NotAPage(UpstreamError):
    """What the upstream answered for a project is no project page (404, another content type, unparseable)."""


class _PathWriter:
    """A plain temp-then-rename writer outside ``web/`` (for the cached root body)."""

    def __init__(self, path: Path) -> None:
        self._path, self._temp = path, path.with_name(path.name + layout.TEMP_SUFFIX)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._temp, "wb")  # noqa: SIM115 - closed in commit/abort
        except OSError as exc:
            raise fatal(exc, self._temp) from None

    async def write(self, chunk: bytes) -> None:
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.abort()
            raise fatal(exc, self._temp) from None

    async def commit(self) -> None:
        self._file.close()
        self._temp.replace(self._path)

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()


def _discard_root_cache(state_dir: Path) -> None:
    """Remove the root body a killed run left (it can be gigabytes); the lock we hold proves it dead."""
    cache = state_dir / ROOT_CACHE
    for path in (cache, cache.with_name(cache.name + layout.TEMP_SUFFIX)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _about(name: str, exc: Exception) -> str:
    """The error as one line that starts with the project it is about."""
    text = str(exc)
    return text if text.startswith(f"{name}:") else f"{name}: {text}"


def _read_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(size):
            yield chunk


def _without(plan: ProjectPlan, lazy: Mapping[str, Download]) -> ProjectPlan:
    """``plan`` without the fetches left to first use."""
    return replace(
        plan,
        downloads=tuple(d for d in plan.downloads if d.path not in lazy),
        metadata=tuple(d for d in plan.metadata if d.path not in lazy),
        provenance=tuple(d for d in plan.provenance if d.path not in lazy),
    )


def _with_serial(page: ProjectPage, serial: int | None) -> ProjectPage:
    if serial == page.last_serial:
        return page
    return replace(page, last_serial=serial)


def _run_summary(report: RunReport) -> str:
    return json.dumps(
        {
            "started": report.started,
            "finished": report.finished,
            "result": report.result,
            "serial": report.serial,
            "synced": report.synced,
            "deleted": report.deleted,
            "files_added": report.files_added,
            "files_deleted": report.files_deleted,
            "bytes_added": report.bytes_added,
            "requests": report.requests,
            "failed": len(report.failed),
            "deferred": len(report.deferred),
        }
    )


__all__ = ["Options", "PullResult", "RunReport", "Syncer", "write_root"]
