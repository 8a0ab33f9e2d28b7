"""``size``: a limit per file, and a budget per project filled newest release first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packaging.utils import NormalizedName

from mirror.filter_api import Decision, DistFile, Options, PluginContext, Release

_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Size:
    plugin: str
    max_file: int | None
    max_project: int | None

    def filter_file(self, project: NormalizedName, file: DistFile) -> Decision | None:
        if self.max_file is None or file.size is None or file.size <= self.max_file:
            return None
        return Decision(False, self.plugin, f"{file.size} bytes is over max-file-mb ({self.max_file // _MB} MiB)")

    def filter_releases(self, project: NormalizedName, releases: Sequence[Release]) -> Mapping[str, Decision]:
        if self.max_project is None:
            return {}
        dropped, used = {}, 0
        newest_first = sorted(releases, key=lambda r: (r.parsed is not None, r.parsed or r.version), reverse=True)
        for release in newest_first:
            # Files this plugin drops anyway do not use the budget.
            size = sum(f.size or 0 for f in release.files if self.filter_file(project, f) is None)
            if used + size > self.max_project:
                why = f"the project's newer releases fill max-project-mb ({self.max_project // _MB} MiB)"
                dropped[release.version] = Decision(False, self.plugin, why)
            else:
                used += size
        return dropped


def size(options: Mapping[str, object], context: PluginContext) -> Size:
    opts = Options(options)
    max_file = opts.number("max-file-mb", 0)
    max_project = opts.number("max-project-mb", 0)
    opts.done()
    return Size(context.name, int(max_file * _MB) or None, int(max_project * _MB) or None)
