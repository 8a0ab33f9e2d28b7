"""Filter plugin protocols (API version 1) and the pure logic that applies them. Plugins decide; this obeys.

A plugin is any object implementing one or more of the protocols below, at three levels:
project (name only, before anything is fetched), release (a version and its files, seen
together so a plugin can compare releases) and file. Every drop carries the plugin's name and
its reason, so ``--explain`` can say why a file is or is not mirrored.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from mirror.core.closure import Want
from mirror.core.environments import TargetEnvironment
from mirror.core.models import DistFile, ProjectPage

API_VERSION = 1
UNKNOWN_VERSION = ""
"""The release key of files whose name carries no parseable version (eggs, installers)."""


@dataclass(frozen=True, slots=True)
class Decision:
    keep: bool
    plugin: str
    reason: str
    until: str | None = None
    """For a drop that time alone lifts (a cooldown): ISO 8601 UTC when the project must be looked at again."""


@dataclass(frozen=True, slots=True)
class Release:
    """One version of a project with the files still in play when a release filter sees it."""

    version: str
    files: tuple[DistFile, ...]

    @property
    def parsed(self) -> Version | None:
        try:
            return Version(self.version) if self.version else None
        except InvalidVersion:
            return None

    @property
    def upload_time(self) -> str | None:
        """The earliest upload time of its files (ISO 8601 UTC sorts as text), or None if unknown."""
        times = [f.upload_time for f in self.files if f.upload_time]
        return min(times) if times else None

    @property
    def size(self) -> int:
        return sum(f.size or 0 for f in self.files)


@dataclass(frozen=True, slots=True)
class PluginContext:
    """What a plugin factory gets besides its own ``[filters.<name>]`` table."""

    name: str
    """The plugin's entry-point name: use it as ``Decision.plugin``."""
    config_dir: Path
    """Relative paths in the options are relative to this (the config file's directory)."""
    now: datetime
    """The time the run started (UTC): filters never read the clock themselves."""
    warn: Callable[[str], None] = field(default=lambda _message: None)
    """Tell the person running the mirror something (one line, no trailing period needed). Each distinct
    message is shown once per run however often it is given: a filter may warn from every page."""


@runtime_checkable
class ProjectFilter(Protocol):
    """Decides on a project by name alone, before anything about it is fetched."""

    def filter_project(self, name: NormalizedName) -> Decision | None: ...


@runtime_checkable
class ReleaseFilter(Protocol):
    """Sees every release still in play at once; returns a decision for each version it drops."""

    def filter_releases(self, project: NormalizedName, releases: Sequence[Release]) -> Mapping[str, Decision]: ...


@runtime_checkable
class FileFilter(Protocol):
    """Decides on one distribution file of a project page."""

    def filter_file(self, project: NormalizedName, file: DistFile) -> Decision | None: ...


@runtime_checkable
class DependencyRoots(Protocol):
    """A filter whose projects grow with their dependencies: the engine resolves, the filter obeys.

    ``roots`` are the projects asked for; the engine reads the kept releases' metadata, follows
    ``Requires-Dist`` for the target environments and hands the closure to ``with_closure``,
    which returns the filter deciding by it.
    """

    def roots(self) -> Mapping[NormalizedName, Want]: ...

    def with_closure(self, closure: Mapping[NormalizedName, Want]) -> object: ...


@runtime_checkable
class ProjectSet(Protocol):
    """A project filter that keeps only a finite, known set of names (an allowlist).

    The engine may then fetch those projects' pages directly instead of the whole upstream index.
    Every name ``filter_project`` keeps must be in ``projects()``.
    """

    def projects(self) -> Collection[NormalizedName]: ...


@runtime_checkable
class Fingerprinted(Protocol):
    """A filter whose decisions depend on more than its config table (e.g. a requirements file's lines).

    The fingerprint is stable text; when it changes, every project is looked at again.
    """

    def fingerprint(self) -> str: ...


@runtime_checkable
class TargetProvider(Protocol):
    """A filter that knows the environments the mirror serves (used to evaluate markers)."""

    def targets(self) -> Sequence[TargetEnvironment]: ...


@dataclass(frozen=True, slots=True)
class FileVerdict:
    file: DistFile
    dropped: Decision | None
    """The first decision that dropped it, or None when it is kept."""


def file_version(filename: str) -> str:
    """The normalized version a wheel or sdist file name carries, or :data:`UNKNOWN_VERSION`."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return UNKNOWN_VERSION


@dataclass(frozen=True, slots=True)
class FilterChain:
    """The enabled plugins, in the order of ``[filters] enabled``; the first "drop" wins."""

    plugins: Sequence[object] = ()
    pulled: frozenset[NormalizedName] = frozenset()
    """Projects pull-through brought in (``mirror serve``): kept although a project set (an
    allowlist) does not name them, so the mirror keeps them fresh; every other project decision
    (a blocklist, a name pattern) still refuses them."""
    # The roles of each plugin, found once: isinstance against a runtime-checkable protocol walks
    # its members each time, and per file of every page that was a tenth of a cold page's CPU.
    _projects: tuple[tuple[ProjectFilter, bool], ...] = field(init=False, repr=False, compare=False)
    _pages: tuple[tuple[ReleaseFilter | None, FileFilter | None], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        projects = []
        pages = []
        for plugin in self.plugins:
            project, named, releases, files = _roles(type(plugin))
            if project:
                projects.append((cast(ProjectFilter, plugin), named))
            if releases or files:
                pages.append(
                    (cast(ReleaseFilter, plugin) if releases else None, cast(FileFilter, plugin) if files else None)
                )
        object.__setattr__(self, "_projects", tuple(projects))
        object.__setattr__(self, "_pages", tuple(pages))

    def project_decision(self, name: NormalizedName, *, as_pulled: bool = False) -> Decision | None:
        """The decision that drops ``name``, or None; ``as_pulled``: as if pull-through had brought it in."""
        widened = as_pulled or name in self.pulled
        for plugin, named in self._projects:
            if widened and named:
                continue
            decision = plugin.filter_project(name)
            if decision is not None and not decision.keep:
                return decision
        return None

    def keep_project(self, name: NormalizedName) -> bool:
        return self.project_decision(name) is None

    def explain(self, page: ProjectPage) -> tuple[FileVerdict, ...]:
        """Every file of the page with the decision that dropped it, plugin by plugin, in order."""
        dropped: dict[int, Decision] = {}
        project = self.project_decision(page.name)
        if project is not None:
            return tuple(FileVerdict(f, project) for f in page.files)
        for releases, files in self._pages:
            alive = [i for i in range(len(page.files)) if i not in dropped]
            if releases is not None:
                _drop_releases(releases, page, alive, dropped)
                alive = [i for i in alive if i not in dropped]
            if files is not None:
                for i in alive:
                    decision = files.filter_file(page.name, page.files[i])
                    if decision is not None and not decision.keep:
                        dropped[i] = decision
        return tuple(FileVerdict(f, dropped.get(i)) for i, f in enumerate(page.files))

    def dependency_roots(self) -> Mapping[NormalizedName, Want] | None:
        """The union of the roots of every resolving plugin, or None when no plugin resolves."""
        found = [p for p in self.plugins if isinstance(p, DependencyRoots)]
        if not found:
            return None
        roots: dict[NormalizedName, Want] = {}
        for plugin in found:
            for name, want in plugin.roots().items():
                roots[name] = roots[name].merge(want) if name in roots else want
        return roots

    def wanted_projects(self) -> frozenset[NormalizedName] | None:
        """The only projects the chain can keep, when some plugin names them; None when any name may be kept."""
        found: frozenset[NormalizedName] | None = None
        for plugin in self.plugins:
            if isinstance(plugin, ProjectSet):
                names = frozenset(plugin.projects())
                found = names if found is None else found & names
        if found is None:
            return None
        return frozenset(name for name in found | self.pulled if self.keep_project(name))

    def with_pulled(self, names: Collection[NormalizedName]) -> FilterChain:
        """The same chain keeping ``names`` too, as projects pull-through brought in."""
        if all(name in self.pulled for name in names):
            return self
        return replace(self, pulled=self.pulled | frozenset(names))

    def lazy(self, name: NormalizedName) -> bool:
        """A project pull-through brought in that no project set names: its files are fetched on first use.

        Naming it in an allowlist makes it a mirrored project like any other: the next sync fetches its files.
        """
        if name not in self.pulled:
            return False
        return not any(isinstance(p, ProjectSet) and name in p.projects() for p in self.plugins)

    def fingerprint(self) -> str:
        return "\n".join(p.fingerprint() for p in self.plugins if isinstance(p, Fingerprinted))

    def filter_page_until(self, page: ProjectPage) -> tuple[ProjectPage, str | None]:
        """The filtered page, and the earliest time a drop of it expires (None: no drop does)."""
        verdicts = self.explain(page)
        if all(v.dropped is None for v in verdicts):
            return page, None  # the page itself: a copy of a frozen page per project showed in profiles
        kept = tuple(v.file for v in verdicts if v.dropped is None)
        until = min((v.dropped.until for v in verdicts if v.dropped is not None and v.dropped.until), default=None)
        return replace(page, files=kept), until

    def targets(self) -> tuple[TargetEnvironment, ...]:
        return tuple(t for p in self.plugins if isinstance(p, TargetProvider) for t in p.targets())

    def with_closure(self, closure: Mapping[NormalizedName, Want]) -> FilterChain:
        """The same chain with every resolving plugin deciding by ``closure``."""
        return FilterChain(
            tuple(p.with_closure(closure) if isinstance(p, DependencyRoots) else p for p in self.plugins), self.pulled
        )


_ROLES: dict[type, tuple[bool, bool, bool, bool]] = {}


def _roles(cls: type) -> tuple[bool, bool, bool, bool]:
    """Which of project filter, project set, release filter, file filter instances of ``cls`` are.

    Per class, once: the protocols have methods only, so the class decides, and isinstance against
    a runtime-checkable protocol walks its members on every call (a chain is made per pull).
    """
    roles = _ROLES.get(cls)
    if roles is None:
        roles = _ROLES[cls] = (
            issubclass(cls, ProjectFilter),
            issubclass(cls, ProjectSet),
            issubclass(cls, ReleaseFilter),
            issubclass(cls, FileFilter),
        )
    return roles


def _drop_releases(plugin: ReleaseFilter, page: ProjectPage, alive: list[int], dropped: dict[int, Decision]) -> None:
    by_version: dict[str, list[int]] = {}
    for i in alive:
        by_version.setdefault(file_version(page.files[i].filename), []).append(i)
    releases = [Release(v, tuple(page.files[i] for i in idx)) for v, idx in by_version.items()]
    for version, decision in plugin.filter_releases(page.name, releases).items():
        if not decision.keep:
            for i in by_version.get(version, ()):
                dropped[i] = decision
