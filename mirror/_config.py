"""The config file: found, read once with tomllib, validated, frozen, passed down.

Every key is declared in :data:`MIRROR_KEYS` (name, type, default, check); the starter config
written by ``mirror init`` documents each of them, and a test keeps the two in step.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from mirror.errors import ConfigError

ENV_VAR = "MIRROR_CONFIG"
DEFAULT_PATHS = (Path("mirror.toml"), Path("/etc/mirror/mirror.toml"))


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    kind: type | tuple[type, ...]
    default: Any
    check: Callable[[Any], str | None] = lambda _value: None
    """Returns a complaint, or None when the value is fine."""


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


def _url(value: Any) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return "must be an http:// or https:// URL"
    return None


def _nonempty(value: Any) -> str | None:
    return None if value else "must not be empty"


DIFF_FORMATS = ("mirror", "bandersnatch", "both")


def _diff_format(value: Any) -> str | None:
    return None if value in DIFF_FORMATS else "must be one of " + ", ".join(map(repr, DIFF_FORMATS))


MIRROR_KEYS: tuple[Key, ...] = (
    Key("directory", str, None, _nonempty),
    Key("upstream", str, None, _url),
    Key("workers", int, 16, _between(1, 64)),
    Key("timeout", (int, float), 30.0, _between(1, 3600)),
    Key("retries", int, 4, _between(0, 20)),
    Key("stale-retries", int, 2, _between(0, 10)),
    Key("verify-tls", bool, True),
    Key("ca-bundle", str, ""),
    Key("http2", bool, False),
    Key("contact", str, ""),
    Key("require-hashes", bool, True),
    Key("fsync", bool, False),
    Key("max-delete-fraction", (int, float), 0.2, _between(0.0, 1.0)),
    Key("max-page-mb", int, 128, _between(1, 4096)),
    Key("max-page-files", int, 100_000, _between(1, 10_000_000)),
    Key("max-root-mb", int, 512, _between(1, 1_048_576)),
    Key("metrics-file", str, ""),
    Key("diff-keep", int, 100, _between(0, 100_000)),
    Key("diff-format", str, "mirror", _diff_format),
)
FILTER_KEYS: tuple[Key, ...] = (Key("enabled", list, []),)


@dataclass(frozen=True, slots=True)
class FiltersConfig:
    enabled: tuple[str, ...] = ()
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    """Each plugin's own ``[filters.<name>]`` table, handed to its factory untouched."""


@dataclass(frozen=True, slots=True)
class Config:
    source: Path
    directory: Path
    upstream: str | None
    workers: int = 16
    timeout: float = 30.0
    retries: int = 4
    stale_retries: int = 2
    verify_tls: bool = True
    ca_bundle: Path | None = None
    http2: bool = False
    contact: str = ""
    require_hashes: bool = True
    fsync: bool = False
    max_delete_fraction: float = 0.2
    max_page_bytes: int = 128 * 1024 * 1024
    max_page_files: int = 100_000
    max_root_bytes: int = 512 * 1024 * 1024
    metrics_file: Path | None = None
    diff_keep: int = 100
    diff_format: str = "mirror"
    filters: FiltersConfig = field(default_factory=FiltersConfig)

    @property
    def web(self) -> Path:
        return self.directory / "web"

    @property
    def state_dir(self) -> Path:
        return self.directory / "state"

    @property
    def diffs(self) -> Path:
        return self.directory / "diffs"

    @property
    def metrics_path(self) -> Path:
        """Where each run leaves its Prometheus textfile (``metrics-file``, or one under state/)."""
        return self.metrics_file or self.state_dir / "metrics.prom"

    def require_upstream(self) -> str:
        if self.upstream is None:
            raise ConfigError(f"{self.source}: [mirror] upstream is required for this command")
        return self.upstream


def locate(explicit: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """``--config``, then ``$MIRROR_CONFIG``, then ``./mirror.toml``, then ``/etc/mirror/mirror.toml``."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if env.get(ENV_VAR):
        return Path(env[ENV_VAR])
    for candidate in DEFAULT_PATHS:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(p) for p in DEFAULT_PATHS)
    raise ConfigError(f"no config file: pass --config, set ${ENV_VAR}, or create one of {looked} (mirror init)")


def load(path: Path) -> Config:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse(raw, path)


def parse(raw: Mapping[str, Any], source: Path) -> Config:
    _no_unknown(raw, {"mirror", "filters"}, "", source)
    mirror = _table(raw, "mirror", source)
    values = _values(mirror, MIRROR_KEYS, "mirror", source)
    if values["directory"] is None:
        raise ConfigError(f"{source}: [mirror] directory is required")
    directory = Path(values["directory"]).expanduser()
    if not directory.is_absolute():
        directory = (source.parent / directory).resolve()
    upstream = values["upstream"]
    if upstream is not None and not upstream.endswith("/"):
        upstream += "/"
    bundle = values["ca-bundle"]
    metrics = values["metrics-file"]
    return Config(
        source=source,
        directory=directory,
        upstream=upstream,
        workers=values["workers"],
        timeout=float(values["timeout"]),
        retries=values["retries"],
        stale_retries=values["stale-retries"],
        verify_tls=values["verify-tls"],
        ca_bundle=(source.parent / Path(bundle).expanduser()) if bundle else None,
        http2=values["http2"],
        contact=values["contact"],
        require_hashes=values["require-hashes"],
        fsync=values["fsync"],
        max_delete_fraction=float(values["max-delete-fraction"]),
        max_page_bytes=values["max-page-mb"] * 1024 * 1024,
        max_page_files=values["max-page-files"],
        max_root_bytes=values["max-root-mb"] * 1024 * 1024,
        metrics_file=(source.parent / Path(metrics).expanduser()) if metrics else None,
        diff_keep=values["diff-keep"],
        diff_format=values["diff-format"],
        filters=_filters(raw, source),
    )


def _filters(raw: Mapping[str, Any], source: Path) -> FiltersConfig:
    table = _table(raw, "filters", source)
    options = {k: v for k, v in table.items() if isinstance(v, dict)}
    plain = {k: v for k, v in table.items() if not isinstance(v, dict)}
    enabled = _values(plain, FILTER_KEYS, "filters", source)["enabled"]
    for name in enabled:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{source}: [filters] enabled must be a list of plugin names")
    if len(set(enabled)) != len(enabled):
        raise ConfigError(f"{source}: [filters] enabled names a plugin twice")
    for name in options:
        if name not in enabled:
            raise ConfigError(f"{source}: [filters.{name}] is configured but {name!r} is not in [filters] enabled")
    frozen = {name: MappingProxyType(dict(opts)) for name, opts in options.items()}
    return FiltersConfig(tuple(enabled), MappingProxyType(frozen))


def _table(raw: Mapping[str, Any], name: str, source: Path) -> Mapping[str, Any]:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    return table


def _no_unknown(table: Mapping[str, Any], known: set[str], section: str, source: Path) -> None:
    for key in table:
        if key not in known:
            where = f"[{section}] " if section else ""
            raise ConfigError(f"{source}: unknown key {where}{key!r}")


def _values(table: Mapping[str, Any], keys: tuple[Key, ...], section: str, source: Path) -> dict[str, Any]:
    _no_unknown(table, {k.name for k in keys}, section, source)
    values: dict[str, Any] = {}
    for key in keys:
        if key.name not in table:
            values[key.name] = key.default
            continue
        value = table[key.name]
        # bool is an int to Python; a `workers = true` is still a type error to a person.
        if not isinstance(value, key.kind) or (isinstance(value, bool) and key.kind is not bool):
            raise ConfigError(f"{source}: [{section}] {key.name} must be {_kind_name(key.kind)}, not {value!r}")
        complaint = key.check(value)
        if complaint:
            raise ConfigError(f"{source}: [{section}] {key.name} {complaint} (got {value!r})")
        values[key.name] = value
    return values


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)
