"""The parser and ``main(argv) -> int``: the one place errors become messages and exit codes."""

from __future__ import annotations

import argparse
import sqlite3
import sys
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from mirror import __version__, _gc
from mirror import _config as config_mod
from mirror.errors import EXIT_CONFIG, EXIT_ENVIRONMENT, EXIT_OK, MirrorError, unwrap


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
    serve.add_argument("--host", help="address to bind (default: [serve] host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: [serve] port, 8080; 0 picks a free one)")

    add = commands.add_parser("add", help="publish local wheels or sdists as private projects")
    add.add_argument("files", nargs="+", metavar="FILE", help="a wheel (.whl) or an sdist (.tar.gz, .zip)")
    add.add_argument(
        "--replace-upstream",
        action="store_true",
        help="make a project mirrored from the upstream private (its upstream files go)",
    )
    remove = commands.add_parser("remove", help="remove a private project, or one of its releases")
    remove.add_argument("project", metavar="PROJECT")
    remove.add_argument("version", nargs="?", metavar="VERSION", help="only this release")
    user = commands.add_parser("user", help="manage the users of [serve] users-file (uploads, read-auth)")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    user_add = user_commands.add_parser("add", help="add a user or change a password (read from stdin or a prompt)")
    user_add.add_argument("name", metavar="NAME")
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
    verify.add_argument(
        "--rebuild-state",
        action="store_true",
        help="rebuild a lost state database from the published pages and the files on disk (no downloads)",
    )

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
    run = _command(args)
    _gc.settle()  # once the command's modules are imported: they are start-up too
    return run()


def _command(args: argparse.Namespace) -> Callable[[], int]:
    # Each command's module is imported only when it runs: `mirror status` never loads httpx.
    if args.command == "init":
        from mirror.cli.init import init

        return partial(init, Path(args.path))
    config = config_mod.load(config_mod.locate(args.config))
    if args.command == "status":
        from mirror.cli.status import status

        return partial(status, config, as_json=args.json)
    if args.command == "serve":
        from mirror.cli.serve import serve

        return partial(serve, config, args.host, args.port)
    if args.command in ("add", "remove", "user"):
        from mirror.cli.private import add, remove, user_add

        if args.command == "add":
            return partial(add, config, args)
        if args.command == "remove":
            return partial(remove, config, args)
        return partial(user_add, config, args)
    if args.command == "export":
        from mirror.cli.airgap import export

        return partial(export, config, args)
    if args.command == "import":
        from mirror.cli.airgap import import_

        return partial(import_, config, args)
    if args.command == "verify":
        from mirror.cli.verify import verify

        return partial(verify, config, args)
    from mirror.cli.sync import sync

    return partial(sync, config, args)
