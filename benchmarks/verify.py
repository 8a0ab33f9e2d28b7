"""Benchmark ``mirror verify`` on synthetic mirrors of growing size: peak RSS and wall time.

    .venv/bin/python benchmarks/verify.py [--sizes 50000,100000,200000] [--dir /tmp/verify-bench] [--hashes]

Each size is a consistent mirror built directly on disk and in state (tests/synthetic_mirror.py:
tiny files, real rendered pages, one ``.metadata`` per project). ``mirror verify`` runs in a
child process; its own peak RSS comes from ``wait4``. Flat memory means peak RSS barely moves
while the file count quadruples; the issue's bar is < 256 MB at 200,000 files.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.measure import run_mirror  # noqa: E402

from tests.synthetic_mirror import build  # noqa: E402

LIMIT_MB = 256


def measure(config: Path, *args: str) -> tuple[int, float, float, str]:
    """(exit code, wall seconds, peak RSS in MB, last stderr line) of one ``mirror verify`` run."""
    return run_mirror([sys.executable, "-m", "mirror", "--quiet", "--config", str(config), "verify", *args], ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50000,100000,200000")
    parser.add_argument("--dir", default="/tmp/mirror-verify-bench")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic mirrors")
    args = parser.parse_args()
    base = Path(args.dir)
    rows: list[tuple[int, str, int, float, float]] = []
    for size in (int(s) for s in args.sizes.split(",")):
        where = base / str(size)
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        config = where / "mirror.toml"
        config.write_text('[mirror]\ndirectory = "m"\n')
        started = time.perf_counter()
        projects = build(where / "m", size)
        print(f"built {size} files in {projects} projects in {time.perf_counter() - started:.1f}s", flush=True)
        for mode in ((), ("--hashes",)):
            code, wall, rss, line = measure(config, *mode)
            label = " ".join(mode) or "(sizes)"
            print(f"  verify {label:9} exit {code}  {wall:6.1f}s  peak RSS {rss:6.1f} MB  | {line}", flush=True)
            rows.append((size, label, code, wall, rss))
        if not args.keep:
            shutil.rmtree(where, ignore_errors=True)
    print("\nfiles     mode       exit   wall s   peak RSS MB")
    for size, label, code, wall, rss in rows:
        print(f"{size:<9} {label:10} {code:<6} {wall:<8.1f} {rss:.1f}")
    worst = max(rss for *_, rss in rows)
    ok = worst < LIMIT_MB and all(code == 0 for _, _, code, _, _ in rows)
    print(f"\npeak RSS {worst:.1f} MB (limit {LIMIT_MB} MB): {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
