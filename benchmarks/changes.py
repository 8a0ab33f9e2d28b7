"""The change log read back in path order, as a diff file or an export reads it (issue 14, scale).

Records N changed paths in a fresh state database, then times :meth:`State.iter_changes` over
all of them. A first sync of PyPI changes millions of paths; the read must stay linear in N.

  python benchmarks/changes.py 80000 500000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from mirror._state import State


def measure(count: int, directory: Path) -> dict[str, float | int]:
    state = State(directory / f"changes-{count}.sqlite3")
    for i in range(count):
        state.record_change(f"packages/{i % 256:02x}/{i:08d}/demo-{i}.whl", False)
    state.commit()
    wall, cpu = time.perf_counter(), time.process_time()
    seen = sum(1 for _ in state.iter_changes(0))
    result = {
        "paths": count,
        "read": seen,
        "wall_s": round(time.perf_counter() - wall, 3),
        "cpu_s": round(time.process_time() - cpu, 3),
    }
    state.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("counts", nargs="+", type=int)
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        for count in args.counts:
            print(json.dumps(measure(count, Path(scratch))), flush=True)


if __name__ == "__main__":
    main()
