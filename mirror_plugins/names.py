"""``regex``: drop projects and files whose names match regular expressions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from packaging.utils import NormalizedName

from mirror.filter_api import Decision, DistFile, OptionError, Options, PluginContext


@dataclass(frozen=True, slots=True)
class Regex:
    plugin: str
    projects: tuple[re.Pattern[str], ...]
    files: tuple[re.Pattern[str], ...]

    def filter_project(self, name: NormalizedName) -> Decision | None:
        hit = next((p for p in self.projects if p.search(name)), None)
        return None if hit is None else Decision(False, self.plugin, f"project name matches {hit.pattern!r}")

    def filter_file(self, project: NormalizedName, file: DistFile) -> Decision | None:
        hit = next((p for p in self.files if p.search(file.filename)), None)
        return None if hit is None else Decision(False, self.plugin, f"file name matches {hit.pattern!r}")


def _compile(patterns: tuple[str, ...], key: str) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise OptionError(key, f"has an invalid regular expression {pattern!r}: {exc}") from None
    return tuple(compiled)


def regex(options: Mapping[str, object], context: PluginContext) -> Regex:
    opts = Options(options)
    projects = _compile(opts.strings("projects"), "projects")
    files = _compile(opts.strings("files"), "files")
    opts.done()
    return Regex(context.name, projects, files)
