"""What several commands share: preparing the mirror directory, its storage, warnings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
    else:
        _refuse_foreign(config)
    for sub in (config.web, config.state_dir):
        try:
            sub.mkdir(exist_ok=True)
        except OSError as exc:
            raise EnvironmentFault(f"cannot create {sub}: {exc.strerror}") from None


def open_storage(config: Config, state: State | None) -> Storage:
    """The mirror's ``web/`` tree; every publication and deletion goes to the change log in ``state``.

    On disk under ``<directory>/web``, or in the bucket of ``[storage]`` (``state/`` and
    ``diffs/`` stay on local disk either way).
    """
    hook = None if state is None else state.record_change
    if config.storage.backend == "s3":
        from mirror.storage.s3 import open_s3  # obstore is an extra: loaded only for an S3 mirror

        return open_s3(config.storage, on_change=hook)
    return FileStorage(config.web, fsync=config.fsync, on_change=hook)


def storage_location(config: Config) -> str:
    """Where the ``web/`` tree is, for messages: its directory, or ``s3://bucket/prefix``."""
    if config.storage.backend == "s3":
        return f"s3://{config.storage.bucket}/{config.storage.prefix}".rstrip("/")
    return str(config.web)


# What may sit in a directory that does not hold a mirror yet: what mirror itself creates there,
# the config file, and the lost+found of a file system mounted on it.
_BESIDE_A_NEW_MIRROR = frozenset({"diffs", "lost+found"})


def _refuse_foreign(config: Config) -> None:
    """Refuse to turn a non-empty directory that is not a mirror into one.

    A directory with ``web/`` or ``state/`` is a mirror (ours, or a bandersnatch tree: ``web/``
    beside its ``generation`` and ``status`` files) and is used as it is. Otherwise it may hold
    only ``diffs/``, ``lost+found`` and the config file: a typo in ``directory`` must not spread
    web/ and state/ over someone's home directory or /etc.
    """
    directory = config.directory
    try:
        entries = {entry.name for entry in os.scandir(directory)}
    except OSError as exc:
        raise EnvironmentFault(f"cannot read {directory}: {exc.strerror}") from None
    if entries & {"web", "state"}:
        return
    foreign = sorted(entries - _BESIDE_A_NEW_MIRROR - {_name_if_inside(config.source, directory)})
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ConfigError(
            f"{config.source}: [mirror] directory {directory} is not empty and holds no mirror ({shown}): "
            "name a new or empty directory, or an existing mirror's"
        )


def _name_if_inside(path: Path, directory: Path) -> str:
    return path.name if path.resolve().parent == directory.resolve() else ""


def warn(message: str) -> None:
    print(f"mirror: warning: {message}", file=sys.stderr)
