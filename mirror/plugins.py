"""Loading filter plugins from the ``mirror.filters.v1`` entry-point group.

An entry point only locates a factory; the factory receives its own ``[filters.<name>]`` table
and returns the filter object. Built-ins are loaded the same way as third-party plugins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from mirror.config import FiltersConfig
from mirror.core.filters import FileFilter, FilterChain, ProjectFilter
from mirror.errors import ConfigError

GROUP = "mirror.filters.v1"

Factory = Callable[[Mapping[str, Any]], object]


def available() -> dict[str, str]:
    """Plugin name → the entry point's target, for messages and ``mirror init``."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load_chain(config: FiltersConfig, source: str) -> FilterChain:
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    plugins: list[object] = []
    for name in config.enabled:
        if name not in found:
            known = ", ".join(sorted(found)) or "none installed"
            raise ConfigError(f"{source}: [filters] enabled names unknown plugin {name!r} (available: {known})")
        try:
            factory: Factory = found[name].load()
        except Exception as exc:
            raise ConfigError(f"{source}: filter plugin {name!r} failed to load: {exc}") from None
        plugin = _build(name, factory, config.options.get(name, {}), source)
        plugins.append(plugin)
    return FilterChain(tuple(plugins))


def _build(name: str, factory: Factory, options: Mapping[str, Any], source: str) -> object:
    try:
        plugin = factory(options)
    except ConfigError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"{source}: [filters.{name}] {exc}") from None
    if not isinstance(plugin, ProjectFilter | FileFilter):
        raise ConfigError(f"{source}: filter plugin {name!r} implements no filter protocol")
    return plugin
