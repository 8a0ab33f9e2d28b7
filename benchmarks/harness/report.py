"""Results: per-run records, per-tool medians, mirror/bandersnatch ratios, the printed tables."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Run:
    """One measured child run (a first sync into an empty directory, or the no-op rerun after it)."""

    tool: str
    round: int
    phase: str
    """``"sync"`` or ``"noop"``."""
    exit_code: int
    wall: float
    cpu: float
    max_rss_kib: int
    requests: int
    requests_by_kind: dict[str, int]
    requests_by_status: dict[str, int]
    upstream_cpu: float
    files: int
    metadata: int
    failure: str | None = None
    """Why the run does not count (None when it does)."""
    cpu_sys: float = 0.0
    """The kernel part of ``cpu``."""
    other_cpu: float = 0.0
    """CPU seconds the rest of the machine (not the tool, not the upstream) used during the run."""

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class ToolSummary:
    """Medians over a tool's successful rounds."""

    tool: str
    family: str
    workers: int
    rounds_ok: int
    rounds: int
    wall: float | None
    wall_min: float | None
    wall_max: float | None
    cpu: float | None
    cpu_sys: float | None
    rss_mb: float | None
    requests: float | None
    upstream_cpu: float | None
    other_cpu: float | None
    noop_wall: float | None
    noop_requests: list[int] = field(default_factory=list)
    wall_by_round: dict[int, float] = field(default_factory=dict)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(tool: str, family: str, workers: int, runs: Sequence[Run]) -> ToolSummary:
    mine = [r for r in runs if r.tool == tool]
    syncs = [r for r in mine if r.phase == "sync"]
    good = [r for r in syncs if r.ok]
    noops = [r for r in mine if r.phase == "noop" and r.ok]
    walls = [r.wall for r in good]
    return ToolSummary(
        tool=tool,
        family=family,
        workers=workers,
        rounds_ok=len(good),
        rounds=len(syncs),
        wall=_median(walls),
        wall_min=min(walls, default=None),
        wall_max=max(walls, default=None),
        cpu=_median([r.cpu for r in good]),
        cpu_sys=_median([r.cpu_sys for r in good]),
        rss_mb=_median([r.max_rss_kib / 1024 for r in good]),
        requests=_median([r.requests for r in good]),
        upstream_cpu=_median([r.upstream_cpu for r in good]),
        other_cpu=_median([r.other_cpu for r in good]),
        noop_wall=_median([r.wall for r in noops]),
        noop_requests=[r.requests for r in noops],
        wall_by_round={r.round: r.wall for r in good},
    )


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


@dataclass(frozen=True)
class Ratios:
    """``mirror / bandersnatch`` (or ``mirror / floor``) for one mirror variant."""

    tool: str
    wall: float | None
    cpu: float | None
    rss: float | None
    requests: float | None
    wall_paired: float | None
    """Median over rounds of this round's mirror wall / this round's bandersnatch wall: the two ran
    minutes apart at most, so slow drifts of a noisy machine cancel out."""

    @classmethod
    def of(cls, mine: ToolSummary, theirs: ToolSummary, label: str | None = None) -> Ratios:
        common = sorted(mine.wall_by_round.keys() & theirs.wall_by_round.keys())
        paired = [ratio(mine.wall_by_round[r], theirs.wall_by_round[r]) for r in common]
        return cls(
            label or mine.tool,
            ratio(mine.wall, theirs.wall),
            ratio(mine.cpu, theirs.cpu),
            ratio(mine.rss_mb, theirs.rss_mb),
            ratio(mine.requests, theirs.requests),
            _median([p for p in paired if p is not None]),
        )


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}x"


def tools_table(title: str, summaries: Sequence[ToolSummary]) -> Table:
    table = Table(title=title, title_justify="left")
    names = (
        "wall",
        "wall min-max",
        "CPU (sys)",
        "peak RSS",
        "requests",
        "upstream CPU",
        "other CPU",
        "no-op wall",
        "no-op requests",
    )
    table.add_column("tool (medians)")
    table.add_column("ok rounds", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for s in summaries:
        spread = "-" if s.wall_min is None else f"{s.wall_min:.2f}-{s.wall_max:.2f} s"
        table.add_row(
            s.tool,
            f"{s.rounds_ok}/{s.rounds}",
            _num(s.wall, ".2f") + " s",
            spread,
            f"{_num(s.cpu, '.2f')} s ({_num(s.cpu_sys, '.2f')})",
            _num(s.rss_mb, ".0f") + " MB",
            _num(s.requests, ".0f"),
            _num(s.upstream_cpu, ".2f") + " s",
            _num(s.other_cpu, ".2f") + " s",
            _num(s.noop_wall, ".2f") + " s",
            ",".join(str(n) for n in s.noop_requests) or "-",
        )
    return table


def ratios_table(
    title: str, ratios: Sequence[Ratios], target_wall: float | None, versus: str = "bandersnatch"
) -> Table:
    table = Table(title=title, title_justify="left")
    goal = "wall target" if target_wall is None else f"wall target <= {target_wall:g}x"
    names = ("wall", "wall (paired)", "CPU", "peak RSS", "requests", goal)
    table.add_column("mirror variant")
    for name in names:
        table.add_column(name, justify="right")
    for r in ratios:
        verdict = "-" if r.wall is None or target_wall is None else ("met" if r.wall <= target_wall else "MISSED")
        cells = (_x(r.wall), _x(r.wall_paired), _x(r.cpu), _x(r.rss), _x(r.requests), verdict)
        table.add_row(f"{r.tool} / {versus}", *cells)
    return table


def failures_lines(runs: Sequence[Run]) -> list[str]:
    return [f"FAILED {r.tool} round {r.round} {r.phase}: {r.failure}" for r in runs if not r.ok]


def print_workload(console: Console, result: dict[str, Any]) -> None:
    """The tables of one workload (``result`` as built by ``run.py``)."""
    summaries: list[ToolSummary] = result["summaries"]
    ratios: list[Ratios] = result["ratios"]
    head = f"{result['name']}: {result['description']}"
    console.print(tools_table(head, summaries))
    console.print(ratios_table(f"{result['name']}: ratios mirror / bandersnatch (medians)", ratios, result["target"]))
    floor_ratios: list[Ratios] = result.get("floor_ratios", [])
    if floor_ratios:
        title = f"{result['name']}: ratios mirror / floor (floor.py --layout, same rounds; medians)"
        console.print(ratios_table(title, floor_ratios, result["floor_target"], "floor"))
    for line in failures_lines(result["runs"]):
        console.print(f"[red]{line}[/red]")
    for s in summaries:
        if s.family == "mirror" and s.noop_requests and set(s.noop_requests) != {1}:
            console.print(f"[red]{s.tool}: a no-op rerun made {s.noop_requests} requests (target: 1)[/red]")


def to_json(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with the dataclasses turned into plain dicts."""
    return {
        key: [asdict(v) for v in value] if key in ("summaries", "ratios", "floor_ratios", "runs") else value
        for key, value in result.items()
    }
