"""``mirror serve``: serve ``web/``; with ``[serve] users-file``, uploads to ``/legacy/`` (and read-auth);
with ``[serve] pull-through``, fetch what it lacks on request."""

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
    if not (config.web / "simple").is_dir():
        raise ConfigError(f"nothing to serve: {config.web / 'simple'} does not exist (run `mirror sync` first)")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, not {port}")
    pull = None
    if config.serve.pull_through:
        from mirror.serve.pullthrough import PullThrough

        config.require_upstream()
        if config.storage.backend != "filesystem":
            # It answers from, and publishes into, the local web/ tree that nginx serves.
            raise ConfigError(f'{config.source}: [serve] pull-through needs [storage] backend = "filesystem"')
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
