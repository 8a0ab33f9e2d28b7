"""Command line: ``main(argv) -> int``, the one place errors become messages and exit codes."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
import traceback
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import anyio
from rich.filesize import decimal

from mirror import __version__
from mirror import config as config_mod
from mirror.config import Config
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

    status = commands.add_parser("status", help="what the mirror holds and how the last run went")
    status.add_argument("--json", action="store_true", help="machine-readable output")

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
    if args.command == "verify":
        from mirror.verify_command import verify

        return verify(config, args)
    return _sync(config, args)


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
    filters = load_chain(config.filters, str(config.source))
    _prepare_directory(config)
    options = Options(projects=tuple(args.projects), dry_run=args.dry_run, force_check=args.force_check)
    reporter = make_reporter(quiet=args.quiet, verbose=args.verbose)

    async def run() -> RunReport:
        async with Upstream(config) as upstream:
            syncer = Syncer(
                config,
                state,
                FileStorage(config.web, fsync=config.fsync),
                upstream,
                filters,
                reporter,
                options,
            )
            return await syncer.run()

    with Lock(config.state_dir / "lock"):
        state = State(config.state_dir / STATE_DB, dry_run=args.dry_run)
        try:
            report = anyio.run(run, backend="asyncio")
        finally:
            reporter.close()
            state.close()
    print(_summary(report, dry_run=args.dry_run), file=sys.stderr)
    return EXIT_OK if report.result == "ok" else EXIT_PARTIAL


def _summary(report: object, *, dry_run: bool) -> str:
    from mirror.sync import RunReport

    assert isinstance(report, RunReport)
    took = report.finished - report.started
    if dry_run:
        return (
            f"dry run: {report.planned} projects to check, would download {report.would_download} files "
            f"({decimal(report.would_download_bytes)}), delete {report.would_delete} files/projects; "
            f"{report.requests} requests"
        )
    text = (
        f"sync {report.result}: {report.synced} projects synced, {report.unchanged} unchanged, "
        f"{report.deleted} deleted; "
        f"{report.files_added} files added ({decimal(report.bytes_added)}), {report.files_deleted} removed; "
        f"{report.requests} requests in {took:.1f}s"
    )
    if report.failed or report.deferred:
        text += f"; {len(report.failed)} failed, {len(report.deferred)} deferred (retried next run)"
    return text


def _status(config: Config, *, as_json: bool) -> int:
    db = config.state_dir / STATE_DB
    if not db.exists():
        raise ConfigError(f"no mirror state at {db}: run `mirror sync` first")
    state = State(db)
    try:
        totals = state.totals()
        last = json.loads(state.get_meta("last_run") or "null")
        facts = {
            "directory": str(config.directory),
            "upstream": config.upstream,
            "serial": state.get_int("serial"),
            "projects": totals.projects,
            "files": totals.files,
            "bytes": totals.bytes,
            "last_run": last,
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
    if last:
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(last["finished"]))
        print(
            f"last run   {when}: {last['result']}, {last['synced']} synced, {last['deleted']} deleted, "
            f"{last['failed']} failed, {last['deferred']} deferred, {last['finished'] - last['started']:.1f}s"
        )
    return EXIT_OK
