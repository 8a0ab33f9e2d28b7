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
