"""What ``mirror verify`` keeps in the state database: its cursor, the paths pages reference, its findings.

Everything a pass learns goes to SQLite, not to memory, so a pass over 25 TB needs as much RAM
as one over 25 MB, and an interrupted pass resumes from its last committed cursor. Rows are
written idempotently (a resumed pass may redo the items after its last commit).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from mirror._state import State
from mirror.core.plan import Action, IndexChange
from mirror.core.verify import Finding, Problem, Recorded, Referenced
from mirror.errors import EnvironmentFault

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verify_refs (path TEXT PRIMARY KEY, project TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS verify_findings (
    problem TEXT NOT NULL,
    path TEXT NOT NULL,
    project TEXT,
    detail TEXT NOT NULL,
    PRIMARY KEY (problem, path)
);
CREATE INDEX IF NOT EXISTS verify_findings_project ON verify_findings (project);
-- Paths no pruning may remove whatever state says: what pages state does not publish link, and
-- those pages themselves when the root index lists them (a published page is served).
CREATE TABLE IF NOT EXISTS verify_keep (path TEXT PRIMARY KEY);
"""
_PAGE = 1000
T = TypeVar("T")
_REPAIR_KINDS = tuple(p.name for p in Problem if p.repairable)
_ORPHAN_KINDS = tuple(p.name for p in Problem if p.orphan)


class VerifyState(State):
    """The mirror's state plus verify's own tables (kept beside the sync's, in the same database)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.keep_projects = False
        """While repairing: a sync plans no deletions (they are for a full sync and its deletion guard)."""
        try:
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise EnvironmentFault(f"cannot prepare state database {path}: {exc}") from None
        self._db.execute("BEGIN")

    # -- the pass and its cursor ----------------------------------------------------------------

    def reset_pass(self, key: str) -> None:
        """Start a new pass (``key`` says what it checks and against which run of sync)."""
        self._db.execute("DELETE FROM verify_refs")
        self._db.execute("DELETE FROM verify_findings")
        self._db.execute("DELETE FROM verify_keep")
        self.set_meta("verify_pass", key)
        self.set_meta("verify_phase", None)
        self.set_meta("verify_cursor", None)
        self.commit()

    def finish_pass(self) -> None:
        self.reset_pass("")
        self.set_meta("verify_pass", None)
        self.commit()

    def cursor(self) -> tuple[str | None, str]:
        """(phase, last item done in it); the phase is None when a pass has not started one yet."""
        return self.get_meta("verify_phase"), self.get_meta("verify_cursor") or ""

    def advance(self, phase: str, cursor: str, *, commit: bool = False) -> None:
        self.set_meta("verify_phase", phase)
        self.set_meta("verify_cursor", cursor)
        if commit:
            self.commit()

    def store_work(self, changes: Iterable[IndexChange]) -> None:
        if self.keep_projects:
            changes = (change for change in changes if change.action is not Action.DELETE)
        super().store_work(changes)

    def queue_deletions(self, names: Iterable[str]) -> None:
        if not self.keep_projects:
            super().queue_deletions(names)

    def not_upstream(self, names: list[str]) -> list[str]:
        """Those of ``names`` the upstream listing staged by the last sync does not hold."""
        return [n for n in names if self._db.execute("SELECT 1 FROM upstream WHERE name = ?", (n,)).fetchone() is None]

    # -- reading state in keyset pages (no read cursor is held across writes) ----------------------

    def published_after(self, after: str) -> Iterator[tuple[str, int | None]]:
        query = "SELECT name, serial FROM projects WHERE published = 1 AND name > ? ORDER BY name LIMIT ?"
        yield from self._pages(query, after, lambda row: (str(row[0]), row[1]))

    def files_after(self, after: str) -> Iterator[Recorded]:
        query = "SELECT path, project, size, sha256 FROM files WHERE path > ? ORDER BY path LIMIT ?"
        yield from self._pages(query, after, lambda row: Recorded(row[0], row[1], row[2], row[3]))

    def refs_after(self, after: str) -> Iterator[Referenced]:
        query = "SELECT path, project FROM verify_refs WHERE path > ? ORDER BY path LIMIT ?"
        yield from self._pages(query, after, lambda row: Referenced(row[0], row[1]))

    def _pages(self, query: str, after: str, make: Callable[[Any], T]) -> Iterator[T]:
        while True:
            rows = self._db.execute(query, (after, _PAGE)).fetchall()
            for row in rows:
                yield make(row)
            if len(rows) < _PAGE:
                return
            after = str(rows[-1][0])

    def iter_published_deleting(self) -> Iterator[tuple[str, bool]]:
        """Published projects by name, each with whether the last plan queued it for deletion."""
        query = (
            "SELECT name, name IN (SELECT name FROM work WHERE action = 'delete') "
            "FROM projects WHERE published = 1 ORDER BY name"
        )
        for name, deleting in self._db.execute(query):
            yield str(name), bool(deleting)

    # -- what the pass learns -------------------------------------------------------------------

    def add_refs(self, refs: Iterable[Referenced]) -> None:
        rows = [(r.path, r.project) for r in refs]
        self._db.executemany("INSERT OR REPLACE INTO verify_refs (path, project) VALUES (?, ?)", rows)
        self._wrote(len(rows))

    def add_finding(self, finding: Finding) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO verify_findings (problem, path, project, detail) VALUES (?, ?, ?, ?)",
            (finding.problem.name, finding.path, finding.project, finding.detail),
        )
        self._wrote()

    def keep(self, paths: Iterable[str]) -> None:
        rows = [(path,) for path in paths]
        self._db.executemany("INSERT OR IGNORE INTO verify_keep (path) VALUES (?)", rows)
        self._wrote(len(rows))

    def kept_orphans(self) -> int:
        """Orphan findings that pruning leaves alone because a published page links them (or is them)."""
        row = self._db.execute(
            "SELECT count(*) FROM verify_findings WHERE problem IN ('UNTRACKED', 'UNREFERENCED', 'ORPHAN_PAGE') "
            "AND path IN (SELECT path FROM verify_keep)"
        ).fetchone()
        return int(row[0])

    def counts(self) -> dict[Problem, int]:
        rows = self._db.execute("SELECT problem, count(*) FROM verify_findings GROUP BY problem")
        return {Problem[name]: int(count) for name, count in rows}

    def findings(self, problem: Problem | None = None, limit: int = -1) -> Iterator[Finding]:
        where, args = ("WHERE problem = ?", (problem.name,)) if problem else ("", ())
        query = f"SELECT problem, path, project, detail FROM verify_findings {where} ORDER BY path LIMIT ?"  # noqa: S608
        for name, path, project, detail in self._db.execute(query, (*args, limit)).fetchall():
            yield Finding(Problem[name], path, project, detail)

    def orphans_after(self, after: str) -> Iterator[Finding]:
        """Orphan findings by path, except files of projects that are to be repaired (their new page may link them)."""
        orphans, marks = ",".join("?" * len(_ORPHAN_KINDS)), ",".join("?" * len(_REPAIR_KINDS))
        query = (
            "SELECT path, problem, project, detail FROM verify_findings o "  # noqa: S608
            f"WHERE problem IN ({orphans}) AND path > ? "
            "AND path NOT IN (SELECT path FROM verify_keep) "
            "AND (project IS NULL OR problem = 'ORPHAN_PAGE' OR NOT EXISTS (SELECT 1 FROM verify_findings r "
            f"WHERE r.project = o.project AND r.problem IN ({marks}))) ORDER BY path LIMIT ?"
        )
        while True:
            rows = self._db.execute(query, (*_ORPHAN_KINDS, after, *_REPAIR_KINDS, _PAGE)).fetchall()
            for path, name, project, detail in rows:
                yield Finding(Problem[name], path, project, detail)
            if len(rows) < _PAGE:
                return
            after = str(rows[-1][0])

    def repair_projects_after(self, after: str) -> list[str]:
        marks = ",".join("?" * len(_REPAIR_KINDS))
        query = (
            "SELECT DISTINCT project FROM verify_findings "  # noqa: S608
            f"WHERE project IS NOT NULL AND project > ? AND problem IN ({marks}) ORDER BY project LIMIT ?"
        )
        return [str(row[0]) for row in self._db.execute(query, (after, *_REPAIR_KINDS, _PAGE))]

    def root_needs_repair(self) -> bool:
        row = self._db.execute("SELECT 1 FROM verify_findings WHERE problem = 'ROOT_BAD' LIMIT 1").fetchone()
        return row is not None

    def invalidate(self, project: str) -> None:
        """Make the next sync of ``project`` fetch its page and every file whose row a finding condemns."""
        self._db.execute(
            "DELETE FROM files WHERE project = ? AND path IN (SELECT path FROM verify_findings "
            "WHERE project = ? AND problem IN ('MISSING', 'WRONG_SIZE', 'WRONG_HASH'))",
            (project, project),
        )
        self._db.execute(
            "UPDATE projects SET serial = NULL, etag = NULL, last_modified = NULL WHERE name = ?", (project,)
        )
        self._wrote()
