"""Loading filter plugins from the ``mirror.filters.v1`` entry-point group.

An entry point only locates a factory; the factory receives its own ``[filters.<name>]`` table
and a :class:`~mirror.filter_api.PluginContext`, and returns the filter object. Built-ins are
loaded the same way as third-party plugins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from mirror._config import FiltersConfig
from mirror.core.filters import FileFilter, FilterChain, PluginContext, ProjectFilter, ReleaseFilter
from mirror.core.options import OptionError
from mirror.errors import ConfigError
from mirror.filter_api import GROUP

Factory = Callable[[Mapping[str, Any], PluginContext], object]


def available() -> dict[str, str]:
    """Plugin name → the entry point's target, for messages and ``mirror init``."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load_chain(
    config: FiltersConfig,
    source: str,
    *,
    warn: Callable[[str], None] = lambda _message: None,
    now: datetime | None = None,
) -> FilterChain:
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    started = now or datetime.now(UTC)
    warn = OncePerRun(warn)
    plugins: list[object] = []
    for name in config.enabled:
        if name not in found:
            known = ", ".join(sorted(found)) or "none installed"
            raise ConfigError(f"{source}: [filters] enabled names unknown plugin {name!r} (available: {known})")
        try:
            factory: Factory = found[name].load()
        except Exception as exc:
            raise ConfigError(f"{source}: filter plugin {name!r} failed to load: {exc}") from None
        context = PluginContext(name, Path(source).parent, started, warn)
        plugins.append(build(name, factory, config.options.get(name, {}), context, source))
    return FilterChain(tuple(plugins))


class OncePerRun:
    """A plugin's ``warn``: each distinct message is passed on once per run, however often it is given.

    A filter sees every project; the warning it has for one (no upload times, say) would otherwise be
    repeated for each of 800,000.
    """

    def __init__(self, warn: Callable[[str], None]) -> None:
        self._warn = warn
        self._said: set[str] = set()

    def __call__(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            self._warn(message)


def build(name: str, factory: Factory, options: Mapping[str, Any], context: PluginContext, source: str) -> object:
    """Call one factory; whatever it rejects becomes a config error naming the plugin (and key)."""
    try:
        plugin = factory(options, context)
    except ConfigError:
        raise
    except OptionError as exc:
        raise ConfigError(f"{source}: [filters.{name}] {exc}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"{source}: [filters.{name}] {exc}") from None
    if not isinstance(plugin, ProjectFilter | ReleaseFilter | FileFilter):
        raise ConfigError(f"{source}: filter plugin {name!r} implements no filter protocol")
    return plugin
