"""``environments``: only files that can install on at least one configured target environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packaging.utils import InvalidSdistFilename, NormalizedName, parse_sdist_filename

from mirror.filter_api import Decision, DistFile, OptionError, Options, PluginContext, TargetEnvironment, parse_targets


@dataclass(frozen=True, slots=True)
class Environments:
    plugin: str
    configured: tuple[TargetEnvironment, ...]
    sdists: bool

    def targets(self) -> Sequence[TargetEnvironment]:
        return self.configured

    def filter_file(self, project: NormalizedName, file: DistFile) -> Decision | None:
        pythons = [t for t in self.configured if t.allows_python(file.requires_python)]
        if not pythons:
            return self._drop(f"requires-python {file.requires_python} admits none of the target Pythons")
        if file.filename.endswith(".whl"):
            if any(t.supports_wheel(file.filename) for t in pythons):
                return None
            return self._drop("no target environment can install this wheel's tags")
        if not _is_sdist(file.filename):
            return self._drop("neither a wheel nor an sdist")
        return None if self.sdists else self._drop("an sdist, and sdists = false")

    def _drop(self, reason: str) -> Decision:
        return Decision(False, self.plugin, reason)


def _is_sdist(filename: str) -> bool:
    try:
        parse_sdist_filename(filename)
    except InvalidSdistFilename:
        return False
    return True


def environments(options: Mapping[str, object], context: PluginContext) -> Environments:
    opts = Options(options)
    tables = opts.tables("targets")
    sdists = opts.boolean("sdists", True)
    opts.done()
    if not tables:
        raise OptionError("targets", "must name at least one { python = '3.12', platform = '...' }")
    try:
        targets = parse_targets(tables)
    except ValueError as exc:
        raise OptionError("targets", str(exc)) from None
    return Environments(context.name, targets, sdists)
