"""``mirror serve``: serve ``web/`` from the disk or from the bucket of ``[storage]``; with
``[serve] users-file``, uploads to ``/legacy/`` (and read-auth); with ``[serve] pull-through``,
fetch what it lacks on request (both on the filesystem backend)."""

from __future__ import annotations

from mirror._config import Config
from mirror._users import Users
from mirror.cli.common import open_storage
from mirror.errors import EXIT_OK, ConfigError, EnvironmentFault
from mirror.serve.static import Handler
from mirror.serve.static import serve as serve_tree
from mirror.serve.upload import ReadAuth, Uploads


def serve(config: Config, host: str | None, port: int | None) -> int:
    """``host`` and ``port`` from the command line win over ``[serve]``'s."""
    host = config.serve.host if host is None else host
    port = config.serve.port if port is None else port
    if config.storage.backend == "s3":
        for key, on in (
            ("users-file", config.serve.users_file is not None),
            ("pull-through", config.serve.pull_through),
        ):
            if on:
                # Both publish into the tree the server answers from, which it reads from the local disk.
                raise ConfigError(f'{config.source}: [serve] {key} needs [storage] backend = "filesystem"')
        return _serve_bucket(config, host, port)
    if not (config.web / "simple").is_dir():
        raise ConfigError(f"nothing to serve: {config.web / 'simple'} does not exist (run `mirror sync` first)")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, not {port}")
    pull = None
    if config.serve.pull_through:
        from mirror.serve.pullthrough import PullThrough

        config.require_upstream()
        pull = PullThrough(config)
    try:
        serve_tree(config.web, host, port, handlers(config), pull)
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        raise EnvironmentFault(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    return EXIT_OK


def handlers(config: Config) -> list[Handler]:
    """What answers before the static tree: uploads when a users file is set, then read-auth."""
    if config.serve.users_file is None:
        return []
    users = Users(config.serve.users_file)
    chain: list[Handler] = [Uploads(config, users, lambda state: open_storage(config, state))]
    if config.serve.read_auth:
        chain.append(ReadAuth(users))
    return chain


def _serve_bucket(config: Config, host: str, port: int) -> int:
    # Loaded only here: obstore is the s3 extra (open_s3 says so in one line when it is missing).
    from mirror.storage.s3 import open_s3

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, not {port}")
    storage = open_s3(config.storage)  # a missing bucket, bad credentials: one line, before binding
    if storage.size("simple/index.html") is None:
        raise ConfigError(
            f"nothing to serve: {storage.where}/simple/index.html does not exist (run `mirror sync` first)"
        )
    from mirror.serve.objects import serve as serve_objects

    try:
        serve_objects(storage.store, storage.where, host, port)
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        raise EnvironmentFault(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    return EXIT_OK
