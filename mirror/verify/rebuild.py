"""``mirror verify --rebuild-state``: a new state database made from the published tree, without downloading.

The published pages say what the mirror serves: every project page directory under
``web/simple/`` is read (the JSON page, else the HTML one), and every file it links is hashed
on disk and checked against the page's size and sha256. What matches is recorded (projects
with the serial of their page, files with their size and sha256); what does not is reported
and not recorded, so the next sync fetches it again. ``web/`` is not touched: the mirror
stays servable and identical throughout.

The new database is built beside the old one and renamed into place under the run lock; the
old one, if any, is kept as ``mirror.sqlite3.replaced-<UTC time>``. Nothing is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mirror._config import Config
from mirror._progress import Reporter
from mirror._state import STATE_DB, Lock, State
from mirror.core import layout, parse, private, verify
from mirror.core.models import DistFile, ProjectPage
from mirror.core.plan import LocalFile
from mirror.core.private import PrivateFile
from mirror.errors import EnvironmentFault, Refused, UnsafeName, UpstreamError
from mirror.private.names import read_names
from mirror.storage.base import Storage, root_names
from mirror.verify.engine import Ticker

_SQLITE_SIDECARS = ("", "-wal", "-shm")
_EXAMPLES = 10


@dataclass
class RebuildReport:
    projects: int = 0
    files: int = 0
    bytes_hashed: int = 0
    seconds: float = 0.0
    problems: int = 0
    examples: list[str] = field(default_factory=list)
    unlisted: int = 0
    """Projects with a page that the root index does not list (recorded all the same: the page is served)."""
    replaced: Path | None = None

    def problem(self, text: str) -> None:
        self.problems += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append(text)


def rebuild_state(config: Config, storage: Storage, reporter: Reporter, *, dry_run: bool = False) -> RebuildReport:
    """Rebuild ``state/mirror.sqlite3`` from the tree in ``storage`` (``dry_run``: only report what it would hold)."""
    started = time.monotonic()
    report = RebuildReport()
    state_dir = config.state_dir
    with Lock(state_dir / "lock"):
        temp = state_dir / f"{STATE_DB}.rebuild"
        _remove_db(temp)
        state = State(temp)
        try:
            _record_tree(storage, config.state_dir, state, reporter, report)
            state.set_meta("rebuilt", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            state.commit()
        finally:
            state.close()
        if dry_run:
            _remove_db(temp)
        else:
            report.replaced = _swap_in(temp, state_dir)
            # The journal named directories of a run of the old state: its "strays" are the new state's files.
            with contextlib.suppress(FileNotFoundError):
                (state_dir / "temp-dirs.journal").unlink()
    report.seconds = time.monotonic() - started
    return report


def _record_tree(web: Storage, state_dir: Path, state: State, reporter: Reporter, report: RebuildReport) -> None:
    serial = _root_serial(web, f"{layout.SIMPLE}/index.v1_json")
    if serial is not None:
        state.set_meta("serial", serial)
    listed = set(root_names(web, f"{layout.SIMPLE}/index.v1_json", parse.IndexJsonParser()))
    ticker = Ticker(reporter, "rebuild")
    names = sorted(entry.name for entry in web.scan(layout.SIMPLE) if entry.is_dir)
    private = read_names(state_dir)
    for name in names:
        page = _read_page(web, name, report)
        if page is None:
            continue
        _record_project(web, state, page, report)
        if page.name in private:
            _record_private(state, page)
        if name not in listed:
            report.unlisted += 1
        ticker.tick(name)


def _record_private(state: State, page: ProjectPage) -> None:
    """A reserved name stays reserved: its files as the page shows them (the state lost the rest)."""
    state.mark_private(page.name)
    held = state.project_files(page.name)
    for dist in page.files:
        path = verify.linked_path(dist.url)
        if path is None or path not in held:
            continue
        try:
            version = str(private.parse_distribution(dist.filename).version)
        except Refused:
            continue
        meta = layout.metadata_path(path) if layout.metadata_path(path) in held else None
        record = PrivateFile(path, dist.filename, version, dist.requires_python, dist.upload_time or "", meta)
        state.add_private_file(page.name, record)


def _root_serial(web: Storage, path: str) -> int | None:
    parser = parse.IndexJsonParser()
    if web.size(path) is None:
        return None
    try:
        for chunk in web.read(path):
            parser.feed(chunk)
        return parser.close().last_serial
    except (OSError, UpstreamError, EnvironmentFault):
        return None


def _read_page(web: Storage, name: str, report: RebuildReport) -> ProjectPage | None:
    """The project's published page (JSON, else HTML), or None (reported) if there is none usable."""
    try:
        project = layout.project_name(name)
    except UnsafeName:
        project = None
    if project != name:
        report.problem(f"{layout.SIMPLE}/{name}: not a normalized project name; not recorded")
        return None
    html_path, _, json_path = layout.page_paths(project)
    base = verify.page_base(name)
    errors = []
    for path in (json_path, html_path):
        if web.size(path) is None:
            continue
        body = b"".join(web.read(path))
        try:
            if path == json_path:
                return parse.parse_project_json(body, base)
            return parse.parse_project_html(body, base, name)
        except UpstreamError as exc:
            errors.append(str(exc)[:160])
    report.problem(f"{layout.SIMPLE}/{name}: no usable page ({'; '.join(errors) or 'missing'}); not recorded")
    return None


def _record_project(web: Storage, state: State, page: ProjectPage, report: RebuildReport) -> None:
    """Record the page's files that are on disk as it says; the project at its page's serial if all are."""
    complete = True
    for dist in page.files:
        path = verify.linked_path(dist.url)
        if path is None:
            report.problem(f"{page.name}: links outside web/packages/: {dist.url[:120]}")
            complete = False
            continue
        complete &= _record_file(web, state, page.name, path, dist.size, dist.sha256, report)
        if dist.core_metadata:
            _record_metadata(web, state, page.name, path, dist, report)
    # An incomplete project is recorded without a serial: the next sync fetches its page and what is missing.
    state.publish_project(page.name, page.last_serial if complete else None, None, None)
    report.projects += 1


def _record_metadata(web: Storage, state: State, name: str, path: str, dist: DistFile, report: RebuildReport) -> None:
    hashes = dist.metadata_hashes or {}
    _record_file(web, state, name, layout.metadata_path(path), None, hashes.get("sha256"), report)


def _record_file(
    web: Storage, state: State, name: str, path: str, size: int | None, sha256: str | None, report: RebuildReport
) -> bool:
    owner = state.file_owner(path)
    if owner is not None and owner != name:
        report.problem(f"{path}: linked by {name} and by {owner}; recorded for {owner}")
        return False
    if web.size(path) is None:
        report.problem(f"{path}: linked by {name}, missing on disk")
        return False
    hashing = hashlib.sha256()
    held = 0
    for chunk in web.read(path):
        hashing.update(chunk)
        held += len(chunk)
    digest = hashing.hexdigest()
    report.bytes_hashed += held
    if (size is not None and held != size) or (sha256 is not None and digest != sha256):
        report.problem(f"{path}: {held} bytes, sha256 {digest[:12]}..., not what {name}'s page says; not recorded")
        return False
    state.add_file(name, LocalFile(path, held, digest))
    report.files += 1
    return True


def _swap_in(temp: Path, state_dir: Path) -> Path | None:
    """Rename the new database into place; the old one (if any) moves aside, never deleted."""
    db = state_dir / STATE_DB
    replaced = None
    try:
        if db.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            replaced = state_dir / f"{STATE_DB}.replaced-{stamp}"
            _move_db(db, replaced)
        _move_db(temp, db)
    except OSError as exc:
        raise EnvironmentFault(f"cannot put the rebuilt state database in place: {exc}") from None
    return replaced


def _move_db(source: Path, target: Path) -> None:
    # SQLite finds a database's write-ahead log by name: the three files move together.
    for suffix in reversed(_SQLITE_SIDECARS):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{source}{suffix}").replace(f"{target}{suffix}")


def _remove_db(path: Path) -> None:
    for suffix in _SQLITE_SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()
