"""``mirror serve``: serve ``web/`` read-only; with ``[serve] pull-through``, fetch what it lacks on request."""

from __future__ import annotations

from mirror._config import Config
from mirror.errors import EXIT_OK, ConfigError, EnvironmentFault
from mirror.serve.static import serve as serve_tree


def serve(config: Config, host: str, port: int) -> int:
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
        serve_tree(config.web, host, port, pull)
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        raise EnvironmentFault(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    return EXIT_OK
