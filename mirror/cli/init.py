"""``mirror init``: write the commented starter config."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from mirror.errors import EXIT_OK, ConfigError, EnvironmentFault


def init(path: Path) -> int:
    if path.exists():
        raise ConfigError(f"{path} already exists; not overwriting it")
    text = files("mirror").joinpath("starter.toml").read_text(encoding="utf-8")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise EnvironmentFault(f"cannot write {path}: {exc.strerror}") from None
    print(f"wrote {path}; set [mirror] directory and upstream, then run: mirror --config {path} sync")
    return EXIT_OK
