"""Testing helpers for filter plugin authors: build pages and files, run a plugin, read its decisions.

No network, no mirror directory: a plugin is a factory and some objects, and so is its test::

    from mirror.testing import build, page, kept
    plugin = build(my_factory, {"max": 2})
    assert kept(plugin, page("demo", "demo-1.0-py3-none-any.whl", "demo-2.0.tar.gz")) == [...]
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from mirror._plugins import Factory, OncePerRun
from mirror._plugins import build as _build
from mirror.core.filters import Decision, FilterChain, PluginContext
from mirror.core.models import DistFile, ProjectPage

NOW = datetime(2025, 1, 1, tzinfo=UTC)
"""The default "now" of :func:`build`: tests that involve time stay reproducible."""


def dist(
    filename: str,
    *,
    size: int = 1000,
    requires_python: str | None = None,
    upload_time: str | None = "2024-06-01T00:00:00.000000Z",
    yanked: bool | str = False,
    metadata: bool = True,
) -> DistFile:
    """A file as an upstream page lists it (URL and hash derived from the name)."""
    digest = hashlib.sha256(filename.encode()).hexdigest()
    return DistFile(
        filename=filename,
        url=f"https://files.example/packages/{digest[:2]}/{digest[2:4]}/{digest[4:]}/{filename}",
        hashes={"sha256": digest},
        requires_python=requires_python,
        size=size,
        upload_time=upload_time,
        yanked=yanked,
        core_metadata={"sha256": digest} if metadata and filename.endswith(".whl") else False,
    )


def page(project: str, *files: str | DistFile) -> ProjectPage:
    """A project page with these files (file names become :func:`dist` files with defaults)."""
    built = tuple(dist(f) if isinstance(f, str) else f for f in files)
    return ProjectPage(canonicalize_name(project), built)


def build(
    factory: Factory,
    options: Mapping[str, Any] | None = None,
    *,
    name: str = "plugin",
    now: datetime = NOW,
    config_dir: Path | None = None,
    warnings: list[str] | None = None,
) -> object:
    """Call ``factory`` as ``mirror sync`` does; bad options raise the same ConfigError the CLI shows.

    Its warnings go to ``warnings``, each distinct message once (as ``mirror sync`` shows them).
    """
    sink = warnings if warnings is not None else []
    context = PluginContext(name, config_dir or Path.cwd(), now, OncePerRun(sink.append))
    return _build(name, factory, options or {}, context, "mirror.toml")


def _chain(plugins: object) -> FilterChain:
    if isinstance(plugins, FilterChain):
        return plugins
    if isinstance(plugins, list | tuple):
        return FilterChain(tuple(plugins))
    return FilterChain((plugins,))


def explain(plugins: object, project_page: ProjectPage) -> dict[str, Decision | None]:
    """File name → the decision that dropped it (None: kept), for one plugin, a list of them, or a chain."""
    return {v.file.filename: v.dropped for v in _chain(plugins).explain(project_page)}


def kept(plugins: object, project_page: ProjectPage) -> list[str]:
    """The file names that survive, in page order."""
    return [name for name, dropped in explain(plugins, project_page).items() if dropped is None]


__all__ = ["NOW", "build", "dist", "explain", "kept", "page"]
