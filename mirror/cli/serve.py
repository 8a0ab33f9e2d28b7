"""``mirror serve``: serve ``web/`` read-only, from the disk or from the bucket of ``[storage]``."""

from __future__ import annotations

from mirror._config import Config
from mirror.errors import EXIT_OK, ConfigError, EnvironmentFault
from mirror.serve.static import serve as serve_tree


def serve(config: Config, host: str, port: int) -> int:
    if config.storage.backend == "s3":
        return _serve_bucket(config, host, port)
    if not (config.web / "simple").is_dir():
        raise ConfigError(f"nothing to serve: {config.web / 'simple'} does not exist (run `mirror sync` first)")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, not {port}")
    try:
        serve_tree(config.web, host, port)
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        raise EnvironmentFault(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    return EXIT_OK


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
