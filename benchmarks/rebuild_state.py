"""Benchmark ``mirror verify --rebuild-state`` on synthetic mirrors: wall time and peak RSS.

    .venv/bin/python benchmarks/rebuild_state.py [--sizes 50000,200000] [--dir /tmp/mirror-rebuild-bench]

Each size is a consistent mirror built on disk (tests/synthetic_mirror.py: tiny files, real
rendered pages); its state database is then deleted, as an operator might lose it, and
rebuilt from the tree in a child process (its own peak RSS from ``wait4``). Afterwards
``mirror verify`` must find nothing wrong. Tiny files: the time is pages and bookkeeping, not
hashing (which reads every byte: a disk's sequential read rate on a real mirror).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from verify import measure  # noqa: E402  (benchmarks/ is sys.path[0] when run as a script)

from tests.synthetic_mirror import build  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50000,200000")
    parser.add_argument("--dir", default="/tmp/mirror-rebuild-bench")
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        directory = Path(args.dir) / str(size)
        shutil.rmtree(directory, ignore_errors=True)
        started = time.perf_counter()
        projects = build(directory, size)
        built = time.perf_counter() - started
        config = directory / "mirror.toml"
        config.write_text(f'[mirror]\ndirectory = "{directory}"\n')
        for suffix in ("", "-wal", "-shm"):
            Path(f"{directory}/state/mirror.sqlite3{suffix}").unlink(missing_ok=True)
        code, wall, rss, line = measure(config, "--rebuild-state")
        check, _, _, verdict = measure(config)
        print(
            f"{size} files, {projects} projects (built in {built:.0f}s): rebuild exit {code}, {wall:.1f}s, "
            f"{rss:.0f} MB peak RSS; then verify exit {check}: {verdict}\n  {line}"
        )
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
