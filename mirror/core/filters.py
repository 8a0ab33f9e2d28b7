"""Filter plugin protocols and the pure logic that applies them. Plugins decide; this module obeys.

A plugin is any object implementing one or more of the protocols below. Each decision carries
the plugin's name and its reason, so ``--explain`` can say why a file is or is not mirrored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from packaging.utils import NormalizedName

from mirror.core.models import DistFile, ProjectPage


@dataclass(frozen=True, slots=True)
class Decision:
    keep: bool
    plugin: str
    reason: str


@runtime_checkable
class ProjectFilter(Protocol):
    """Decides on a project by name alone, before anything about it is fetched."""

    def filter_project(self, name: NormalizedName) -> Decision | None: ...


@runtime_checkable
class FileFilter(Protocol):
    """Decides on one distribution file of a project page."""

    def filter_file(self, project: NormalizedName, file: DistFile) -> Decision | None: ...


@dataclass(frozen=True, slots=True)
class FilterChain:
    """The enabled plugins, in the order of ``[filters] enabled``; the first "drop" wins."""

    plugins: Sequence[object] = ()

    def project_decision(self, name: NormalizedName) -> Decision | None:
        for plugin in self.plugins:
            if isinstance(plugin, ProjectFilter):
                decision = plugin.filter_project(name)
                if decision is not None and not decision.keep:
                    return decision
        return None

    def keep_project(self, name: NormalizedName) -> bool:
        return self.project_decision(name) is None

    def file_decision(self, project: NormalizedName, file: DistFile) -> Decision | None:
        for plugin in self.plugins:
            if isinstance(plugin, FileFilter):
                decision = plugin.filter_file(project, file)
                if decision is not None and not decision.keep:
                    return decision
        return None

    def filter_page(self, page: ProjectPage) -> ProjectPage:
        if not any(isinstance(p, FileFilter) for p in self.plugins):
            return page
        kept = tuple(f for f in page.files if self.file_decision(page.name, f) is None)
        return replace(page, files=kept)
