"""The fake index's data model: immutable project snapshots plus a registry.

Every mutation replaces a project's :class:`Project` snapshot with a new one
stamped with a freshly bumped global serial (like PyPI).  Snapshots are never
mutated, so the server can render them without holding the lock, and the
previous snapshot of each project is kept around for "stale page" faults.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .builder import BuiltFile, metadata_field, read_core_metadata

__all__ = ["FileEntry", "Index", "Project", "Release", "format_upload_time"]

#: Base of the deterministic fake upload clock: serial N -> EPOCH + N minutes.
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FileEntry:
    """One uploaded distribution file."""

    built: BuiltFile
    upload_time: datetime
    requires_python: str | None

    @property
    def filename(self) -> str:
        """The distribution filename."""
        return self.built.filename

    @property
    def blob_path(self) -> str:
        """PyPI-style storage path: ``aa/bb/<60 hex>/<filename>``."""
        h = self.built.blake2b_256
        return f"{h[:2]}/{h[2:4]}/{h[4:]}/{self.filename}"


@dataclass(frozen=True)
class Release:
    """A version of a project with its files and yank state."""

    version: str
    files: tuple[FileEntry, ...] = ()
    yanked: bool = False
    yanked_reason: str | None = None


@dataclass(frozen=True)
class Project:
    """An immutable snapshot of one project at one serial."""

    name: str
    display_name: str
    serial: int
    releases: Mapping[str, Release]
    status: str | None = None
    status_reason: str | None = None
    #: Rendered pages for this snapshot, filled lazily by the server.
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def listing(self) -> list[tuple[Release, FileEntry]]:
        """Every file with its release, sorted by filename."""
        every = ((r, f) for r in self.releases.values() for f in r.files)
        return sorted(every, key=lambda pair: pair[1].filename)

    @property
    def quarantined(self) -> bool:
        """PEP 792: a quarantined project offers no files."""
        return self.status == "quarantined"

    def sorted_versions(self) -> list[str]:
        """Release versions in ascending version order."""
        return sorted(self.releases, key=version_key)


def version_key(version: str) -> tuple[int, Version | str]:
    """Sort key that orders valid versions semantically, invalid ones last."""
    try:
        return (0, Version(version))
    except InvalidVersion:
        return (1, version)


def format_upload_time(when: datetime) -> str:
    """PEP 700 ``upload-time``: ``2024-01-01T00:01:00.000000Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_upload_time(value: datetime | str) -> datetime:
    """Accept a datetime or an ISO 8601 string; naive values are UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RootSnapshot:
    """The project list at one global serial."""

    serial: int
    projects: tuple[tuple[str, int], ...]
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


class Index:
    """Thread-safe registry of project snapshots and downloadable blobs."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._serial = 0
        self._projects: dict[str, Project] = {}
        self._previous: dict[str, Project | None] = {}
        self._by_path: dict[str, FileEntry] = {}
        self._by_filename: dict[str, FileEntry] = {}
        self._root: RootSnapshot | None = None

    # -- reads -------------------------------------------------------------

    @property
    def serial(self) -> int:
        """The current global serial (0 before the first mutation)."""
        with self._lock:
            return self._serial

    def project(self, name: str) -> Project | None:
        """The current snapshot of a project (any spelling), or None."""
        with self._lock:
            return self._projects.get(canonicalize_name(name))

    def previous(self, name: str) -> Project | None:
        """The snapshot before the project's latest mutation, or None."""
        with self._lock:
            return self._previous.get(canonicalize_name(name))

    def project_serial(self, name: str) -> int:
        """The last serial of a project; KeyError if unknown."""
        project = self.project(name)
        if project is None:
            raise KeyError(name)
        return project.serial

    def projects(self) -> list[Project]:
        """Current snapshots of all projects, sorted by normalized name."""
        with self._lock:
            return [self._projects[k] for k in sorted(self._projects)]

    def root(self) -> RootSnapshot:
        """The project list snapshot for the current global serial."""
        with self._lock:
            if self._root is None or self._root.serial != self._serial:
                listing = tuple((k, self._projects[k].serial) for k in sorted(self._projects))
                self._root = RootSnapshot(self._serial, listing)
            return self._root

    def blob_by_path(self, path: str) -> FileEntry | None:
        """Look up a live file by its ``aa/bb/hash/filename`` path."""
        with self._lock:
            return self._by_path.get(path)

    def blob_by_filename(self, filename: str) -> FileEntry | None:
        """Look up a live file by filename."""
        with self._lock:
            return self._by_filename.get(filename)

    # -- mutations ---------------------------------------------------------

    def add_files(
        self,
        name: str,
        version: str,
        files: Sequence[BuiltFile],
        *,
        requires_python: str | None,
        upload_time: datetime | str | None,
    ) -> None:
        """Add files to a (possibly new) release of a (possibly new) project."""

        def change(project: Project, serial: int) -> Project:
            when = self._upload_time(upload_time, serial)
            self._check_new_filenames(files)
            entries = tuple(_entry(b, when, requires_python) for b in files)
            release = project.releases.get(version, Release(version))
            merged = replace(release, files=release.files + entries)
            return _with_release(project, merged)

        self._mutate(name, change, create=True)

    def yank(self, name: str, version: str, reason: str | None) -> None:
        """Mark a release yanked (PEP 592)."""
        self._update_release(name, version, yanked=True, yanked_reason=reason)

    def unyank(self, name: str, version: str) -> None:
        """Clear a release's yank marker."""
        self._update_release(name, version, yanked=False, yanked_reason=None)

    def remove_file(self, name: str, filename: str) -> None:
        """Delete one file; its release stays (possibly empty)."""

        def change(project: Project, serial: int) -> Project:
            for release in project.releases.values():
                kept = tuple(f for f in release.files if f.filename != filename)
                if len(kept) != len(release.files):
                    return _with_release(project, replace(release, files=kept))
            raise KeyError(f"{filename} not in {name}")

        self._mutate(name, change)

    def remove_release(self, name: str, version: str) -> None:
        """Delete a release and all its files."""

        def change(project: Project, serial: int) -> Project:
            if version not in project.releases:
                raise KeyError(f"{name}=={version}")
            releases = {v: r for v, r in project.releases.items() if v != version}
            return replace(project, releases=releases)

        self._mutate(name, change)

    def remove_project(self, name: str) -> None:
        """Delete a project entirely (bumps the global serial)."""
        key = canonicalize_name(name)
        with self._lock:
            old = self._projects.pop(key, None)
            if old is None:
                raise KeyError(name)
            self._serial += 1
            self._previous[key] = old
            self._sync_blobs(old, None)

    def set_status(self, name: str, status: str | None, reason: str | None) -> None:
        """Set (or clear with None) a PEP 792 project status."""

        def change(project: Project, serial: int) -> Project:
            return replace(project, status=status, status_reason=reason)

        self._mutate(name, change)

    # -- internals ---------------------------------------------------------

    def _update_release(self, name: str, version: str, **changes: Any) -> None:
        def change(project: Project, serial: int) -> Project:
            if version not in project.releases:
                raise KeyError(f"{name}=={version}")
            return _with_release(project, replace(project.releases[version], **changes))

        self._mutate(name, change)

    def _mutate(
        self,
        name: str,
        change: Callable[[Project, int], Project],
        *,
        create: bool = False,
    ) -> None:
        """Apply ``change`` to a project under the lock and bump the serial."""
        key = canonicalize_name(name)
        with self._lock:
            old = self._projects.get(key)
            if old is None and not create:
                raise KeyError(name)
            serial = self._serial + 1
            base = old or Project(key, name, 0, {})
            new = replace(change(base, serial), serial=serial, cache={})
            self._serial = serial
            self._projects[key] = new
            self._previous[key] = old
            self._sync_blobs(old, new)

    def _upload_time(self, value: datetime | str | None, serial: int) -> datetime:
        if value is None:
            return EPOCH + timedelta(minutes=serial)
        return parse_upload_time(value)

    def _check_new_filenames(self, files: Sequence[BuiltFile]) -> None:
        names = [b.filename for b in files]
        clash = [n for n in names if n in self._by_filename]
        if clash or len(set(names)) != len(names):
            raise ValueError(f"filename already exists: {clash or names}")

    def _sync_blobs(self, old: Project | None, new: Project | None) -> None:
        """Keep the blob lookup tables equal to the set of live files."""
        for entry in _iter_files(old):
            self._by_path.pop(entry.blob_path, None)
            self._by_filename.pop(entry.filename, None)
        for entry in _iter_files(new):
            self._by_path[entry.blob_path] = entry
            self._by_filename[entry.filename] = entry


def _iter_files(project: Project | None) -> Iterator[FileEntry]:
    if project is not None:
        for release in project.releases.values():
            yield from release.files


def _entry(built: BuiltFile, when: datetime, requires_python: str | None) -> FileEntry:
    """A FileEntry; Requires-Python defaults to the file's own metadata."""
    if requires_python is None:
        requires_python = metadata_field(read_core_metadata(built), "Requires-Python")
    return FileEntry(built, when, requires_python)


def _with_release(project: Project, release: Release) -> Project:
    return replace(project, releases={**project.releases, release.version: release})
