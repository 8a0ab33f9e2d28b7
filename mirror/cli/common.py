"""What several commands share: preparing the mirror directory, its storage, warnings."""

from __future__ import annotations

import sys

from mirror._config import Config
from mirror._state import State
from mirror.errors import ConfigError, EnvironmentFault
from mirror.storage import FileStorage, Storage


def prepare_directory(config: Config) -> None:
    """Create the mirror directory (its parent must exist), ``web/`` and ``state/``."""
    directory = config.directory
    if not directory.exists():
        if not directory.parent.is_dir():
            raise ConfigError(f"{config.source}: [mirror] directory {directory} does not exist, nor does its parent")
        try:
            directory.mkdir()
        except OSError as exc:
            raise EnvironmentFault(f"cannot create {directory}: {exc.strerror}") from None
    elif not directory.is_dir():
        raise ConfigError(f"{config.source}: [mirror] directory {directory} is not a directory")
    for sub in (config.web, config.state_dir):
        try:
            sub.mkdir(exist_ok=True)
        except OSError as exc:
            raise EnvironmentFault(f"cannot create {sub}: {exc.strerror}") from None


def open_storage(config: Config, state: State) -> Storage:
    """The mirror's ``web/`` tree; every publication and deletion goes to the change log in ``state``."""
    return FileStorage(config.web, fsync=config.fsync, on_change=state.record_change)


def warn(message: str) -> None:
    print(f"mirror: warning: {message}", file=sys.stderr)
