"""``mirror add``, ``mirror remove`` and ``mirror user add``: private projects and who may upload them."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

import anyio

from mirror import _users
from mirror._config import Config
from mirror._state import STATE_DB, State, open_state
from mirror._stateloss import check_state
from mirror.cli.common import open_storage, prepare_directory
from mirror.errors import EXIT_OK, AlreadyPublished, ConfigError, EnvironmentFault
from mirror.private.publish import PrivateIndex


def add(config: Config, args: argparse.Namespace) -> int:
    files = [Path(f) for f in args.files]
    for path in files:
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
    prepare_directory(config)
    existed = (config.state_dir / STATE_DB).exists()
    with open_state(config.state_dir, State, existing=False) as state:
        storage = open_storage(config, state)
        check_state(storage, config.web_location, config.state_dir, state if existed else None)

        async def run() -> None:
            async with storage.publishing():
                index = PrivateIndex(config, state, storage)
                for path in files:
                    try:
                        added = await index.add(path, path.name, replace_upstream=args.replace_upstream)
                    except AlreadyPublished as exc:
                        if not exc.same:
                            raise
                        print(f"unchanged {path.name}: already published with the same bytes", file=sys.stderr)
                        continue
                    extra = f", replacing {added.replaced} upstream files" if added.replaced else ""
                    print(f"added {added.dist.name} {added.dist.version}: {added.path}{extra}", file=sys.stderr)

        anyio.run(run, backend="asyncio")
    return EXIT_OK


def remove(config: Config, args: argparse.Namespace) -> int:
    with open_state(config.state_dir, State) as state:
        storage = open_storage(config, state)
        check_state(storage, config.web_location, config.state_dir, state)

        async def run() -> None:
            async with storage.publishing():
                removed = await PrivateIndex(config, state, storage).remove(args.project, args.version)
            what = "project" if removed.whole else f"release {args.version} of"
            print(f"removed {what} {removed.project}: {removed.files} files", file=sys.stderr)

        anyio.run(run, backend="asyncio")
    return EXIT_OK


def user_add(config: Config, args: argparse.Namespace) -> int:
    path = config.serve.users_file
    if path is None:
        raise ConfigError(f"{config.source}: set [serve] users-file first (where the users are kept)")
    _users.check_name(args.name)
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the passwords differ; nothing changed")
    else:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
    try:
        new = _users.add_user(path, args.name, password)
    except OSError as exc:
        raise EnvironmentFault(f"cannot write {path}: {exc.strerror}") from None
    print(f"{'added' if new else 'changed the password of'} user {args.name} in {path}", file=sys.stderr)
    return EXIT_OK
