"""Planning a sync as the difference between upstream state and local state. Pure.

The index plan is a merge-join of two name-sorted streams, so it needs memory for one row of
each side, not for the 800,000 projects of PyPI. The project plan compares one upstream page
with what the mirror holds for that project.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import Enum

from packaging.utils import NormalizedName

from mirror.core import layout
from mirror.core.models import DistFile, Hashes, IndexEntry, ProjectPage, Provenance
from mirror.errors import DeletionGuardTripped, IntegrityError


class Action(Enum):
    SYNC = "sync"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class LocalProject:
    """A project as the mirror's state knows it; ``serial`` is None until a sync completed."""

    name: NormalizedName
    serial: int | None


@dataclass(frozen=True, slots=True)
class IndexChange:
    action: Action
    name: NormalizedName
    serial: int | None = None
    """The serial the upstream root promised (SYNC only); None when the upstream has no serials."""


def plan_index(upstream: Iterable[IndexEntry], local: Iterable[LocalProject]) -> Iterator[IndexChange]:
    """Merge two streams sorted by name into the projects to sync and to delete.

    A project is synced when it is new, when its serial moved, when its last sync did not
    complete, or when the upstream gives no serials at all (then a conditional GET decides).
    """
    up_iter, local_iter = iter(upstream), iter(local)
    up, loc = next(up_iter, None), next(local_iter, None)
    while up is not None or loc is not None:
        if loc is None or (up is not None and up.name < loc.name):
            assert up is not None
            yield IndexChange(Action.SYNC, up.name, up.serial)
            up = next(up_iter, None)
        elif up is None or loc.name < up.name:
            yield IndexChange(Action.DELETE, loc.name)
            loc = next(local_iter, None)
        else:
            if _needs_sync(up, loc):
                yield IndexChange(Action.SYNC, up.name, up.serial)
            up, loc = next(up_iter, None), next(local_iter, None)


def _needs_sync(up: IndexEntry, loc: LocalProject) -> bool:
    if up.serial is None or loc.serial is None:
        return True
    return up.serial > loc.serial


def check_deletion_guard(deletions: int, local_total: int, max_fraction: float) -> None:
    """Refuse a run that would delete more than ``max_fraction`` of the mirror's projects.

    An upstream that suddenly lists a fraction of its projects is a glitch far more often than a
    mass deletion; losing a mirror to it costs days of downloads. Deleting a single project is
    always allowed, so tiny mirrors can follow their upstream.
    """
    if deletions <= 1 or local_total == 0:
        return
    if deletions / local_total > max_fraction:
        raise DeletionGuardTripped(
            f"refusing to delete {deletions} of {local_total} projects "
            f"({deletions / local_total:.0%} > max-delete-fraction {max_fraction:.0%}); "
            "if the upstream really dropped them, raise max-delete-fraction for one run"
        )


def check_serial(name: str, promised: int | None, got: int | None) -> bool:
    """True when a page is at least as new as the root index promised."""
    if promised is None:
        return True
    return got is not None and got >= promised


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A verified file the mirror holds, relative to ``web/``."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Download:
    """One file to fetch into ``path`` (relative to ``web/``)."""

    url: str
    path: str
    size: int | None
    hashes: Hashes
    """Expected hashes; verification uses sha256 when present, else the strongest one given."""


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """A file that will be on the published page, with where it and its metadata live."""

    upstream: DistFile
    path: str
    metadata: Download | None
    """The ``.metadata`` to mirror for it, when the upstream offers one with a hash."""
    provenance: Download | None = None
    """PEP 740: its provenance object, when the upstream offers one (hash-checked when it gives a hash)."""


@dataclass(frozen=True, slots=True)
class ProjectPlan:
    page: ProjectPage
    files: tuple[PlannedFile, ...]
    downloads: tuple[Download, ...]
    """Distribution files to fetch."""
    metadata: tuple[Download, ...]
    """``.metadata`` files to fetch, once the distribution files are in place."""
    deletes: tuple[str, ...]
    """Paths the mirror holds for this project that the new page no longer references."""
    provenance: tuple[Download, ...] = ()
    """PEP 740 provenance objects to fetch, like ``.metadata``: after the distribution files, before the page."""

    @property
    def fetches(self) -> tuple[Download, ...]:
        """Every file to fetch, distributions first."""
        return (*self.downloads, *self.metadata, *self.provenance)


QUARANTINED = "quarantined"


def plan_project(
    page: ProjectPage,
    local: Mapping[str, LocalFile],
    *,
    require_hashes: bool = True,
) -> ProjectPlan:
    """Decide what to download and delete so the mirror matches ``page`` (already filtered)."""
    offered = () if _is_quarantined(page) else page.files
    planned: list[PlannedFile] = []
    seen: set[str] = set()
    for dist in offered:
        item = _plan_file(page.name, dist, require_hashes)
        if item.path in seen:
            continue  # the same file listed twice maps to one path; publish it once
        seen.add(item.path)
        planned.append(item)
    # A metadata file may never stand where a distribution file goes (a file named "x.whl.metadata").
    planned = [replace(i, metadata=None) if i.metadata and i.metadata.path in seen else i for i in planned]
    planned = [replace(i, provenance=None) if i.provenance and i.provenance.path in seen else i for i in planned]
    dist_downloads = [
        Download(item.upstream.url, item.path, item.upstream.size, item.upstream.hashes)
        for item in planned
        if not _have(local, item.path, item.upstream.size, item.upstream.hashes)
    ]
    meta_downloads = [
        item.metadata
        for item in planned
        if item.metadata is not None and not _have(local, item.metadata.path, None, item.metadata.hashes)
    ]
    provenance_downloads = [
        item.provenance
        for item in planned
        if item.provenance is not None and not _have(local, item.provenance.path, None, item.provenance.hashes)
    ]
    wanted = seen | {item.metadata.path for item in planned if item.metadata is not None}
    wanted |= {item.provenance.path for item in planned if item.provenance is not None}
    deletes = tuple(sorted(path for path in local if path not in wanted))
    return ProjectPlan(
        page, tuple(planned), tuple(dist_downloads), tuple(meta_downloads), deletes, tuple(provenance_downloads)
    )


def _is_quarantined(page: ProjectPage) -> bool:
    return page.status is not None and page.status.status == QUARANTINED


def _plan_file(project: NormalizedName, dist: DistFile, require_hashes: bool) -> PlannedFile:
    sha256 = dist.sha256
    if sha256 is None and require_hashes:
        raise IntegrityError(
            f"{project}: upstream gives no sha256 for {dist.filename!r} "
            "(set require-hashes = false to mirror files it cannot verify)"
        )
    path = layout.file_path(dist.url, dist.filename, sha256, project)
    return PlannedFile(dist, path, _plan_metadata(dist, path), _plan_provenance(dist, path))


def _plan_provenance(dist: DistFile, path: str) -> Download | None:
    if dist.provenance is None:
        return None
    return Download(dist.provenance.url, layout.provenance_path(path), None, dict(dist.provenance.hashes))


def _plan_metadata(dist: DistFile, path: str) -> Download | None:
    hashes = dist.metadata_hashes
    if not hashes or "sha256" not in hashes:
        # Without a hash we could not prove the bytes are upstream's; do not advertise it.
        return None
    url = dist.url.split("#", 1)[0] + layout.METADATA_SUFFIX
    return Download(url, layout.metadata_path(path), None, {"sha256": hashes["sha256"]})


def _have(local: Mapping[str, LocalFile], path: str, size: int | None, hashes: Hashes) -> bool:
    held = local.get(path)
    if held is None:
        return False
    if size is not None and held.size != size:
        return False
    expected = hashes.get("sha256")
    return expected is None or expected == held.sha256


def published_page(
    plan: ProjectPlan,
    on_disk: Mapping[str, LocalFile],
    versions: tuple[str, ...],
) -> ProjectPage:
    """The page the mirror serves: relative links, verified hashes, metadata only if on disk.

    ``on_disk`` must hold every planned distribution file; a page is never published with a link
    that does not resolve.
    """
    page_dir = layout.project_dir(plan.page.name)
    files = []
    for item in plan.files:
        held = on_disk[item.path]
        meta = on_disk.get(item.metadata.path) if item.metadata is not None else None
        provenance = on_disk.get(item.provenance.path) if item.provenance is not None else None
        files.append(
            replace(
                item.upstream,
                url=layout.relative_link(page_dir, item.path),
                hashes={**item.upstream.hashes, "sha256": held.sha256},
                size=held.size,
                core_metadata={"sha256": meta.sha256} if meta is not None else False,
                provenance=None
                if provenance is None
                else Provenance(layout.relative_link(page_dir, provenance.path), {"sha256": provenance.sha256}),
            )
        )
    return replace(plan.page, files=tuple(files), versions=versions)
