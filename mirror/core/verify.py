"""Verifying a mirror against its state: the pure half (streams in, findings out).

The file check is a merge-join of three streams sorted by path (what state records, what the
pages reference, what is on disk), so it needs memory for one row of each, not for the millions
of files of a full mirror. The page check compares one project's published pages with state.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote, unquote, urlsplit

from mirror.core import layout
from mirror.core.models import ProjectPage


class Problem(Enum):
    """What verify can find; the value is how it is reported."""

    MISSING = "missing file"
    WRONG_SIZE = "wrong size"
    WRONG_HASH = "wrong sha256"
    BROKEN_LINK = "page links a file the mirror does not hold"
    FOREIGN_LINK = "page links a file of another project"
    PAGE_MISSING = "page missing"
    PAGE_BAD = "page unusable"
    PAGE_STALE = "page disagrees with state"
    ROOT_BAD = "root index disagrees with state"
    UNTRACKED = "file not in state"
    UNREFERENCED = "file no page references"
    ORPHAN_PAGE = "page of an unpublished project"
    TEMP = "temporary file left behind"
    BAD_NAME = "name that is not UTF-8 (mirror never writes one; remove it by hand)"

    @property
    def repairable(self) -> bool:
        """Fixed by ``--repair`` (a targeted sync of the project, or a new root)."""
        return self in _REPAIR

    @property
    def orphan(self) -> bool:
        """Removed by ``--delete-orphans``."""
        return self in _ORPHANS


_REPAIR = frozenset(
    {
        Problem.MISSING,
        Problem.WRONG_SIZE,
        Problem.WRONG_HASH,
        Problem.BROKEN_LINK,
        Problem.FOREIGN_LINK,
        Problem.PAGE_MISSING,
        Problem.PAGE_BAD,
        Problem.PAGE_STALE,
        Problem.ROOT_BAD,
    }
)
_ORPHANS = frozenset({Problem.UNTRACKED, Problem.UNREFERENCED, Problem.ORPHAN_PAGE, Problem.TEMP})


@dataclass(frozen=True, slots=True)
class Finding:
    problem: Problem
    path: str
    """Relative to ``web/``; a project's page directory for page problems."""
    project: str | None
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.problem.value}: {self.path}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass(frozen=True, slots=True)
class Recorded:
    """A file row of state."""

    path: str
    project: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Referenced:
    """A path some published page links (a distribution or its advertised ``.metadata``)."""

    path: str
    project: str


@dataclass(frozen=True, slots=True)
class OnDisk:
    path: str
    size: int


@dataclass(frozen=True, slots=True)
class Joined:
    """One path and what each of the three streams says about it."""

    path: str
    recorded: Recorded | None
    referenced: Referenced | None
    disk: OnDisk | None


def join(recorded: Iterable[Recorded], referenced: Iterable[Referenced], on_disk: Iterable[OnDisk]) -> Iterator[Joined]:
    """Merge three streams, each sorted by path without duplicates, into one row per path."""
    rec_it, ref_it, disk_it = iter(recorded), iter(referenced), iter(on_disk)
    rec, ref, disk = next(rec_it, None), next(ref_it, None), next(disk_it, None)
    while rec is not None or ref is not None or disk is not None:
        path = min(item.path for item in (rec, ref, disk) if item is not None)
        row = Joined(
            path,
            rec if rec is not None and rec.path == path else None,
            ref if ref is not None and ref.path == path else None,
            disk if disk is not None and disk.path == path else None,
        )
        yield row
        if row.recorded is not None:
            rec = next(rec_it, None)
        if row.referenced is not None:
            ref = next(ref_it, None)
        if row.disk is not None:
            disk = next(disk_it, None)


def classify(row: Joined) -> Finding | None:
    """What is wrong with one path, judged by size only (hashing is the shell's job)."""
    rec, ref, disk = row.recorded, row.referenced, row.disk
    if layout.is_temp_name(row.path.rpartition("/")[2]):
        return Finding(Problem.TEMP, row.path, None) if disk is not None else None
    if ref is not None and rec is None:
        return Finding(Problem.BROKEN_LINK, row.path, ref.project)
    if ref is not None and rec is not None and ref.project != rec.project:
        return Finding(Problem.FOREIGN_LINK, row.path, ref.project, f"state says it belongs to {rec.project}")
    if rec is None:
        return Finding(Problem.UNTRACKED, row.path, None)
    if disk is None:
        return Finding(Problem.MISSING, row.path, rec.project)
    if disk.size != rec.size:
        return Finding(Problem.WRONG_SIZE, row.path, rec.project, f"{disk.size} bytes, state says {rec.size}")
    if ref is None:
        return Finding(Problem.UNREFERENCED, row.path, rec.project)
    return None


def check_hash(rec: Recorded, sha256: str) -> Finding | None:
    if sha256 == rec.sha256:
        return None
    detail = f"sha256 {sha256[:12]}..., state says {rec.sha256[:12]}..."
    return Finding(Problem.WRONG_HASH, rec.path, rec.project, detail)


# -- pages -------------------------------------------------------------------------------------

# Pages link files relatively; resolving against a fake origin turns each link into a web/ path.
_ORIGIN = "http://mirror.invalid/"


def page_base(name: str) -> str:
    """The base URL to parse a published page of ``name`` with, so links resolve to web/ paths."""
    return f"{_ORIGIN}{layout.project_dir(layout.project_name(name))}/"


def linked_path(url: str) -> str | None:
    """The web/ path a parsed page link points to, or None if it leaves ``web/packages/``."""
    if not url.startswith(_ORIGIN):
        return None
    path = unquote(urlsplit(url).path).lstrip("/")
    # Parsing already resolved dot segments; any left were percent-encoded, and are refused.
    if not path.startswith(f"{layout.PACKAGES}/") or any(part in _DOT_PARTS for part in path.split("/")):
        return None
    return path


_DOT_PARTS = frozenset({"", ".", ".."})


def page_link(path: str) -> str:
    """The link a project page (two levels below web/) carries to ``path``; ``layout.relative_link``, faster."""
    return "../../" + quote(path, safe="/")


@dataclass(frozen=True, slots=True)
class PageCheck:
    """One project's published pages, checked against each other and against state."""

    findings: tuple[Finding, ...]
    references: tuple[Referenced, ...]


def check_pages(
    name: str, json_page: ProjectPage, html_page: ProjectPage, serial: int | None, html_twins: bool
) -> PageCheck:
    """Compare a project's JSON and HTML pages; list the paths they reference.

    ``serial`` is the one state recorded when the pages were published; ``html_twins`` says
    whether ``index.html`` and ``index.v1_html`` are byte-identical.
    """
    where = layout.project_dir(layout.project_name(name))
    findings: list[Finding] = []
    if json_page.name != name:
        findings.append(Finding(Problem.PAGE_BAD, where, name, f"the JSON page names {json_page.name!r}"))
    if json_page.last_serial != serial:
        findings.append(
            Finding(Problem.PAGE_STALE, where, name, f"page serial {json_page.last_serial}, state says {serial}")
        )
    if not html_twins:
        findings.append(Finding(Problem.PAGE_BAD, where, name, "index.html and index.v1_html differ"))
    if _link_set(json_page) != _link_set(html_page):
        findings.append(Finding(Problem.PAGE_BAD, where, name, "the HTML and JSON pages link different files"))
    references: dict[str, Referenced] = {}
    for dist in json_page.files:
        path = linked_path(dist.url)
        if path is None:
            findings.append(Finding(Problem.PAGE_BAD, where, name, f"link outside the tree: {dist.url[:120]}"))
            continue
        references[path] = Referenced(path, name)
        if dist.core_metadata:
            meta = layout.metadata_path(path)
            references[meta] = Referenced(meta, name)
        if dist.provenance is not None:
            provenance = layout.provenance_path(path)
            references[provenance] = Referenced(provenance, name)
    return PageCheck(tuple(findings), tuple(references[p] for p in sorted(references)))


def _link_set(page: ProjectPage) -> set[tuple[str, str, str | None, bool]]:
    return {(d.filename, d.url, d.hashes.get("sha256"), bool(d.core_metadata)) for d in page.files}


def diff_names(expected: Iterable[tuple[str, bool]], listed: Iterable[str]) -> Iterator[Finding]:
    """Merge two sorted name streams: projects the root should list and does not, or lists and should not.

    ``expected`` pairs each published project with whether it is queued for deletion: a run that
    stopped while deleting may or may not have dropped it from the root, and either is consistent.
    """
    exp_it, lst_it = iter(expected), iter(listed)
    exp, lst = next(exp_it, None), next(lst_it, None)
    root = layout.root_paths()[2]
    while exp is not None or lst is not None:
        if lst is None or (exp is not None and exp[0] < lst):
            assert exp is not None
            if not exp[1]:
                yield Finding(Problem.ROOT_BAD, root, None, f"does not list {exp[0]}")
            exp = next(exp_it, None)
        elif exp is None or lst < exp[0]:
            yield Finding(Problem.ROOT_BAD, root, None, f"lists {lst}, which is not published")
            lst = next(lst_it, None)
        else:
            exp, lst = next(exp_it, None), next(lst_it, None)


def walk_key(name: str, is_dir: bool) -> str:
    """Sort key of a directory entry such that a depth-first walk yields full paths in sorted order.

    ``a-b`` sorts before ``a/x`` because ``-`` < ``/``: a directory sorts as its name plus ``/``.
    """
    return name + "/" if is_dir else name
