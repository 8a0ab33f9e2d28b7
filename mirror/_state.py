"""Local state in SQLite under ``<directory>/state/``, and the run lock.

What is recorded here is always true of the tree: a project's row is written only after its
pages are published, a file's row only after it was verified and renamed into place. Writes
are committed in batches (by count and by time), so a crash loses at most one batch of
bookkeeping, and the next run re-derives it from the tree without downloading again.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from packaging.utils import NormalizedName

from mirror.core.models import IndexEntry
from mirror.core.plan import Action, IndexChange, LocalFile, LocalProject
from mirror.core.private import PrivateFile
from mirror.errors import ConfigError, EnvironmentFault, LockHeld

if TYPE_CHECKING:
    from mirror.core.parse import IndexBatch

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    name TEXT PRIMARY KEY,
    serial INTEGER,            -- the serial of the published page (NULL: unknown or not yet published)
    published INTEGER NOT NULL DEFAULT 0,  -- 1 once the project's pages exist
    etag TEXT,
    last_modified TEXT,
    page_sha256 TEXT           -- sha256 of the upstream body the published pages were made from
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,     -- relative to web/
    project TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_project ON files (project);
CREATE TABLE IF NOT EXISTS upstream (name TEXT PRIMARY KEY, serial INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS work (id INTEGER PRIMARY KEY, action TEXT NOT NULL, name TEXT NOT NULL, serial INTEGER);
-- The airgap change log: the last change of every path ever published or deleted under web/.
CREATE TABLE IF NOT EXISTS changes (
    path TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,      -- grows with every change: "changed since X" is "seq > X"
    deleted INTEGER NOT NULL,
    born INTEGER NOT NULL      -- seq at which the path last appeared: tells added from changed
);
CREATE INDEX IF NOT EXISTS changes_seq ON changes (seq);
CREATE TABLE IF NOT EXISTS exports (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, serial INTEGER, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS imports (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, applied REAL NOT NULL);
CREATE TABLE IF NOT EXISTS recheck (name TEXT PRIMARY KEY, due TEXT NOT NULL);  -- filter drops that expire
CREATE TABLE IF NOT EXISTS closure (name TEXT PRIMARY KEY, want TEXT NOT NULL);  -- the last run's dependency closure
-- Private projects (mirror add, uploads): reserved names the sync never takes from the upstream.
CREATE TABLE IF NOT EXISTS private (name TEXT PRIMARY KEY);
-- What a private project's page says of each file beyond its size and sha256 (those are in files).
CREATE TABLE IF NOT EXISTS private_files (
    path TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    filename TEXT NOT NULL,
    version TEXT NOT NULL,
    requires_python TEXT,
    upload_time TEXT NOT NULL,
    metadata_path TEXT         -- the .metadata beside it, when there is one
);
CREATE INDEX IF NOT EXISTS private_files_project ON private_files (project);
-- Pull-through (mirror serve): the projects it brought in (part of the wanted set from then on),
-- when their page was last fetched, and the files their pages link that are fetched on first use.
CREATE TABLE IF NOT EXISTS pulled (name TEXT PRIMARY KEY, checked REAL NOT NULL);
CREATE TABLE IF NOT EXISTS lazy (
    path TEXT PRIMARY KEY,     -- relative to web/; linked by a published page, not on disk yet
    project TEXT NOT NULL,
    url TEXT NOT NULL,         -- where the upstream serves it
    size INTEGER,              -- NULL for a .metadata or provenance file (the page gives only its hash)
    sha256 TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lazy_project ON lazy (project);
"""
_UPSTREAM_TABLE = "CREATE TABLE upstream (name TEXT PRIMARY KEY, serial INTEGER) WITHOUT ROWID"
"""The staged listing: one B-tree keyed by name (a rowid table would keep a second one, its name index)."""
_INSERT_UPSTREAM = "INSERT OR REPLACE INTO upstream (name, serial) VALUES (?, ?)"
# Staging a million names row by row (executemany) costs a statement execution per row; one INSERT of
# 500 rows binds the same values in a tenth of the calls: 1,000,000 rows took 0.6 s instead of 1.8 s.
_VALUES_ROWS = 500
_INSERT_NAME = "INSERT OR REPLACE INTO upstream (name, serial) VALUES (?, NULL)"
_INSERT_NAMES_MANY = "INSERT OR REPLACE INTO upstream (name, serial) VALUES " + ",".join(["(?, NULL)"] * _VALUES_ROWS)  # noqa: S608
_INSERT_UPSTREAM_MANY = "INSERT OR REPLACE INTO upstream (name, serial) VALUES " + ",".join(["(?, ?)"] * _VALUES_ROWS)  # noqa: S608
# A crash loses at most one batch of bookkeeping (the next run re-derives it from the tree), and
# the 2 s bound keeps a batch small when files are big; larger batches rewrite fewer B-tree pages.
_BATCH_ROWS = 5000
_BATCH_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Totals:
    projects: int
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    deleted: bool
    added: bool
    """Written, and absent at the start of the range asked for (not merely rewritten)."""


# Bound parameters per `IN (...)` query (SQLite allows 32,766; short queries plan and bind fast).
_IN_PARAMS = 500

# Names of the temporary tables iter_changes reads from (one per iteration in flight).
_SNAPSHOTS = itertools.count()


class State:
    """One SQLite connection, used from one thread (the event loop's)."""

    _change_seq: int | None = None

    def __init__(self, path: Path, *, dry_run: bool = False) -> None:
        """With ``dry_run`` nothing is ever committed: the run's writes are rolled back on close."""
        self._dry_run = False  # the schema itself is committed even for a dry run
        self._changes: list[tuple[str, int, int, int]] = []
        # File rows added since the last statement that reads or deletes files: one executemany
        # for them all (an INSERT each was 2% of a sync's samples). Flushed before any such statement.
        self._files: list[tuple[str, str, int, str]] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # 32 MiB of page cache (the default 2 MiB re-read the files and change-log B-trees on every batch).
            self._db.execute("PRAGMA cache_size=-32768")
            self._db.executescript(_SCHEMA)
            _add_column(self._db, "projects", "page_sha256 TEXT")
        except (OSError, sqlite3.Error) as exc:
            raise EnvironmentFault(
                f"cannot open state database {path}: {exc}; if it is damaged, "
                "`mirror verify --rebuild-state` rebuilds it from the tree"
            ) from None
        self._db.execute("BEGIN")
        self._pending = 0
        self._since = time.monotonic()
        if self.get_meta("schema") is None:
            self.set_meta("schema", SCHEMA_VERSION)
        self.commit()
        self._dry_run = dry_run

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self._dry_run:
                self._db.execute("ROLLBACK")
            else:
                self.commit()
        self._db.close()

    # -- transactions -------------------------------------------------------------------------

    def commit(self) -> None:
        if self._dry_run:
            return
        try:
            self._flush_files()
            self._flush_changes()
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
        except sqlite3.OperationalError as exc:
            raise EnvironmentFault(f"cannot write state: {exc}") from None
        self._pending = 0
        self._since = time.monotonic()

    def _wrote(self, rows: int = 1) -> None:
        self._pending += rows
        if self._pending >= _BATCH_ROWS or time.monotonic() - self._since > _BATCH_SECONDS:
            self.commit()

    # -- meta ---------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | int | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))
        self._wrote()

    def get_int(self, key: str) -> int | None:
        value = self.get_meta(key)
        return None if value is None else int(value)

    # -- the upstream listing and the work list -------------------------------------------------

    def replace_upstream(self, batches: Iterable[IndexBatch]) -> int:
        """Swap in a complete new upstream listing; a later entry for a name wins (it is one project)."""
        self.commit()
        # Recreated, not emptied: a state made before the table was WITHOUT ROWID gets the new form.
        self._db.execute("DROP TABLE IF EXISTS upstream")
        self._db.execute(_UPSTREAM_TABLE)
        count = 0
        values: list[str | int | None] = [None] * (2 * _VALUES_ROWS)
        for batch in batches:
            names, serials = batch.names, batch.serials
            full = len(names) - len(names) % _VALUES_ROWS
            if serials.count(None) == len(serials):
                # No serials (an HTML root): names alone. sqlite3 binds None through its adapter
                # lookup, which costs more than the insert (1,000,000 rows: 1.0 s instead of 0.5 s).
                for start in range(0, full, _VALUES_ROWS):
                    self._db.execute(_INSERT_NAMES_MANY, names[start : start + _VALUES_ROWS])
                self._db.executemany(_INSERT_NAME, zip(names[full:]))
            else:
                for start in range(0, full, _VALUES_ROWS):
                    # name, serial, name, serial, ...: interleaved by slice assignment, no tuple per row.
                    values[0::2] = names[start : start + _VALUES_ROWS]
                    values[1::2] = serials[start : start + _VALUES_ROWS]
                    self._db.execute(_INSERT_UPSTREAM_MANY, values)
                self._db.executemany(_INSERT_UPSTREAM, zip(names[full:], serials[full:], strict=True))
            count += len(names)
        self.commit()
        return count

    def iter_upstream(self) -> Iterator[IndexEntry]:
        for name, serial in self._db.execute("SELECT name, serial FROM upstream ORDER BY name"):
            yield IndexEntry(NormalizedName(name), serial)

    def iter_local(self) -> Iterator[LocalProject]:
        rows = self._db.execute("SELECT name, serial, published FROM projects ORDER BY name")
        for name, serial, published in rows:
            # An unpublished project's serial means nothing yet: it must be synced.
            yield LocalProject(NormalizedName(name), serial if published else None)

    def store_work(self, changes: Iterable[IndexChange]) -> None:
        """Materialize the plan, so executing it never holds a read cursor open across writes."""
        self._db.execute("DELETE FROM work")
        rows = ((c.action.value, c.name, c.serial) for c in changes)
        self._db.executemany("INSERT INTO work (action, name, serial) VALUES (?, ?, ?)", rows)
        self.commit()

    def plan_work(self, *, recheck_all: bool = False, deletions_only: bool = False) -> None:
        """:func:`mirror.core.plan.plan_index` of the whole staged listing against every local project,
        stored as :meth:`store_work` would: the same rows, planned by SQLite in one pass (no Python
        object per project). ``recheck_all`` plans as if no local serial were known (a forced check);
        ``deletions_only`` stores only the deletions (a resolving run queues its syncs itself).

        A project is synced when it is new, when the upstream gives no serial, when its last sync did
        not complete (unpublished, or no serial), or when its serial moved; deleted when unlisted.
        """
        self._db.execute("DELETE FROM work")
        if not deletions_only:
            self._db.execute(
                "INSERT INTO work (action, name, serial) SELECT 'sync', u.name, u.serial FROM upstream u "
                "LEFT JOIN projects p ON p.name = u.name WHERE ? OR p.name IS NULL OR u.serial IS NULL "
                "OR NOT p.published OR p.serial IS NULL OR u.serial > p.serial ORDER BY u.name",
                (recheck_all,),
            )
        self._db.execute(
            "INSERT INTO work (action, name, serial) SELECT 'delete', p.name, NULL FROM projects p "
            "WHERE NOT EXISTS (SELECT 1 FROM upstream u WHERE u.name = p.name) ORDER BY p.name"
        )
        self.commit()

    def queue_deletions(self, names: Iterable[str]) -> None:
        """Add project deletions to the work list (names already queued for deletion are skipped)."""
        self._db.executemany(
            "INSERT INTO work (action, name, serial) SELECT 'delete', ?, NULL "
            "WHERE NOT EXISTS (SELECT 1 FROM work WHERE action = 'delete' AND name = ?)",
            ((name, name) for name in names),
        )
        self.commit()

    def count_work(self, action: Action) -> int:
        row = self._db.execute("SELECT count(*) FROM work WHERE action = ?", (action.value,)).fetchone()
        return int(row[0])

    def iter_work(self, action: Action, batch: int = 1000) -> Iterator[IndexChange]:
        last = 0
        while True:
            rows = self._db.execute(
                "SELECT id, name, serial FROM work WHERE action = ? AND id > ? ORDER BY id LIMIT ?",
                (action.value, last, batch),
            ).fetchall()
            if not rows:
                return
            for row_id, name, serial in rows:
                last = row_id
                yield IndexChange(action, NormalizedName(name), serial)

    # -- projects and files ---------------------------------------------------------------------

    def project(self, name: str) -> tuple[int | None, str | None, str | None] | None:
        """(serial, etag, last_modified) of a known project, or None."""
        row = self._db.execute("SELECT serial, etag, last_modified FROM projects WHERE name = ?", (name,)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def project_files(self, name: str) -> dict[str, LocalFile]:
        self._flush_files()
        rows = self._db.execute("SELECT path, size, sha256 FROM files WHERE project = ?", (name,))
        return {path: LocalFile(path, size, sha256) for path, size, sha256 in rows}

    def file_owner(self, path: str) -> str | None:
        return self.file_owners([path]).get(path)

    def file_owners(self, paths: Iterable[str]) -> dict[str, str]:
        """The project of each of ``paths`` that state holds (a path it does not hold is left out)."""
        wanted = list(paths)
        owners: dict[str, str] = {}
        self._flush_files()
        for start in range(0, len(wanted), _IN_PARAMS):
            chunk = wanted[start : start + _IN_PARAMS]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT path, project FROM files WHERE path IN ({marks})"  # noqa: S608 - placeholders only
            owners.update((str(path), str(project)) for path, project in self._db.execute(query, chunk))
        return owners

    def add_file(self, project: str, held: LocalFile) -> None:
        self._files.append((held.path, project, held.size, held.sha256))
        self._wrote()

    def _flush_files(self) -> None:
        if self._files:
            rows, self._files = self._files, []
            self._db.executemany("INSERT OR REPLACE INTO files (path, project, size, sha256) VALUES (?, ?, ?, ?)", rows)

    def remove_files(self, paths: Iterable[str]) -> None:
        rows = [(p,) for p in paths]
        if rows:  # most synced pages delete nothing: no statement at all then
            self._flush_files()
            self._db.executemany("DELETE FROM files WHERE path = ?", rows)
            self._wrote(len(rows))

    def publish_project(
        self, name: str, serial: int | None, etag: str | None, last_modified: str | None, page_sha256: str | None = None
    ) -> None:
        """Record that ``name``'s pages are published at ``serial`` (call after the pages exist)."""
        self._db.execute(
            "INSERT OR REPLACE INTO projects (name, serial, published, etag, last_modified, page_sha256) "
            "VALUES (?, ?, 1, ?, ?, ?)",
            (name, serial, etag, last_modified, page_sha256),
        )
        self._wrote()

    def page_digest(self, name: str) -> str | None:
        """The sha256 of the upstream page body ``name``'s published pages were made from, if known."""
        row = self._db.execute("SELECT page_sha256 FROM projects WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def register_project(self, name: str) -> None:
        """Make a project known before its first files land, so its deletion can find them."""
        self._db.execute("INSERT OR IGNORE INTO projects (name, serial, published) VALUES (?, NULL, 0)", (name,))
        self._wrote()

    def forget_project(self, name: str) -> None:
        self._flush_files()
        self._db.execute("DELETE FROM files WHERE project = ?", (name,))
        self._db.execute("DELETE FROM lazy WHERE project = ?", (name,))
        self._db.execute("DELETE FROM pulled WHERE name = ?", (name,))
        self._db.execute("DELETE FROM projects WHERE name = ?", (name,))
        self._wrote()

    def iter_published(self, exclude_deleting: bool = False) -> Iterator[IndexEntry]:
        """Projects with a published page, by name; optionally without those queued for deletion."""
        deleting = " AND name NOT IN (SELECT name FROM work WHERE action = 'delete')" if exclude_deleting else ""
        query = f"SELECT name, serial FROM projects WHERE published = 1{deleting} ORDER BY name"  # noqa: S608
        for name, serial in self._db.execute(query):
            yield IndexEntry(NormalizedName(name), serial)

    def has_history(self) -> bool:
        """Whether this database ever recorded a run: a project, a file, an upstream listing or an import.

        A database created a moment ago, beside a tree someone else made, has none (see ``mirror._stateloss``).
        """
        self._flush_files()
        for table in ("projects", "files", "upstream", "imports"):
            if self._db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:  # noqa: S608
                return True
        return self.get_meta("rebuilt") is not None

    def totals(self) -> Totals:
        projects = self._db.execute("SELECT count(*) FROM projects WHERE published = 1").fetchone()[0]
        self._flush_files()
        files, size = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM files").fetchone()
        return Totals(int(projects), int(files), int(size))

    # -- filters: the dependency closure and what a run needs to know about one project --------------

    def closure(self) -> dict[NormalizedName, str]:
        """The dependency closure the last complete resolution reached: name → its want (as text)."""
        return {NormalizedName(name): want for name, want in self._db.execute("SELECT name, want FROM closure")}

    def replace_closure(self, wants: Iterable[tuple[str, str]]) -> None:
        self._db.execute("DELETE FROM closure")
        self._db.executemany("INSERT OR REPLACE INTO closure (name, want) VALUES (?, ?)", list(wants))
        self.commit()

    def set_upstream(self, name: str, serial: int | None, *, listed: bool = True) -> None:
        """Note one project of the listing as seen (or not) without the root (a direct run)."""
        if listed:
            self._db.execute("INSERT OR REPLACE INTO upstream (name, serial) VALUES (?, ?)", (name, serial))
        else:
            self._db.execute("DELETE FROM upstream WHERE name = ?", (name,))
        self._wrote()

    def upstream_entry(self, name: str) -> IndexEntry | None:
        row = self._db.execute("SELECT name, serial FROM upstream WHERE name = ?", (name,)).fetchone()
        return None if row is None else IndexEntry(NormalizedName(row[0]), row[1])

    def is_published(self, name: str) -> bool:
        row = self._db.execute("SELECT 1 FROM projects WHERE name = ? AND published = 1", (name,)).fetchone()
        return row is not None

    def local_project(self, name: str) -> LocalProject | None:
        row = self._db.execute("SELECT serial, published FROM projects WHERE name = ?", (name,)).fetchone()
        return None if row is None else LocalProject(NormalizedName(name), row[0] if row[1] else None)

    # -- private projects ---------------------------------------------------------------------------

    def is_private(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM private WHERE name = ?", (name,)).fetchone() is not None

    def private_names(self) -> frozenset[NormalizedName]:
        return frozenset(NormalizedName(n) for (n,) in self._db.execute("SELECT name FROM private"))

    def mark_private(self, name: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO private (name) VALUES (?)", (name,))
        self._wrote()

    def forget_private(self, name: str) -> None:
        self._db.execute("DELETE FROM private_files WHERE project = ?", (name,))
        self._db.execute("DELETE FROM private WHERE name = ?", (name,))
        self._wrote()

    def add_private_file(self, project: str, record: PrivateFile) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO private_files "
            "(path, project, filename, version, requires_python, upload_time, metadata_path) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.path,
                project,
                record.filename,
                record.version,
                record.requires_python,
                record.upload_time,
                record.metadata_path,
            ),
        )
        self._wrote()

    def remove_private_files(self, paths: Iterable[str]) -> None:
        rows = [(p,) for p in paths]
        self._db.executemany("DELETE FROM private_files WHERE path = ?", rows)
        self._wrote(len(rows))

    def private_files(self, project: str) -> list[PrivateFile]:
        """A private project's files, by file name."""
        rows = self._db.execute(
            "SELECT path, filename, version, requires_python, upload_time, metadata_path "
            "FROM private_files WHERE project = ? ORDER BY filename",
            (project,),
        )
        return [PrivateFile(*row) for row in rows]

    def set_recheck(self, name: str, due: str | None) -> None:
        """Look at ``name`` again at ``due`` (ISO 8601 UTC) even if the upstream does not change it."""
        if due is None:
            self._db.execute("DELETE FROM recheck WHERE name = ?", (name,))
        else:
            self._db.execute("INSERT OR REPLACE INTO recheck (name, due) VALUES (?, ?)", (name, due))
        self._wrote()

    def due_rechecks(self, now: str) -> set[NormalizedName] | None:
        """Projects due for a look at ``now``; None when nothing is scheduled at all."""
        if self._db.execute("SELECT 1 FROM recheck LIMIT 1").fetchone() is None:
            return None
        return {NormalizedName(n) for (n,) in self._db.execute("SELECT name FROM recheck WHERE due <= ?", (now,))}

    def count_upstream_deletions(self) -> int:
        """Planned project deletions the upstream caused (it no longer lists them), not the filters."""
        row = self._db.execute(
            "SELECT count(*) FROM work WHERE action = 'delete' AND name NOT IN (SELECT name FROM upstream)"
        ).fetchone()
        return int(row[0])

    def upstream_deletion_totals(self) -> tuple[int, int, int]:
        """Projects, files and bytes of the planned project deletions the upstream caused."""
        self._flush_files()
        row = self._db.execute(
            "SELECT count(DISTINCT w.name), count(f.path), coalesce(sum(f.size), 0) FROM work w "
            "LEFT JOIN files f ON f.project = w.name "
            "WHERE w.action = 'delete' AND w.name NOT IN (SELECT name FROM upstream)"
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    # -- pull-through: projects brought in on request, files fetched on first use ------------------

    def pulled(self) -> frozenset[NormalizedName]:
        return frozenset(NormalizedName(n) for (n,) in self._db.execute("SELECT name FROM pulled"))

    def pulled_checked(self) -> dict[NormalizedName, float]:
        """Every pulled-through project and when its page was last fetched (seconds since the epoch)."""
        return {NormalizedName(n): float(t) for n, t in self._db.execute("SELECT name, checked FROM pulled")}

    def add_pulled(self, name: str, checked: float) -> None:
        self._db.execute("INSERT OR REPLACE INTO pulled (name, checked) VALUES (?, ?)", (name, checked))
        self._wrote()

    def drop_pulled(self, name: str) -> None:
        self._db.execute("DELETE FROM pulled WHERE name = ?", (name,))
        self._wrote()

    def add_lazy(self, project: str, rows: Iterable[tuple[str, str, int | None, str]]) -> None:
        """Record (path, url, size, sha256) of files ``project``'s page will link without holding them."""
        batch = [(path, project, url, size, sha256) for path, url, size, sha256 in rows]
        self._db.executemany(
            "INSERT OR REPLACE INTO lazy (path, project, url, size, sha256) VALUES (?, ?, ?, ?, ?)", batch
        )
        self._wrote(len(batch))

    def keep_lazy(self, project: str, paths: Iterable[str]) -> None:
        """Forget ``project``'s lazy files that are not in ``paths`` (its new page no longer links them)."""
        keep = set(paths)
        if not keep:  # nearly every project: one statement, not a read and then a write
            self._wrote(self._db.execute("DELETE FROM lazy WHERE project = ?", (project,)).rowcount)
            return
        gone = [(p,) for p in self.lazy_paths(project) if p not in keep]
        self._db.executemany("DELETE FROM lazy WHERE path = ?", gone)
        self._wrote(len(gone))

    def lazy_paths(self, project: str) -> set[str]:
        return {p for (p,) in self._db.execute("SELECT path FROM lazy WHERE project = ?", (project,))}

    def lazy_all(self) -> list[str]:
        return [p for (p,) in self._db.execute("SELECT path FROM lazy ORDER BY path")]

    def lazy_file(self, path: str) -> tuple[str, str, int | None, str] | None:
        """(project, url, size, sha256) of a file a page links that is fetched on first use, or None."""
        row = self._db.execute("SELECT project, url, size, sha256 FROM lazy WHERE path = ?", (path,)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), row[2], str(row[3]))

    def forget_lazy(self, path: str) -> None:
        self._db.execute("DELETE FROM lazy WHERE path = ?", (path,))
        self._wrote()

    # -- the airgap change log, exports and imports -----------------------------------------------

    def record_change(self, path: str, deleted: bool) -> None:
        """Note that ``path`` under web/ was just published or deleted (committed with the batch)."""
        seq = self.change_seq() + 1
        self._change_seq = seq
        # Buffered and written with one executemany before each commit: one row per published path.
        self._changes.append((path, seq, int(deleted), seq))
        self._wrote()

    def _flush_changes(self) -> None:
        if not self._changes:
            return
        self._db.executemany(
            "INSERT INTO changes (path, seq, deleted, born) VALUES (?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
            "seq = excluded.seq, deleted = excluded.deleted, "
            "born = CASE WHEN changes.deleted = 0 THEN changes.born ELSE excluded.born END",
            self._changes,
        )
        self._changes.clear()

    def change_seq(self) -> int:
        if self._change_seq is None:
            self._change_seq = int(self._db.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0])
        return self._change_seq

    def iter_changes(self, after: int, upto: int | None = None) -> Iterator[Change]:
        """The final state of every path changed in (after, upto], by path.

        The range is first copied into a temporary table keyed by path, then read from there in
        pages: paging the change log itself re-read the whole range for each page of 1,000, so a
        first sync's diff (millions of paths) took hours (80,000 paths: 0.8 s; now 0.15 s). The
        copy is also a snapshot: writes to the log while a caller iterates change nothing here.
        """
        self._flush_changes()
        limit = self.change_seq() if upto is None else upto
        table = f"temp.changed_{next(_SNAPSHOTS)}"
        self._db.execute(f"CREATE TABLE {table} (path TEXT PRIMARY KEY, deleted INTEGER, born INTEGER) WITHOUT ROWID")
        try:
            self._db.execute(
                f"INSERT INTO {table} SELECT path, deleted, born FROM changes WHERE seq > ? AND seq <= ?",  # noqa: S608 - our own name
                (after, limit),
            )
            last = ""
            while True:
                rows = self._db.execute(
                    f"SELECT path, deleted, born FROM {table} WHERE path > ? ORDER BY path LIMIT 1000",  # noqa: S608
                    (last,),
                ).fetchall()
                if not rows:
                    return
                for path, deleted, born in rows:
                    last = path
                    yield Change(path, bool(deleted), not deleted and born > after)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute(f"DROP TABLE IF EXISTS {table}")

    def add_export(self, bundle_id: str, seq: int, serial: int | None, created: float) -> None:
        self._db.execute(
            "INSERT INTO exports (id, seq, serial, created) VALUES (?, ?, ?, ?)", (bundle_id, seq, serial, created)
        )
        self.commit()

    def last_export(self, max_serial: int | None = None) -> tuple[str, int, int | None] | None:
        """(id, seq, serial) of the newest export, or of the newest at or before ``max_serial``."""
        where = "" if max_serial is None else "WHERE serial <= ?"
        query = f"SELECT id, seq, serial FROM exports {where} ORDER BY seq DESC, created DESC LIMIT 1"  # noqa: S608
        row = self._db.execute(query, () if max_serial is None else (max_serial,)).fetchone()
        return None if row is None else (str(row[0]), int(row[1]), row[2])

    def add_import(self, bundle_id: str, seq: int, applied: float) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO imports (id, seq, applied) VALUES (?, ?, ?)", (bundle_id, seq, applied)
        )
        self.commit()

    def imported(self, bundle_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM imports WHERE id = ?", (bundle_id,)).fetchone() is not None

    def imported_seq(self) -> int:
        """How far along the origin's change log the imported tree is (0: nothing imported)."""
        return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM imports").fetchone()[0])


def read_private(path: Path, name: str) -> bool:
    """Whether ``name`` is a private project, read-only (``sync --explain`` must not wait for a running sync)."""
    if not path.exists():
        return False
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return db.execute("SELECT 1 FROM private WHERE name = ?", (name,)).fetchone() is not None
        finally:
            db.close()
    except sqlite3.Error:
        return False  # an older state without the table: nothing is private


def read_closure(path: Path) -> dict[NormalizedName, str]:
    """The stored closure, read-only (for ``--explain``, which must not wait for a running sync)."""
    if not path.exists():
        return {}
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return {NormalizedName(n): w for n, w in db.execute("SELECT name, want FROM closure")}
        finally:
            db.close()
    except sqlite3.Error:
        return {}  # no closure stored yet (or an older state): decide by the roots


class Lock:
    """An exclusive, non-blocking lock on ``state/lock``; the kernel drops it if the process dies."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def __enter__(self) -> Lock:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise EnvironmentFault(f"cannot create lock file {self._path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise LockHeld(f"another mirror run holds {self._path}{holder}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode().strip())
        return f" (pid {pid})"
    return ""


STATE_DB = "mirror.sqlite3"
"""The state database's file name under ``<directory>/state/``."""


_S = TypeVar("_S", bound="State")


@contextlib.contextmanager
def open_state(
    state_dir: Path, opener: Callable[[Path], _S], *, existing: bool = True, lock: bool = True
) -> Iterator[_S]:
    """Take the run lock, open the state database with ``opener``, and close both on the way out.

    ``existing`` refuses to create a database: commands that read, verify or export a mirror need
    one a sync made. ``lock=False`` is for readers (``status``) that must work while a run holds it.
    """
    db = state_dir / STATE_DB
    if existing and not db.exists():
        raise ConfigError(f"no mirror state at {db}: run `mirror sync` first")
    with Lock(state_dir / "lock") if lock else contextlib.nullcontext():
        state = opener(db)
        try:
            yield state
        finally:
            state.close()


def _add_column(db: sqlite3.Connection, table: str, column: str) -> None:
    """Add a column a state database made by an older version lacks."""
    name = column.split()[0]
    if all(row[1] != name for row in db.execute(f"PRAGMA table_info({table})")):
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
