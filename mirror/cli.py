"""Command line: ``main(argv) -> int``, the one place errors become messages and exit codes."""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
import time
import traceback
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from rich.filesize import decimal

from mirror import __version__, metrics
from mirror import config as config_mod
from mirror.config import Config
from mirror.core.filters import FilterChain
from mirror.core.models import ProjectPage
from mirror.errors import (
    EXIT_CONFIG,
    EXIT_ENVIRONMENT,
    EXIT_OK,
    EXIT_PARTIAL,
    ConfigError,
    EnvironmentFault,
    MirrorError,
    unwrap,
)
from mirror.progress import make_reporter
from mirror.state import Lock, State

if TYPE_CHECKING:
    from mirror.sync import RunReport

STATE_DB = "mirror.sqlite3"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mirror", description="Mirror a Python package index into a static tree.")
    parser.add_argument("--version", action="version", version=f"mirror {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $MIRROR_CONFIG, ./mirror.toml, /etc/mirror/mirror.toml)",
    )
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("--quiet", "-q", action="store_true", help="only problems and the summary")
    noise.add_argument("--verbose", "-v", action="store_true", help="every event; tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sync = commands.add_parser("sync", help="bring the mirror up to date with its upstream")
    sync.add_argument("projects", nargs="*", metavar="PROJECT", help="only these projects")
    sync.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    sync.add_argument("--force-check", action="store_true", help="re-check every project, ignoring serials and ETags")
    sync.add_argument(
        "--explain", metavar="PROJECT", help="list every upstream file of PROJECT: kept or dropped, by whom, why"
    )

    status = commands.add_parser("status", help="what the mirror holds and how the last run went")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    serve = commands.add_parser("serve", help="serve the mirror's web/ tree read-only, with PEP 691 negotiation")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default: 8080; 0 picks a free one)")
    export = commands.add_parser("export", help="write an airgap bundle of what changed since the last export")
    export.add_argument("outdir", metavar="OUTDIR", help="directory to write the bundle into")
    base = export.add_mutually_exclusive_group()
    base.add_argument("--since", type=int, metavar="SERIAL", help="continue from the export made at this serial")
    base.add_argument("--full", action="store_true", help="the whole tree (starts a new chain)")
    export.add_argument("--split-size", metavar="SIZE", help="largest part, e.g. 4000M for FAT32 (default: one)")
    export.add_argument("--compress", choices=["none", "gzip"], default="none", help="compress the tar stream")

    imp = commands.add_parser("import", help="verify and apply airgap bundles to this (offline) mirror")
    imp.add_argument("paths", nargs="+", metavar="PATH", help="a bundle manifest, a part of one, or a directory")
    verify = commands.add_parser("verify", help="check the tree against state; repair and prune on request")
    verify.add_argument("--repair", action="store_true", help="re-fetch missing or bad files, rewrite bad pages")
    verify.add_argument("--delete-orphans", action="store_true", help="remove files and pages no page references")
    verify.add_argument("--dry-run", action="store_true", help="only report, change nothing")
    verify.add_argument("--hashes", action="store_true", help="also check every file's sha256 (reads every byte)")

    init = commands.add_parser("init", help="write a commented starter config")
    init.add_argument("path", nargs="?", default="mirror.toml", metavar="PATH")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one line
        return EXIT_OK if exc.code in (0, None) else EXIT_CONFIG
    try:
        try:
            return _dispatch(args)
        except BaseExceptionGroup as group:
            raise unwrap(group) from None
    except MirrorError as exc:
        return _fail(args, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return _fail(args, "interrupted; the mirror is as the last completed step left it", 130)
    except sqlite3.Error as exc:
        return _fail(args, f"state database error: {exc}", EXIT_ENVIRONMENT)
    except OSError as exc:
        return _fail(args, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), EXIT_ENVIRONMENT)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if getattr(args, "verbose", False):
        traceback.print_exc()
    print(f"mirror: error: {message}", file=sys.stderr)
    return code


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "init":
        return _init(Path(args.path))
    config = config_mod.load(config_mod.locate(args.config))
    if args.command == "status":
        return _status(config, as_json=args.json)
    if args.command == "serve":
        return _serve(config, args.host, args.port)
    if args.command == "export":
        return _export(config, args)
    if args.command == "import":
        return _import(config, args)
    if args.command == "verify":
        from mirror.verify_command import verify

        return verify(config, args)
    return _sync(config, args)


def _export(config: Config, args: argparse.Namespace) -> int:
    from mirror.bundle import parse_size
    from mirror.export import ExportOptions, export

    split = None if args.split_size is None else parse_size(args.split_size)
    options = ExportOptions(Path(args.outdir), args.since, args.full, split, args.compress)
    db = config.state_dir / STATE_DB
    if not db.exists():
        raise ConfigError(f"no mirror state at {db}: run `mirror sync` first")
    with Lock(config.state_dir / "lock"):
        state = State(db)
        try:
            done = export(config, state, options)
        finally:
            state.close()
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


def _import(config: Config, args: argparse.Namespace) -> int:
    from mirror.importer import import_bundles

    if config.upstream is not None:
        raise ConfigError(
            f"{config.source}: import is for an offline mirror; this config has an upstream "
            "(remove [mirror] upstream: a tree fed by both sync and import would diverge)"
        )
    _prepare_directory(config)
    with Lock(config.state_dir / "lock"):
        state = State(config.state_dir / STATE_DB)
        try:
            report = import_bundles(config, state, [Path(p) for p in args.paths])
        finally:
            state.close()
    for header, why in report.skipped:
        print(f"skipped {header.id}: {why}", file=sys.stderr)
    for header in report.applied:
        print(
            f"imported {header.id}: {header.files} files ({decimal(header.bytes)}), {header.deletions} deletions, "
            f"now at serial {header.to_serial}",
            file=sys.stderr,
        )
    return EXIT_OK


def _init(path: Path) -> int:
    if path.exists():
        raise ConfigError(f"{path} already exists; not overwriting it")
    text = files("mirror").joinpath("starter.toml").read_text(encoding="utf-8")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise EnvironmentFault(f"cannot write {path}: {exc.strerror}") from None
    print(f"wrote {path}; set [mirror] directory and upstream, then run: mirror --config {path} sync")
    return EXIT_OK


def _prepare_directory(config: Config) -> None:
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


def _sync(config: Config, args: argparse.Namespace) -> int:
    from mirror.http import Upstream
    from mirror.plugins import load_chain
    from mirror.storage import FileStorage
    from mirror.sync import Options, RunReport, Syncer

    config.require_upstream()
    filters = load_chain(config.filters, str(config.source), warn=_warn)
    if args.explain:
        return _explain(config, filters, args.explain)
    _prepare_directory(config)
    options = Options(projects=tuple(args.projects), dry_run=args.dry_run, force_check=args.force_check)
    reporter = make_reporter(quiet=args.quiet, verbose=args.verbose)
    report = RunReport(started=time.time())

    async def run() -> RunReport:
        nonlocal report
        storage = FileStorage(config.web, fsync=config.fsync, on_change=state.record_change)
        async with Upstream(config) as upstream, storage.publishing():
            syncer = Syncer(config, state, storage, upstream, filters, reporter, options)
            report = syncer.report  # a run that stops part way still reports what it did
            return await syncer.run()

    with Lock(config.state_dir / "lock"):
        state = State(config.state_dir / STATE_DB, dry_run=args.dry_run)
        try:
            report = anyio.run(run, backend="asyncio")
        except BaseException as exc:
            if not args.dry_run:
                _record_stopped(config, state, report, exc)
            raise
        else:
            if not args.dry_run:
                metrics.record(state, config.metrics_path, metrics.facts_of(report, state))
        finally:
            reporter.close()
            state.close()
    print(_summary(report, dry_run=args.dry_run), file=sys.stderr)
    return EXIT_OK if report.result == "ok" else EXIT_PARTIAL


def _record_stopped(config: Config, state: State, report: RunReport, exc: BaseException) -> None:
    """Metrics for a run that stopped: best effort, never hiding the error that stopped it."""
    reason = unwrap(exc) if isinstance(exc, BaseExceptionGroup) else exc
    message = str(reason) or type(reason).__name__
    with contextlib.suppress(MirrorError, OSError, sqlite3.Error):
        metrics.record(state, config.metrics_path, metrics.facts_of(report, state, error=message))


def _serve(config: Config, host: str, port: int) -> int:
    from mirror.serve import serve

    if not (config.web / "simple").is_dir():
        raise ConfigError(f"nothing to serve: {config.web / 'simple'} does not exist (run `mirror sync` first)")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, not {port}")
    try:
        serve(config.web, host, port)
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        raise EnvironmentFault(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    return EXIT_OK


def _warn(message: str) -> None:
    print(f"mirror: warning: {message}", file=sys.stderr)


def _explain(config: Config, filters: FilterChain, project: str) -> int:
    from mirror.explain import explain_lines, fetch_page, with_stored_closure
    from mirror.state import read_closure

    if filters.dependency_roots() is not None:
        filters = with_stored_closure(filters, read_closure(config.state_dir / STATE_DB))

    async def fetch() -> ProjectPage:
        return await fetch_page(config, project)

    page = anyio.run(fetch, backend="asyncio")
    for line in explain_lines(filters, page):
        print(line)
    return EXIT_OK


def _summary(report: object, *, dry_run: bool) -> str:
    from mirror.sync import RunReport

    assert isinstance(report, RunReport)
    took = report.finished - report.started
    if dry_run:
        return (
            f"dry run: {report.planned} projects to check, would download {report.would_download} files "
            f"({decimal(report.would_download_bytes)}), delete {report.would_delete} files/projects "
            f"({decimal(report.would_delete_bytes)}); {report.requests} requests"
        )
    text = (
        f"sync {report.result}: {report.synced} projects synced, {report.unchanged} unchanged, "
        f"{report.deleted} deleted; "
        f"{report.files_added} files added ({decimal(report.bytes_added)}), {report.files_deleted} removed; "
        f"{report.requests} requests in {took:.1f}s"
    )
    text += f"; {len(report.failed)} failed, {len(report.deferred)} deferred"
    if report.failed or report.deferred:
        text += " (retried next run)"
    if report.unresolved:
        shown = ", ".join(report.unresolved[:10]) + (", ..." if len(report.unresolved) > 10 else "")
        text += f"; dependencies unknown (no metadata) for {len(report.unresolved)} projects: {shown}"
    return text


def _status(config: Config, *, as_json: bool) -> int:
    db = config.state_dir / STATE_DB
    if not db.exists():
        raise ConfigError(f"no mirror state at {db}: run `mirror sync` first")
    state = State(db)
    try:
        totals = state.totals()
        last = json.loads(state.get_meta("last_run") or "null")
        outcome = metrics.last_facts(state)
        facts = {
            "directory": str(config.directory),
            "upstream": config.upstream,
            "serial": state.get_int("serial"),
            "projects": totals.projects,
            "files": totals.files,
            "bytes": totals.bytes,
            "last_run": last,
            "last_outcome": None if outcome is None else json.loads(outcome.to_json()),
            "metrics_file": str(config.metrics_path),
        }
    finally:
        state.close()
    if as_json:
        print(json.dumps(facts, indent=2))
        return EXIT_OK
    print(f"directory  {facts['directory']}")
    print(f"upstream   {facts['upstream']}")
    print(f"serial     {facts['serial']}")
    print(f"projects   {totals.projects}")
    print(f"files      {totals.files} ({decimal(totals.bytes)})")
    if outcome is not None:
        print(f"last run   {_when(outcome.finished)}: {_outcome_line(outcome)}")
        print(f"last ok    {_when(outcome.last_success) if outcome.last_success else 'never'}")
    print(f"metrics    {facts['metrics_file']}")
    return EXIT_OK


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(stamp))


def _outcome_line(outcome: metrics.RunFacts) -> str:
    text = (
        f"{outcome.result} in {outcome.duration:.1f}s, {outcome.synced} projects synced, "
        f"{outcome.files_added} files added ({decimal(outcome.bytes_added)}), {outcome.failures} failures"
    )
    return text + (f" ({outcome.error})" if outcome.error else "")
