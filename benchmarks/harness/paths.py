"""Where the harness keeps things; everything generated lives under ``benchmarks/work/``."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent
REPO = BENCHMARKS.parent
WORK = BENCHMARKS / "work"
BSVENV = WORK / "bsvenv"
WHEELS = WORK / "wheels"
RUNS = WORK / "runs"
LOGS = WORK / "logs"
UPSTREAM_SCRIPT = BENCHMARKS / "upstream.py"


def default_floor() -> Path | None:
    """``shared/floor.py``: at ``../shared`` from the project's root (a worktree may sit one level deeper)."""
    for base in (REPO.parent, REPO.parent.parent):
        candidate = base / "shared" / "floor.py"
        if candidate.is_file():
            return candidate
    return None
