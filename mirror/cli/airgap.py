"""``mirror export`` and ``mirror import``: print what a bundle carried, choose the exit code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.filesize import decimal

from mirror._config import Config
from mirror._state import State, open_state
from mirror.airgap.bundle import parse_size
from mirror.airgap.export import ExportOptions
from mirror.airgap.export import export as export_bundle
from mirror.airgap.importer import import_bundles
from mirror.cli.common import open_storage, prepare_directory
from mirror.errors import EXIT_OK, ConfigError


def export(config: Config, args: argparse.Namespace) -> int:
    split = None if args.split_size is None else parse_size(args.split_size)
    options = ExportOptions(Path(args.outdir), args.since, args.full, split, args.compress)
    with open_state(config.state_dir, State) as state:
        _fill_lazy(config, state)
        done = export_bundle(config, state, open_storage(config, state), options)
    if done is None:
        print("nothing changed since the last export; no bundle written", file=sys.stderr)
        return EXIT_OK
    header, manifest = done
    kind = "full" if header.full else f"after {header.previous}"
    print(
        f"exported {header.id} ({kind}): {header.files} files ({decimal(header.bytes)}), "
        f"{header.deletions} deletions, {len(header.parts)} parts, serial {header.to_serial}; manifest {manifest}",
        file=sys.stderr,
    )
    return EXIT_OK


def _fill_lazy(config: Config, state: State) -> None:
    """Fetch the files pulled-through pages link but nobody asked for yet: an offline mirror cannot fetch them.

    Through the verifying download path of a sync; a file that cannot be fetched stops the export
    (exit 1 or 4) before any bundle is written.
    """
    paths = state.lazy_all()
    if not paths:
        return
    import anyio

    from mirror._http import Upstream
    from mirror._plugins import load_chain
    from mirror._progress import make_reporter
    from mirror.sync.engine import Syncer

    config.require_upstream()
    filters = load_chain(config.filters, str(config.source))
    print(f"fetching {len(paths)} files of pulled-through projects first (their pages link them)", file=sys.stderr)

    async def fill() -> None:
        async with Upstream(config) as upstream:
            reporter = make_reporter(quiet=True, verbose=False)
            syncer = Syncer(config, state, open_storage(config, state), upstream, filters, reporter)
            syncer.recover()
            for path in paths:
                await syncer.fetch_lazy(path)
            syncer.finish_pull()

    anyio.run(fill, backend="asyncio")


def import_(config: Config, args: argparse.Namespace) -> int:
    if config.upstream is not None:
        raise ConfigError(
            f"{config.source}: import is for an offline mirror; this config has an upstream "
            "(remove [mirror] upstream: a tree fed by both sync and import would diverge)"
        )
    prepare_directory(config)
    with open_state(config.state_dir, State, existing=False) as state:
        report = import_bundles(config, state, open_storage(config, state), [Path(p) for p in args.paths])
    for header, why in report.skipped:
        print(f"skipped {header.id}: {why}", file=sys.stderr)
    for header in report.applied:
        print(
            f"imported {header.id}: {header.files} files ({decimal(header.bytes)}), {header.deletions} deletions, "
            f"now at serial {header.to_serial}",
            file=sys.stderr,
        )
    return EXIT_OK
