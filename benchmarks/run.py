"""Benchmark ``mirror sync`` against ``bandersnatch mirror`` on the same local upstream.

    /work/venv/bin/python benchmarks/run.py [--workload synthetic|bytes|root|all] [--repeat N] [--json OUT]

See benchmarks/README.md for what is measured and how to read the output.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.measure import ChildResult, TreeCount, count_packages, run_child
from harness.paths import LOGS, RUNS, default_floor
from harness.prepare import BANDERSNATCH_VERSION, ensure_bandersnatch, ensure_bytecode, ensure_wheels
from harness.report import Ratios, Run, print_workload, summarize, to_json
from harness.tools import Tool, bandersnatch_tool, floor_tool, mirror_tool
from harness.upstream_proc import Expected, UpstreamProcess
from rich.console import Console


@dataclass(frozen=True)
class Settings:
    repeat: int
    timeout: float
    runs_dir: Path
    """Where the mirrors under test are written (each deleted after its round)."""


@dataclass(frozen=True)
class Workload:
    name: str
    upstream_args: list[str]
    target: float
    """The wall-time ratio mirror/bandersnatch to stay under (issue 14's targets)."""
    floor_target: float | None = None
    """The wall-time ratio mirror/floor to stay under, where the issue sets one."""


def _workloads(args: argparse.Namespace) -> list[Workload]:
    chosen = ("synthetic", "pages", "bytes") if args.workload == "all" else (args.workload,)
    workloads = []
    if "synthetic" in chosen:
        synthetic = ["--synthetic-projects", str(args.projects), "--files-per-project", str(args.files_per_project)]
        workloads.append(Workload("synthetic", synthetic, 0.35, 1.2))
    if "pages" in chosen:
        for count in (int(n) for n in args.pages_projects.split(",")):
            # Project pages only: every request is a page, every page is published (the per-page cost).
            workloads.append(Workload(f"pages-{count // 1000}k", ["--empty-projects", str(count)], 0.3))
    if "bytes" in chosen:
        workloads.append(Workload("bytes", ["--wheels-dir", str(ensure_wheels())], 1.0))
    return workloads


def _failure(result: ChildResult, tree: TreeCount | None, expected: Expected, log: Path) -> str | None:
    if result.timed_out:
        return f"timed out after {result.wall:.0f}s (log: {log})"
    if result.exit_code != 0:
        return f"exit code {result.exit_code} (log: {log})"
    if tree is not None and (tree.files, tree.metadata) != (expected.files, expected.metadata):
        return (
            f"incomplete mirror: {tree.files}/{expected.files} files, "
            f"{tree.metadata}/{expected.metadata} .metadata (log: {log})"
        )
    return None


def _timed(tool: Tool, config: Path, log: Path, timeout: float) -> ChildResult:
    os.sync()  # the previous run's dirty pages must not be written back during this one
    return run_child(tool.argv(config), log, timeout=timeout)


def _record(tool: Tool, rnd: int, phase: str, result: ChildResult, stats: dict[str, Any], **extra: Any) -> Run:
    other = max(0.0, result.machine_busy - result.cpu - stats["cpu_seconds"])
    return Run(
        tool=tool.label,
        round=rnd,
        phase=phase,
        exit_code=result.exit_code,
        wall=result.wall,
        cpu=result.cpu,
        max_rss_kib=result.max_rss_kib,
        requests=stats["total"],
        requests_by_kind=stats["by_kind"],
        requests_by_status=stats["by_status"],
        upstream_cpu=stats["cpu_seconds"],
        cpu_sys=result.cpu_sys,
        other_cpu=other,
        **extra,
    )


def measure_tool(tool: Tool, up: UpstreamProcess, workload: str, rnd: int, settings: Settings) -> list[Run]:
    """A first sync into a fresh empty directory, then (if it worked) a no-op rerun there."""
    assert up.expected is not None
    timeout = settings.timeout
    # Every run writes a fresh directory, and none is deleted before the last run (see _clear_runs).
    target = settings.runs_dir / workload / f"{tool.slug}-r{rnd}"
    target.mkdir(parents=True)
    config = tool.write_config(target, up.expected.url, timeout)
    log = LOGS / f"{workload}-{tool.slug}-r{rnd}"
    up.stats()  # reset the counters
    first = _timed(tool, config, log.with_suffix(".sync.log"), timeout)
    stats = up.stats()
    tree = count_packages(tool.packages(target))
    failure = _failure(first, tree, up.expected, log.with_suffix(".sync.log"))
    counts = {"files": tree.files, "metadata": tree.metadata}
    runs = [_record(tool, rnd, "sync", first, stats, failure=failure, **counts)]
    if failure is None and tool.has_noop:
        again = _timed(tool, config, log.with_suffix(".noop.log"), timeout)
        stats = up.stats()
        failure = _failure(again, None, up.expected, log.with_suffix(".noop.log"))
        runs.append(_record(tool, rnd, "noop", again, stats, failure=failure, **counts))
    return runs


def _clear_runs(console: Console, runs_dir: Path, *, last: bool = False) -> None:
    """Delete the mirrors written, only once every run is done.

    On ext4 without a journal (these VMs' disks) a deleted inode counts as "recently deleted" for
    up to 5 minutes once its inode-table block is dirtied again, and every new inode is allocated
    by scanning past those (``recently_deleted()`` in fs/ext4/ialloc.c): deleting one run's
    ~20,000 entries right before the next run made that run's mkdir/create cost 3-10x more
    kernel time. So no tree is deleted between runs, and runs of the harness should be at least
    5 minutes apart on such a disk (or use ``--runs-dir`` on tmpfs).
    """
    if not runs_dir.exists() or not any(runs_dir.iterdir()):
        return
    shutil.rmtree(runs_dir)
    if not last:
        console.print(
            f"[yellow]deleted the mirrors a previous run left in {runs_dir}: on ext4 without a journal "
            "the next few minutes of file creation there are slower (see benchmarks/README.md)[/yellow]"
        )


def _progress(console: Console, run: Run) -> None:
    state = "ok" if run.ok else f"FAILED: {run.failure}"
    console.print(
        f"  r{run.round} {run.tool:<18} {run.phase:<4} wall {run.wall:7.2f}s  "
        f"cpu {run.cpu:6.2f}s (sys {run.cpu_sys:5.2f})  rss {run.max_rss_kib / 1024:4.0f} MB  "
        f"requests {run.requests:6d}  upstream {run.upstream_cpu:5.2f}s  other {run.other_cpu:5.2f}s  {state}",
        highlight=False,
    )


def run_workload(console: Console, workload: Workload, tools: Sequence[Tool], settings: Settings) -> dict[str, Any]:
    """Start the upstream, run every tool ``repeat`` times (order rotated each round), summarize."""
    runs: list[Run] = []
    with UpstreamProcess(workload.upstream_args, LOGS / f"{workload.name}-upstream.log") as up:
        assert up.expected is not None
        expected = up.expected
        console.print(f"[bold]{workload.name}[/bold]: {_describe(expected)} at {expected.url}")
        for rnd in range(settings.repeat):
            shift = rnd % len(tools)
            for tool in [*tools[shift:], *tools[:shift]]:
                for run in measure_tool(tool, up, workload.name, rnd, settings):
                    _progress(console, run)
                    runs.append(run)
    summaries = [summarize(t.label, t.family, t.workers, runs) for t in tools]
    mine = [s for s in summaries if s.family == "mirror"]
    timed = [s for s in mine if s.wall is not None]
    best = min(timed, key=lambda s: s.wall or 0.0, default=None)

    def versus(reference: str) -> list[Ratios]:
        theirs = next((s for s in summaries if s.family == reference), None)
        if theirs is None:
            return []
        ratios = [Ratios.of(s, theirs) for s in mine]
        if best is not None and len(mine) > 1:
            ratios.append(Ratios.of(best, theirs, label=f"best: {best.tool}"))
        return ratios

    ratios = versus("bandersnatch")
    floor_ratios = versus("floor")
    return {
        "name": workload.name,
        "description": _describe(expected),
        "expected": expected.__dict__,
        "target": workload.target,
        "summaries": summaries,
        "ratios": ratios,
        "floor_ratios": floor_ratios,
        "floor_target": workload.floor_target,
        "runs": runs,
    }


def _describe(expected: Expected) -> str:
    return f"{expected.files} files + {expected.metadata} .metadata, {expected.bytes / 1e6:.1f} MB"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="mirror vs bandersnatch on a local fake PyPI")
    parser.add_argument("--workload", choices=("synthetic", "pages", "bytes", "root", "all"), default="all")
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="rounds per tool (default 3)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every raw number here")
    parser.add_argument(
        "--mirror-workers",
        default="10,16,32",
        metavar="LIST",
        help="mirror worker counts to measure; the first is the headline (default 10,16,32)",
    )
    parser.add_argument("--projects", type=int, default=2000, help="synthetic projects (default 2000)")
    parser.add_argument("--files-per-project", type=int, default=3, help="synthetic files each (default 3)")
    parser.add_argument(
        "--pages-projects",
        default="10000,50000",
        metavar="LIST",
        help="sizes of the pages-only workload: projects with a page and no files (default 10000,50000)",
    )
    parser.add_argument("--bandersnatch", type=Path, metavar="PATH", help="use this bandersnatch script")
    parser.add_argument(
        "--floor",
        type=Path,
        metavar="PATH",
        default=default_floor(),
        help="shared/floor.py, run with --layout beside the tools in every round (default: ../shared/floor.py)",
    )
    parser.add_argument("--no-floor", action="store_true", help="leave the floor out")
    parser.add_argument("--timeout", type=float, default=1800, help="kill a tool run after this many seconds")
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=RUNS,
        metavar="DIR",
        help="write the mirrors under test here (default benchmarks/work/runs; /dev/shm takes the disk out)",
    )
    return parser


def _machine(bandersnatch: Path, settings: Settings) -> dict[str, Any]:
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "bandersnatch": str(bandersnatch),
        "bandersnatch_version": BANDERSNATCH_VERSION,
        "runs_dir": str(settings.runs_dir),
    }


def run_root(args: argparse.Namespace) -> int:
    """The root index at PyPI scale (benchmarks/root.py): parse, stage and plan of 1,000,000 names,
    JSON and HTML, ``--repeat`` rounds each; mirror alone (bandersnatch has no such step to compare)."""
    import root

    results = root.report(1_000_000, args.repeat, ("json", "html"))
    if args.json is not None:
        args.json.write_text(json.dumps({"workloads": [{"name": "root", "results": results}]}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.workload == "root":
        return run_root(args)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines show up in a log file as they happen
    console = Console(width=None if sys.stdout.isatty() else 160)
    bandersnatch = args.bandersnatch or ensure_bandersnatch()
    ensure_bytecode()
    workers = [int(w) for w in args.mirror_workers.split(",")]
    tools = [mirror_tool(w) for w in workers] + [bandersnatch_tool(bandersnatch)]
    if not args.no_floor:
        if args.floor is None or not args.floor.is_file():
            console.print(f"[red]no floor.py at {args.floor} (give --floor PATH or --no-floor)[/red]")
            return 2
        tools.append(floor_tool(args.floor.resolve()))
    settings = Settings(args.repeat, args.timeout, args.runs_dir.resolve())
    _clear_runs(console, settings.runs_dir)
    try:
        results = [run_workload(console, workload, tools, settings) for workload in _workloads(args)]
    finally:
        _clear_runs(console, settings.runs_dir, last=True)
    for result in results:
        console.print()
        print_workload(console, result)
    if args.json is not None:
        payload = {"machine": _machine(bandersnatch, settings), "workloads": [to_json(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=2))
        console.print(f"raw numbers: {args.json}")
    failed = any(not run.ok for result in results for run in result["runs"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
