"""The public API for filter plugins, version 1 (entry-point group ``mirror.filters.v1``).

A plugin package declares an entry point in that group whose target is a factory::

    def factory(options: Mapping[str, object], context: PluginContext) -> object

``options`` is the plugin's own ``[filters.<name>]`` table (read it with :class:`Options`, whose
:class:`OptionError` becomes a config error naming the plugin and the key). The returned object
implements one or more of :class:`ProjectFilter`, :class:`ReleaseFilter`, :class:`FileFilter`
(and, for resolving allowlists, :class:`DependencyRoots`); every drop is a :class:`Decision`
with the plugin's name and a reason a person can read. Test a plugin with :mod:`mirror.testing`.
Everything a plugin may rely on is exported here; the rest of ``mirror`` may change.
"""

from __future__ import annotations

from mirror.core.closure import Want
from mirror.core.environments import TargetEnvironment, parse_targets
from mirror.core.filters import (
    API_VERSION,
    UNKNOWN_VERSION,
    Decision,
    DependencyRoots,
    FileFilter,
    Fingerprinted,
    PluginContext,
    ProjectFilter,
    ProjectSet,
    Release,
    ReleaseFilter,
    TargetProvider,
    file_version,
)
from mirror.core.models import DistFile
from mirror.core.options import OptionError, Options

GROUP = f"mirror.filters.v{API_VERSION}"

__all__ = [
    "API_VERSION",
    "GROUP",
    "UNKNOWN_VERSION",
    "Decision",
    "DependencyRoots",
    "DistFile",
    "FileFilter",
    "Fingerprinted",
    "OptionError",
    "Options",
    "PluginContext",
    "ProjectFilter",
    "ProjectSet",
    "Release",
    "ReleaseFilter",
    "TargetEnvironment",
    "TargetProvider",
    "Want",
    "file_version",
    "parse_targets",
]
