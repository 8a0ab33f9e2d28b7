"""An example filter plugin: keep wheels only, except for the projects listed in ``sdists-for``.

Enable it with::

    [filters]
    enabled = ["wheels-only"]

    [filters.wheels-only]
    sdists-for = ["some-pure-python-project"]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from packaging.utils import NormalizedName, canonicalize_name

from mirror.filter_api import Decision, DistFile, Options, PluginContext


@dataclass(frozen=True)
class WheelsOnly:
    plugin: str
    sdists_for: frozenset[NormalizedName]

    def filter_file(self, project: NormalizedName, file: DistFile) -> Decision | None:
        if file.filename.endswith(".whl") or project in self.sdists_for:
            return None
        return Decision(False, self.plugin, "not a wheel")


def factory(options: Mapping[str, object], context: PluginContext) -> WheelsOnly:
    opts = Options(options)
    sdists_for = frozenset(canonicalize_name(n) for n in opts.strings("sdists-for"))
    opts.done()
    return WheelsOnly(context.name, sdists_for)
