"""``mirror sync`` (and ``--explain``): run the engine, record metrics, print the summary."""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
import time
from pathlib import Path

import anyio
from rich.filesize import decimal

from mirror import _metrics as metrics
from mirror._config import Config
from mirror._http import Upstream
from mirror._plugins import load_chain
from mirror._progress import make_reporter
from mirror._state import STATE_DB, State, open_state, read_closure
from mirror._stateloss import check_state
from mirror.cli.common import open_storage, prepare_directory, storage_location, warn
from mirror.core.filters import FilterChain
from mirror.core.models import ProjectPage
from mirror.errors import EXIT_OK, EXIT_PARTIAL, MirrorError, unwrap
from mirror.storage import Storage
from mirror.sync.engine import Options, RunReport, Syncer
from mirror.sync.explain import explain_lines, fetch_page, with_stored_closure


def sync(config: Config, args: argparse.Namespace) -> int:
    config.require_upstream()
    filters = load_chain(config.filters, str(config.source), warn=warn)
    if args.explain:
        return _explain(config, filters, args.explain)
    prepare_directory(config)
    options = Options(projects=tuple(args.projects), dry_run=args.dry_run, force_check=args.force_check)
    reporter = make_reporter(quiet=args.quiet, verbose=args.verbose)
    report = RunReport(started=time.time())

    async def run(state: State, storage: Storage) -> RunReport:
        nonlocal report
        async with Upstream(config) as upstream, storage.publishing():
            syncer = Syncer(config, state, storage, upstream, filters, reporter, options)
            report = syncer.report  # a run that stops part way still reports what it did
            return await syncer.run()

    def opener(db: Path) -> State:
        return State(db, dry_run=args.dry_run)

    existed = (config.state_dir / STATE_DB).exists()
    with open_state(config.state_dir, opener, existing=False) as state:
        try:
            # A missing, empty or foreign state would make the run delete and unpublish what it does not know.
            storage = open_storage(config, state)
            check_state(storage, storage_location(config), config.state_dir, state if existed else None)
            report = anyio.run(run, state, storage, backend="asyncio")
        except BaseException as exc:
            if not args.dry_run:
                _record_stopped(config, state, report, exc)
            raise
        else:
            if not args.dry_run:
                metrics.record(state, config.metrics_path, metrics.facts_of(report, state))
        finally:
            reporter.close()
    print(_summary(report, dry_run=args.dry_run), file=sys.stderr)
    return EXIT_OK if report.result == "ok" else EXIT_PARTIAL


def _record_stopped(config: Config, state: State, report: RunReport, exc: BaseException) -> None:
    """Metrics for a run that stopped: best effort, never hiding the error that stopped it."""
    reason = unwrap(exc) if isinstance(exc, BaseExceptionGroup) else exc
    message = str(reason) or type(reason).__name__
    with contextlib.suppress(MirrorError, OSError, sqlite3.Error):
        metrics.record(state, config.metrics_path, metrics.facts_of(report, state, error=message))


def _explain(config: Config, filters: FilterChain, project: str) -> int:
    if filters.dependency_roots() is not None:
        filters = with_stored_closure(filters, read_closure(config.state_dir / STATE_DB))

    async def fetch() -> ProjectPage:
        return await fetch_page(config, project)

    page = anyio.run(fetch, backend="asyncio")
    for line in explain_lines(filters, page):
        print(line)
    return EXIT_OK


def _summary(report: RunReport, *, dry_run: bool) -> str:
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
