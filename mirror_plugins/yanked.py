"""``yanked``: drop yanked files (PEP 592). Without this plugin they are mirrored, marked yanked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from packaging.utils import NormalizedName

from mirror.filter_api import Decision, DistFile, Options, PluginContext


@dataclass(frozen=True, slots=True)
class Yanked:
    plugin: str

    def filter_file(self, project: NormalizedName, file: DistFile) -> Decision | None:
        if file.yanked is False:
            return None
        reason = f": {file.yanked}" if isinstance(file.yanked, str) else ""
        return Decision(False, self.plugin, f"yanked{reason}")


def yanked(options: Mapping[str, object], context: PluginContext) -> Yanked:
    Options(options).done()
    return Yanked(context.name)
