"""The ``verify`` command: lock, run a pass, print what it found and did, choose the exit code."""

from __future__ import annotations

import argparse
import sys

from rich.filesize import decimal

from mirror.config import Config
from mirror.errors import EXIT_OK, EXIT_PARTIAL, ConfigError
from mirror.progress import PlainReporter
from mirror.state import Lock
from mirror.verify import VerifyOptions, VerifyReport, run
from mirror.verify_state import VerifyState

_EXAMPLES = 10


def verify(config: Config, args: argparse.Namespace) -> int:
    from mirror.cli import STATE_DB

    db = config.state_dir / STATE_DB
    if not db.exists():
        raise ConfigError(f"no mirror state at {db}: run `mirror sync` first")
    options = VerifyOptions(
        repair=args.repair, delete_orphans=args.delete_orphans, dry_run=args.dry_run, hashes=args.hashes
    )
    # Progress is a line every few seconds: it reads the same on a terminal and in a journal.
    reporter = PlainReporter(quiet=args.quiet, verbose=args.verbose)
    with Lock(config.state_dir / "lock"):
        state = VerifyState(db)
        try:
            report = run(config, state, reporter, options)
            _print_findings(state, verbose=args.verbose)
            state.finish_pass()
        finally:
            state.close()
    print(summary(report, options), file=sys.stderr)
    unrepaired = report.broken and (not options.repair or options.dry_run or report.repair_failed)
    return EXIT_PARTIAL if unrepaired else EXIT_OK


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
