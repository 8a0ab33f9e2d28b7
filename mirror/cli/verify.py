"""The ``verify`` command: lock, run a pass, print what it found and did, choose the exit code."""

from __future__ import annotations

import argparse
import sys

from rich.filesize import decimal

from mirror._config import Config
from mirror._progress import PlainReporter
from mirror._state import STATE_DB, open_state
from mirror._stateloss import check_state
from mirror.cli.common import open_storage, storage_location
from mirror.errors import EXIT_OK, EXIT_PARTIAL, ConfigError
from mirror.verify.engine import VerifyOptions, VerifyReport, run
from mirror.verify.rebuild import rebuild_state
from mirror.verify.store import VerifyState

_EXAMPLES = 10


def verify(config: Config, args: argparse.Namespace) -> int:
    if args.rebuild_state:
        return _rebuild(config, args)
    options = VerifyOptions(
        repair=args.repair, delete_orphans=args.delete_orphans, dry_run=args.dry_run, hashes=args.hashes
    )
    # Progress is a line every few seconds: it reads the same on a terminal and in a journal.
    reporter = PlainReporter(quiet=args.quiet, verbose=args.verbose)
    if not (config.state_dir / STATE_DB).exists():
        # A lost database, not a mirror never synced.
        check_state(open_storage(config, None), storage_location(config), config.state_dir, None)
    with open_state(config.state_dir, VerifyState) as state:
        storage = open_storage(config, state)
        # Every file and page a lost state does not know would be an "orphan".
        check_state(storage, storage_location(config), config.state_dir, state)
        report = run(config, state, storage, reporter, options)
        _print_findings(state, verbose=args.verbose)
        state.finish_pass()
    print(summary(report, options), file=sys.stderr)
    unrepaired = report.broken and (not options.repair or options.dry_run or report.repair_failed)
    return EXIT_PARTIAL if unrepaired else EXIT_OK


def _rebuild(config: Config, args: argparse.Namespace) -> int:
    if args.repair or args.delete_orphans or args.hashes:
        raise ConfigError("--rebuild-state goes alone (or with --dry-run): it hashes every file anyway")
    reporter = PlainReporter(quiet=args.quiet, verbose=args.verbose)
    report = rebuild_state(config, reporter, dry_run=args.dry_run)
    for example in report.examples:
        print(example, file=sys.stderr)
    if report.problems > len(report.examples):
        print(f"... and {report.problems - len(report.examples)} more", file=sys.stderr)
    verb = "would record" if args.dry_run else "rebuilt state"
    text = (
        f"{verb}: {report.projects} projects, {report.files} files ({decimal(report.bytes_hashed)} hashed) "
        f"from {config.web} in {report.seconds:.1f}s; nothing downloaded, web/ unchanged"
    )
    if report.unlisted:
        text += f"; {report.unlisted} projects have a page the root index does not list"
    if report.problems:
        text += f"; {report.problems} problems not recorded (the next `mirror sync` fetches them again)"
    if report.replaced is not None:
        text += f"; the previous database is kept as {report.replaced}"
    print(text, file=sys.stderr)
    return EXIT_PARTIAL if report.problems else EXIT_OK


def _print_findings(state: VerifyState, *, verbose: bool) -> None:
    for problem, count in sorted(state.counts().items(), key=lambda item: item[0].name):
        for finding in state.findings(problem, limit=-1 if verbose else _EXAMPLES):
            print(f"{finding.problem.value}: {finding.path}{_detail(finding.detail)}", file=sys.stderr)
        if not verbose and count > _EXAMPLES:
            print(f"... and {count - _EXAMPLES} more ({problem.value})", file=sys.stderr)


def _detail(detail: str) -> str:
    return f" ({detail})" if detail else ""


def summary(report: VerifyReport, options: VerifyOptions) -> str:
    checked = f"{report.projects} projects, {report.files} files"
    if options.hashes:
        checked += f" ({decimal(report.bytes_hashed)} hashed)"
    if report.resumed:
        checked += " (resumed pass)"
    if not report.counts:
        return f"verify ok: {checked}; no problems"
    found = ", ".join(f"{count} {problem.value}" for problem, count in sorted(report.counts.items(), key=_by_name))
    text = f"verify found problems: {checked}; {found}"
    if report.orphans_removed:
        text += f"; removed {report.orphans_removed} orphans"
    if report.orphans_kept:
        text += (
            f"; kept {report.orphans_kept} that a served page links or the root lists (`--rebuild-state` records them)"
        )
    if report.repaired or report.repair_failed:
        text += f"; repaired {report.repaired} projects"
    if report.repair_failed:
        example = next(iter(report.repair_failed.values()))
        text += f", {len(report.repair_failed)} could not be repaired (e.g. {example})"
    if report.root_rewritten:
        text += "; rewrote the root index"
    if report.broken and not options.repair:
        text += "; run `mirror verify --repair` to fix"
    return text


def _by_name(item: tuple[object, int]) -> str:
    return str(getattr(item[0], "name", ""))
