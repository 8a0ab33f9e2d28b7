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
    show: Callable[[Any], str] = repr
    """How a complaint quotes the value (the upstream's hides credentials)."""


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


def _url(value: Any) -> str | None:
    if _has_control(value) or any(c.isspace() for c in value):
        return "must be a URL without spaces or control characters"
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return "must be an http:// or https:// URL"
    if parts.username is not None or parts.password is not None:
        # Refused rather than used: URLs end up in log lines, error messages and state, and a
        # password must never be printed. Complaints about it never echo the value.
        return "must not carry credentials (user:password@); mirror does not log in to upstreams"
    if port == 0:
        return "has port 0, which no server listens on"
    return None


def _contact(value: Any) -> str | None:
    # It goes into the User-Agent header: printable ASCII only, so no header can be injected.
    return None if all(" " <= c <= "~" for c in value) else "must be printable ASCII (it is sent in the User-Agent)"


def _path(value: Any) -> str | None:
    return "must not contain control characters (NUL, newline, ...)" if _has_control(value) else None


def _file_path(value: Any) -> str | None:
    if not value:
        return None
    if _has_control(value):
        return _path(value)
    if value.endswith(("/", "/.", "/..")) or Path(value).name in {"", ".", ".."}:
        return "must name a file, not a directory"
    return None


def _show_url(value: Any) -> str:
    """The value for a complaint, credentials hidden; not a string: only its type."""
    return repr(_hide_credentials(value)) if isinstance(value, str) else f"a {type(value).__name__}"


def _hide_credentials(value: str) -> str:
    if "@" not in value:
        return value
    scheme, sep, rest = value.partition("://")
    if not sep:
        return "***"
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://***@{netloc.rpartition('@')[2]}{slash}{path}" if "@" in netloc else value


def _has_control(value: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def _nonempty(value: Any) -> str | None:
    return _path(value) if value else "must not be empty"


DIFF_FORMATS = ("mirror", "bandersnatch", "both")


def _diff_format(value: Any) -> str | None:
    return None if value in DIFF_FORMATS else "must be one of " + ", ".join(map(repr, DIFF_FORMATS))


MIRROR_KEYS: tuple[Key, ...] = (
    Key("directory", str, None, _nonempty),
    Key("upstream", str, None, _url, lambda value: _show_url(value)),
    Key("workers", int, 16, _between(1, 64)),
    Key("timeout", (int, float), 30.0, _between(1, 3600)),
    Key("retries", int, 4, _between(0, 20)),
    Key("stale-retries", int, 2, _between(0, 10)),
    Key("verify-tls", bool, True),
    Key("ca-bundle", str, "", _file_path),
    Key("http2", bool, False),
    Key("contact", str, "", _contact),
    Key("require-hashes", bool, True),
    Key("fsync", bool, False),
    Key("max-delete-fraction", (int, float), 0.2, _between(0.0, 1.0)),
    Key("max-project-delete-fraction", (int, float), 0.5, _between(0.0, 1.0)),
    Key("max-page-mb", int, 128, _between(1, 4096)),
    Key("max-page-files", int, 100_000, _between(1, 10_000_000)),
    Key("max-root-mb", int, 512, _between(1, 1_048_576)),
    Key("metrics-file", str, "", _file_path),
    Key("diff-keep", int, 100, _between(0, 100_000)),
    Key("diff-format", str, "mirror", _diff_format),
)
FILTER_KEYS: tuple[Key, ...] = (Key("enabled", list, []),)
BACKENDS = ("filesystem", "s3")


def _backend(value: Any) -> str | None:
    return None if value in BACKENDS else "must be one of " + ", ".join(map(repr, BACKENDS))


def _bucket(value: Any) -> str | None:
    # S3's own bucket naming rules, loosely: a name that could never be a bucket is a typo.
    ok = 3 <= len(value) <= 63 and all((c.isalnum() and c.isascii()) or c in "-._" for c in value)
    return None if ok else "must be a bucket name (3-63 letters, digits, '-', '.', '_')"


def _prefix(value: Any) -> str | None:
    if _has_control(value) or "\\" in value:
        return "must not contain control characters or backslashes"
    if value.startswith("/") or any(part in {".", ".."} for part in value.split("/")):
        return "must be a relative key prefix without '.' or '..' parts"
    return None


def _endpoint(value: Any) -> str | None:
    return _url(value) if value else None


STORAGE_KEYS: tuple[Key, ...] = (
    Key("backend", str, "filesystem", _backend),
    Key("bucket", str, "", lambda value: _bucket(value) if value else None),
    Key("prefix", str, "", _prefix),
    Key("endpoint-url", str, "", _endpoint, lambda value: _show_url(value)),
    Key("region", str, "us-east-1", _nonempty),
)
SERVE_KEYS: tuple[Key, ...] = (
    Key("host", str, "127.0.0.1", _nonempty),
    Key("port", int, 8080, _between(0, 65535)),
    Key("users-file", str, "", _file_path),
    Key("read-auth", bool, False),
    Key("pull-through", bool, False),
    Key("pull-through-max-age", int, 600, _between(0, 31_536_000)),
    Key("max-upload-mb", int, 1024, _between(1, 1024 * 1024)),
)


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """``[storage]``: where ``web/`` lives. Credentials never come from here (AWS_* / profiles)."""

    backend: str = "filesystem"
    bucket: str = ""
    prefix: str = ""
    """Key prefix, without a trailing slash; the web/ layout goes under it."""
    endpoint_url: str = ""
    region: str = "us-east-1"


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """``[serve]``: ``mirror serve``'s defaults, uploads and pull-through."""

    host: str = "127.0.0.1"
    port: int = 8080
    users_file: Path | None = None
    """Enables uploads (POST /legacy/ with HTTP basic auth) when set."""
    read_auth: bool = False
    pull_through: bool = False
    pull_through_max_age: int = 600
    """Seconds after which a pulled-through page is refreshed on request."""
    max_upload_bytes: int = 1024 * 1024 * 1024
    """Largest upload body accepted at /legacy/ (``max-upload-mb``)."""


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
    max_project_delete_fraction: float = 0.5
    max_page_bytes: int = 128 * 1024 * 1024
    max_page_files: int = 100_000
    max_root_bytes: int = 512 * 1024 * 1024
    metrics_file: Path | None = None
    diff_keep: int = 100
    diff_format: str = "mirror"
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    @property
    def web(self) -> Path:
        return self.directory / "web"

    @property
    def web_location(self) -> str:
        """Where the ``web/`` tree is, for messages: its directory, or ``s3://bucket/prefix``."""
        if self.storage.backend == "s3":
            return f"s3://{self.storage.bucket}/{self.storage.prefix}".rstrip("/")
        return str(self.web)

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
    _no_unknown(raw, {"mirror", "filters", "storage", "serve"}, "", source)
    mirror = _table(raw, "mirror", source)
    values = _values(mirror, MIRROR_KEYS, "mirror", source)
    if values["directory"] is None:
        raise ConfigError(f"{source}: [mirror] directory is required")
    directory = _directory(values["directory"], source)
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
        ca_bundle=(source.parent / _expand(bundle, "ca-bundle", source)) if bundle else None,
        http2=values["http2"],
        contact=values["contact"],
        require_hashes=values["require-hashes"],
        fsync=values["fsync"],
        max_delete_fraction=float(values["max-delete-fraction"]),
        max_project_delete_fraction=float(values["max-project-delete-fraction"]),
        max_page_bytes=values["max-page-mb"] * 1024 * 1024,
        max_page_files=values["max-page-files"],
        max_root_bytes=values["max-root-mb"] * 1024 * 1024,
        metrics_file=_metrics_file(metrics, directory, source) if metrics else None,
        diff_keep=values["diff-keep"],
        diff_format=values["diff-format"],
        filters=_filters(raw, source),
        storage=_storage(raw, source),
        serve=_serve(raw, source),
    )


def _storage(raw: Mapping[str, Any], source: Path) -> StorageConfig:
    values = _values(_table(raw, "storage", source), STORAGE_KEYS, "storage", source)
    if values["backend"] == "s3" and not values["bucket"]:
        raise ConfigError(f"{source}: [storage] bucket is required when backend is 's3'")
    if values["backend"] == "filesystem":
        extra = [k.name for k in STORAGE_KEYS if k.name != "backend" and k.name in _table(raw, "storage", source)]
        if extra:
            raise ConfigError(f"{source}: [storage] {extra[0]} only applies to backend = 's3'")
    return StorageConfig(
        backend=values["backend"],
        bucket=values["bucket"],
        prefix=values["prefix"].strip("/"),
        endpoint_url=values["endpoint-url"],
        region=values["region"],
    )


def _serve(raw: Mapping[str, Any], source: Path) -> ServeConfig:
    values = _values(_table(raw, "serve", source), SERVE_KEYS, "serve", source)
    users = values["users-file"]
    if values["read-auth"] and not users:
        raise ConfigError(f"{source}: [serve] read-auth needs users-file (nobody could read)")
    return ServeConfig(
        host=values["host"],
        port=values["port"],
        users_file=(source.parent / _expand(users, "users-file", source)) if users else None,
        read_auth=values["read-auth"],
        pull_through=values["pull-through"],
        pull_through_max_age=values["pull-through-max-age"],
        max_upload_bytes=values["max-upload-mb"] * 1024 * 1024,
    )


def _expand(value: str, key: str, source: Path) -> Path:
    """``~`` and ``~user`` expanded; a user who does not exist is a config error, not a RuntimeError."""
    try:
        return Path(value).expanduser()
    except RuntimeError:
        raise ConfigError(f"{source}: [mirror] {key} starts with ~ but names no known user (got {value!r})") from None


def _directory(value: str, source: Path) -> Path:
    """The mirror directory, absolute; a file system root is refused (it would get /web, /state)."""
    directory = _expand(value, "directory", source)
    if not directory.is_absolute():
        directory = (source.parent / directory).resolve()
    if Path(os.path.normpath(directory)) == Path(directory.anchor) or directory.resolve() == Path(directory.anchor):
        raise ConfigError(
            f"{source}: [mirror] directory must not be a file system root (got {value!r}): "
            "name a directory of its own, e.g. /srv/pypi"
        )
    return directory


def _metrics_file(value: str, directory: Path, source: Path) -> Path:
    path = source.parent / _expand(value, "metrics-file", source)
    if path.is_dir():
        raise ConfigError(f"{source}: [mirror] metrics-file must name a file, but {path} is a directory")
    web = directory / "web"
    if Path(os.path.normpath(path)).is_relative_to(web) or path.resolve().is_relative_to(web.resolve()):
        raise ConfigError(f"{source}: [mirror] metrics-file must not be under {web}: everything there is published")
    return path


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
            raise ConfigError(f"{source}: [{section}] {key.name} must be {_kind_name(key.kind)}, not {key.show(value)}")
        complaint = key.check(value)
        if complaint:
            raise ConfigError(f"{source}: [{section}] {key.name} {complaint} (got {key.show(value)})")
        values[key.name] = value
    return values


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)
