"""``mirror verify``: check the tree against state with flat memory, resumably; repair and prune on request.

A pass runs in phases, each resumable from the cursor it commits as it goes:

* ``pages``: every published project's three pages parse, agree with each other and with the
  serial state recorded; the paths they link are written to ``verify_refs``;
* ``simple``: page directories of projects that are not published, temp files beside pages;
* ``files``: a merge-join of state's file rows, ``verify_refs`` and a sorted walk of
  ``web/packages/`` (presence, size, optionally sha256);
* ``root``: the root index lists exactly the published projects, in both formats;
* ``orphans`` (``--delete-orphans``, and temp files with ``--repair``) and ``repair``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

from mirror._config import Config
from mirror._progress import Reporter
from mirror.core import layout, parse, render, verify
from mirror.core.models import ProjectPage
from mirror.core.verify import Finding, OnDisk, Problem
from mirror.errors import UnsafeName, UpstreamError
from mirror.storage.base import SortedWalk, Storage, root_names
from mirror.verify.store import VerifyState

_PHASES = ("pages", "simple", "files", "root", "orphans", "repair")
_TICK_SECONDS = 5.0
_REPAIR_BATCH = 1000
_ORPHAN_BATCH = 500


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    repair: bool = False
    delete_orphans: bool = False
    dry_run: bool = False
    hashes: bool = False


@dataclass
class VerifyReport:
    resumed: bool = False
    projects: int = 0
    files: int = 0
    bytes_hashed: int = 0
    counts: dict[Problem, int] = field(default_factory=dict)
    orphans_removed: int = 0
    orphans_kept: int = 0
    """Orphan findings left alone: a page the mirror serves links them (or the root lists the page)."""
    repaired: int = 0
    repair_failed: dict[str, str] = field(default_factory=dict)
    root_rewritten: bool = False

    @property
    def broken(self) -> int:
        """Problems that clients can hit (links to nothing, wrong bytes, stale pages)."""
        return sum(count for problem, count in self.counts.items() if problem.repairable)


class Ticker:
    """A progress line every few seconds (plain lines suit cron, journald and a terminal alike)."""

    def __init__(self, reporter: Reporter, phase: str) -> None:
        self._reporter, self._phase = reporter, phase
        self._start = self._last = time.monotonic()
        self.count = 0

    def tick(self, current: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._last >= _TICK_SECONDS:
            self._last = now
            rate = self.count / max(now - self._start, 1e-3)
            self._reporter.info(f"verify {self._phase}: {self.count} checked ({rate:.0f}/s), at {current}")


class Verifier:
    def __init__(
        self, config: Config, state: VerifyState, storage: Storage, reporter: Reporter, options: VerifyOptions
    ) -> None:
        self.config, self.state, self.storage = config, state, storage
        self.reporter, self.options = reporter, options
        self.report = VerifyReport()

    # -- the pass -------------------------------------------------------------------------------

    def pass_key(self) -> str:
        """A pass resumes only if nothing synced since it started and it checks the same things."""
        return f"hashes={self.options.hashes};last_run={self.state.get_meta('last_run')}"

    def start(self) -> str:
        """Begin or resume a pass; returns the phase to run first."""
        if self.state.get_meta("verify_pass") == self.pass_key():
            phase, cursor = self.state.cursor()
            if phase is not None:
                self.report.resumed = True
                self.reporter.info(f"verify: resuming the interrupted pass at {phase} {cursor}".rstrip())
                return phase
        else:
            self.state.reset_pass(self.pass_key())
        return _PHASES[0]

    def check(self, first: str) -> None:
        """Run the checking phases from ``first`` on; findings land in state."""
        steps = {"pages": self._pages, "simple": self._simple, "files": self._files, "root": self._root}
        for phase in _PHASES[_PHASES.index(first) :]:
            if phase not in steps:
                break
            cursor = self._cursor_for(phase)
            self.state.advance(phase, cursor, commit=True)
            steps[phase](cursor)
        self.report.counts = self.state.counts()

    def _cursor_for(self, phase: str) -> str:
        current, cursor = self.state.cursor()
        return cursor if current == phase else ""

    def _note(self, finding: Finding) -> None:
        self.state.add_finding(finding)

    # -- pages ----------------------------------------------------------------------------------

    def _pages(self, after: str) -> None:
        ticker = Ticker(self.reporter, "pages")
        for name, serial in self.state.published_after(after):
            self._check_project(name, serial)
            self.state.advance("pages", name)
            ticker.tick(name)
        self.report.projects = ticker.count

    def _check_project(self, name: str, serial: int | None) -> None:
        html_path, v1_html_path, json_path = layout.page_paths(layout.project_name(name))
        where = layout.project_dir(layout.project_name(name))
        bodies = [self._read_page(p) for p in (html_path, v1_html_path, json_path)]
        html, v1_html, body = bodies
        if html is None or v1_html is None or body is None:
            self._note(Finding(Problem.PAGE_MISSING, where, name))
            return
        base = verify.page_base(name)
        try:
            json_page = parse.parse_project_json(body, base)
            # Byte-equal to the HTML rendered from the JSON page: consistent, without parsing the HTML.
            html_page = json_page if html == _rerender_html(json_page) else parse.parse_project_html(html, base, name)
        except UpstreamError as exc:
            self._note(Finding(Problem.PAGE_BAD, where, name, str(exc)[:200]))
            return
        result = verify.check_pages(name, json_page, html_page, serial, html == v1_html)
        for finding in result.findings:
            self._note(finding)
        # A pulled-through project's page links files fetched on first use: expected missing, not broken.
        lazy = self.state.lazy_paths(name)
        self.state.add_refs(r for r in result.references if r.path not in lazy)

    def _read_page(self, path: str) -> bytes | None:
        size = self.storage.size(path)
        if size is None or size > self.config.max_page_bytes:
            return None
        return b"".join(self.storage.read(path))

    # -- page directories -----------------------------------------------------------------------

    def _simple(self, _after: str) -> None:
        # Unordered, so not resumable by cursor; it costs one directory listing per project.
        unpublished: set[str] = set()
        for entry in self.storage.scan(layout.SIMPLE):
            rel = f"{layout.SIMPLE}/{entry.name}"
            if not _utf8(entry.name):
                self._bad_name(rel)
                continue
            if not entry.is_dir:
                if layout.is_temp_name(entry.name):
                    self._note(Finding(Problem.TEMP, rel, None))
                continue
            if not self.state.is_published(entry.name):
                if next(iter(self.storage.scan(rel)), None) is None:
                    continue  # nothing in it is served (SeaweedFS lists a prefix a deletion emptied)
                self._note(Finding(Problem.ORPHAN_PAGE, rel, None))
                self._keep_links_of(entry.name)
                unpublished.add(entry.name)
                continue
            if not self.storage.temp_names:
                continue  # a listing per project only to find temp files, where there are none
            for inner in self.storage.scan(rel):
                if layout.is_temp_name(inner.name):
                    self._note(Finding(Problem.TEMP, f"{rel}/{inner.name}", None))
        if unpublished:
            self._keep_listed(unpublished)

    def _keep_links_of(self, name: str) -> None:
        """A page state does not publish is still served: what it links is never an orphan."""
        try:
            project = layout.project_name(name)
        except UnsafeName:
            return
        html_path, _, json_path = layout.page_paths(project)
        base = verify.page_base(name)
        for path, read in ((json_path, parse.parse_project_json), (html_path, None)):
            body = self._read_page(path)
            if body is None:
                continue
            try:
                page = read(body, base) if read is not None else parse.parse_project_html(body, base, name)
            except UpstreamError:
                continue
            self.state.keep(verify.linked_paths(page))

    def _keep_listed(self, names: set[str]) -> None:
        """Pages of ``names`` the root index lists are what clients are sent to: never orphans."""
        listed = set(root_names(self.storage, f"{layout.SIMPLE}/index.v1_json", parse.IndexJsonParser()))
        listed |= set(root_names(self.storage, f"{layout.SIMPLE}/index.html", parse.IndexHtmlParser()))
        self.state.keep(f"{layout.SIMPLE}/{name}" for name in sorted(names & listed))

    # -- files ----------------------------------------------------------------------------------

    def _files(self, after: str) -> None:
        ticker = Ticker(self.reporter, "files")
        disk = walk_sorted(self.storage, layout.PACKAGES, after, self._bad_name)
        joined = verify.join(self.state.files_after(after), self.state.refs_after(after), disk)
        for row in joined:
            finding = verify.classify(row)
            if self._should_hash(row, finding):
                assert row.recorded is not None
                finding = verify.check_hash(row.recorded, self._sha256(row.path)) or finding
            if finding is not None:
                self._note(finding)
            self.state.advance("files", row.path)
            ticker.tick(row.path)
        self.report.files = ticker.count

    def _should_hash(self, row: verify.Joined, finding: Finding | None) -> bool:
        # An unreferenced file is hashed too: a repair may link it again, and must not link bad bytes.
        usable = finding is None or finding.problem is Problem.UNREFERENCED
        return self.options.hashes and usable and row.recorded is not None

    def _bad_name(self, path: str) -> None:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        self._note(Finding(Problem.BAD_NAME, shown, None))

    def _sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        for chunk in self.storage.read(path):
            digest.update(chunk)
            self.report.bytes_hashed += len(chunk)
        return digest.hexdigest()

    # -- the root index -------------------------------------------------------------------------

    def _root(self, _after: str) -> None:
        html, v1_html, v1_json = layout.root_paths()
        problem = self._root_problem(html, v1_html, v1_json)
        if problem is not None:
            self._note(Finding(Problem.ROOT_BAD, v1_json, None, problem))

    def _root_problem(self, html: str, v1_html: str, v1_json: str) -> str | None:
        if any(self.storage.size(p) is None for p in (html, v1_html, v1_json)):
            return "missing"
        if not _same_bytes(self.storage, html, v1_html):
            return "index.html and index.v1_html differ"
        for path, parser in ((v1_json, parse.IndexJsonParser()), (html, parse.IndexHtmlParser())):
            problem = self._root_listing_problem(path, parser)
            if problem is not None:
                return problem
        return None

    def _root_listing_problem(self, path: str, parser: parse.IndexJsonParser | parse.IndexHtmlParser) -> str | None:
        def listed() -> Iterator[str]:
            for chunk in self.storage.read(path):
                for entry in parser.feed(chunk):
                    yield entry.name

        expected = self.state.iter_published_deleting()
        try:
            first = next(verify.diff_names(expected, listed()), None)
            meta = parser.close()
        except UpstreamError as exc:
            return f"{path}: {exc}"[:200]
        if first is not None:
            return f"{path} {first.detail}"
        if meta.last_serial != self.state.get_int("serial"):
            return f"{path} claims serial {meta.last_serial}, state says {self.state.get_int('serial')}"
        return None

    def rewrite_root(self) -> None:
        """The same root a sync writes: every published project, at the serial of the last complete run."""
        from mirror.sync.engine import write_root

        write_root(self.state, self.storage)
        self.report.root_rewritten = True

    # -- orphans --------------------------------------------------------------------------------

    def remove_orphans(self) -> None:
        """Delete what no page references; with only ``--repair``, just temp files."""
        after = self._cursor_for("orphans")
        self.state.advance("orphans", after, commit=True)
        batch: list[Finding] = []
        for finding in self.state.orphans_after(after):
            if self.options.delete_orphans or finding.problem is Problem.TEMP:
                batch.append(finding)
            if len(batch) >= _ORPHAN_BATCH:
                self._remove(batch)
        self._remove(batch)

    def _remove(self, batch: list[Finding]) -> None:
        if not batch:
            return
        # State forgets a file before it goes: a crash in between leaves an untracked file, never a lie.
        self.state.remove_files([f.path for f in batch if f.problem is Problem.UNREFERENCED])
        self.state.commit()
        for finding in batch:
            if finding.problem is Problem.ORPHAN_PAGE:
                for page in layout.PAGE_FILES:
                    self.storage.delete(f"{finding.path}/{page}")
            else:
                self.storage.delete(finding.path)
            self.report.orphans_removed += 1
        self.state.advance("orphans", batch[-1].path, commit=True)
        batch.clear()

    # -- repair ---------------------------------------------------------------------------------

    def repair_batches(self) -> Iterator[list[str]]:
        """Projects to re-sync, a batch at a time, each invalidated (and committed) before it is yielded."""
        after = self._cursor_for("repair")
        self.state.advance("repair", after, commit=True)
        while names := self.state.repair_projects_after(after)[:_REPAIR_BATCH]:
            for name in names:
                self.state.invalidate(name)
            self.state.commit()
            yield names
            after = names[-1]
            # The repair sync changed last_run: keep the pass resumable under its new key.
            self.state.set_meta("verify_pass", self.pass_key())
            self.state.advance("repair", after, commit=True)


def walk_sorted(storage: Storage, top: str, after: str, bad_name: Callable[[str], None]) -> Iterator[OnDisk]:
    """Files under ``top`` (a path under ``web/``), in sorted order, only those after ``after``.

    Memory: one directory listing per level of the current path, never the whole tree. Names
    that are not UTF-8 cannot be in state nor sort like it: they go to ``bad_name`` instead.
    A backend with its own sorted walk (an object store: few listings, no such names) walks itself.
    """
    if isinstance(storage, SortedWalk):
        yield from (OnDisk(path, size) for path, size in storage.walk(top, after))
        return
    entries = sorted(storage.scan(top), key=lambda e: verify.walk_key(e.name, e.is_dir))
    for entry in entries:
        path = f"{top}/{entry.name}"
        if not _utf8(entry.name):
            if after < path:
                bad_name(path)
            continue
        if entry.is_dir:
            prefix = path + "/"
            if prefix < after and not after.startswith(prefix):
                continue  # every path below sorts before the cursor: done in an earlier run
            yield from walk_sorted(storage, path, after, bad_name)
        elif path > after:
            yield OnDisk(path, entry.size)


def _rerender_html(page: ProjectPage) -> bytes:
    """The HTML a sync would have written beside this (parsed, so absolute-linked) JSON page."""
    files = []
    for dist in page.files:
        path = verify.linked_path(dist.url)
        if path is None:
            return b""
        files.append(replace(dist, url=verify.page_link(path)))
    return render.render_project_html(replace(page, files=tuple(files)))


def _utf8(name: str) -> bool:
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir hands undecodable bytes over as lone surrogates
        return False
    return True


def _same_bytes(storage: Storage, a: str, b: str) -> bool:
    if storage.size(a) != storage.size(b):
        return False
    return _same_stream(storage.read(a), storage.read(b))


def _same_stream(a: Iterable[bytes], b: Iterable[bytes]) -> bool:
    """Two streams of equal length hold the same bytes, compared piece by piece (chunks may differ)."""
    left, right = iter(a), iter(b)
    x = y = b""
    while True:
        if not x:
            x = next(left, b"")
        if not y:
            y = next(right, b"")
        if not x or not y:
            return not x and not y
        n = min(len(x), len(y))
        if x[:n] != y[:n]:
            return False
        x, y = x[n:], y[n:]


# -- the command --------------------------------------------------------------------------------


def run(
    config: Config, state: VerifyState, storage: Storage, reporter: Reporter, options: VerifyOptions
) -> VerifyReport:
    """One verify pass (or the rest of an interrupted one): check, then prune and repair if asked.

    The findings stay in state until the caller ends the pass with :meth:`VerifyState.finish_pass`.
    """
    verifier = Verifier(config, state, storage, reporter, options)
    first = verifier.start()
    if first in ("pages", "simple", "files", "root"):
        verifier.check(first)
    verifier.report.counts = state.counts()
    if not options.dry_run and (options.delete_orphans or options.repair) and first != "repair":
        verifier.remove_orphans()
        verifier.report.orphans_kept = state.kept_orphans()
    if options.repair and not options.dry_run:
        _repair(config, verifier, storage, reporter)
    return verifier.report


def _repair(config: Config, verifier: Verifier, storage: Storage, reporter: Reporter) -> None:
    for names in verifier.repair_batches():
        private = [n for n in names if verifier.state.is_private(n)]
        if private:
            verifier.report.repaired += len(private)
            for name, lost in _republish(config, verifier.state, storage, private).items():
                verifier.report.repaired -= 1
                verifier.report.repair_failed[name] = (
                    f"{name}: private files lost or damaged, left out of its page: {', '.join(lost)}; add them again"
                )
            names = [n for n in names if n not in private]
            if not names:
                continue
        config.require_upstream()
        reporter.info(f"verify: repairing {len(names)} projects through a sync")
        outcome = _resync(config, verifier.state, storage, reporter, names)
        verifier.report.repaired += len(names) - len(outcome)
        verifier.report.repair_failed.update(outcome)
    if verifier.state.root_needs_repair():
        verifier.rewrite_root()


def _republish(config: Config, state: VerifyState, storage: Storage, names: list[str]) -> dict[str, list[str]]:
    """Private projects cannot come from the upstream: their pages are written again from state."""
    import anyio

    from mirror.private.publish import PrivateIndex

    async def once() -> dict[str, list[str]]:
        lost = {}
        async with storage.publishing():
            index = PrivateIndex(config, state, storage)
            for name in names:
                missing = await index.republish(name)
                if missing:
                    lost[name] = missing
        return lost

    return anyio.run(once, backend="asyncio")


def _resync(
    config: Config, state: VerifyState, storage: Storage, reporter: Reporter, names: list[str]
) -> dict[str, str]:
    """Sync exactly ``names`` through the normal, verifying download path; returns what failed."""
    import anyio

    from mirror._http import Upstream
    from mirror._plugins import load_chain
    from mirror.sync.engine import Options, Syncer

    filters = load_chain(config.filters, str(config.source))

    async def once() -> dict[str, str]:
        async with Upstream(config) as upstream:
            syncer = Syncer(config, state, storage, upstream, filters, reporter, Options(projects=tuple(names)))
            report = await syncer.run()
        return {**report.failed, **report.deferred}

    # A repair never deletes: an upstream that glitched while listing must not cost the mirror
    # the very projects it was asked to fix. A full sync decides, behind its deletion guard.
    state.keep_projects = True
    try:
        failed = anyio.run(once, backend="asyncio")
    finally:
        state.keep_projects = False
    for name in state.not_upstream(names):
        failed[name] = f"{name}: not listed by the upstream now; left as it is for the next sync"
    return failed
