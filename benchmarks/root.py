"""CPU and peak RSS of the root index's parse, stage and plan at PyPI scale (not part of the tests).

Generates a root index of N names (PEP 691 JSON with per-project serials, or PEP 503 HTML) and,
in a fresh child process per format, does what a first sync does with it: feed the body in
1 MiB chunks to the incremental parser, stage the entries into a new state database
(``State.replace_upstream``), and plan against the (empty) local side into the work table
(``State.plan_work``). Reports the child's CPU (user+sys) and peak RSS::

    .venv/bin/python benchmarks/root.py                  # 1,000,000 names, json and html, 3 rounds
    .venv/bin/python benchmarks/root.py --names 200000 --rounds 5
    .venv/bin/python benchmarks/root.py --display-names  # names as PyPI's root spells them
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

CHUNK = 1 << 20


def write_root(kind: str, names: int, path: Path, *, display: bool = False) -> None:
    """Written line by line: the measuring process must stay small (Linux keeps a peak RSS across fork and exec).

    ``display``: names as projects spell them (PyPI's root lists ``Django``, ``zope.interface``), which
    the parser must normalize, instead of names already normalized; in the order of their normalized
    forms either way.
    """
    prefixes = ("Project-", "project_", "PROJECT.") if display else ("project-",)
    with path.open("w") as out:
        if kind == "json":
            out.write(f'{{"meta": {{"api-version": "1.1", "_last-serial": {1000 + names}}}, "projects": [\n')
            for i in range(names):
                name = f"{prefixes[i % len(prefixes)]}{i:07d}"
                out.write(f'{"," if i else ""}{{"name": "{name}", "_last-serial": {1000 + i}}}\n')
            out.write("]}\n")
            return
        out.write("<!DOCTYPE html><html><body>\n")
        for i in range(names):
            name = f"{prefixes[i % len(prefixes)]}{i:07d}"
            out.write(f'<a href="/simple/{name.lower()}/">{name}</a>\n')
        out.write("</body></html>\n")


def child(kind: str, body_path: Path, state_dir: Path) -> None:
    """Parse, stage, plan; print the phases' CPU as JSON."""
    from mirror import _gc
    from mirror._state import STATE_DB, State
    from mirror.core import parse

    _gc.settle()  # as the command line does before a command runs
    cpu = time.process_time
    start = cpu()
    parser: parse.IndexJsonParser | parse.IndexHtmlParser = (
        parse.IndexJsonParser() if kind == "json" else parse.IndexHtmlParser()
    )
    state = State(state_dir / STATE_DB)
    parsing = 0.0

    def batches() -> Iterator[parse.IndexBatch]:
        nonlocal parsing
        with body_path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                before = cpu()
                batch = parser.feed_batch(chunk)
                parsing += cpu() - before
                yield batch

    count = state.replace_upstream(batches())
    parser.close()
    staged = cpu()
    state.plan_work()  # what Syncer._plan_index does without project filters or names
    planned = cpu()
    state.close()
    phases = {"parse": parsing, "stage": staged - start - parsing, "plan": planned - staged}
    print(json.dumps({"count": count, **phases}))


def measure(kind: str, body_path: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="mirror-root-") as tmp:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", kind, str(body_path), tmp], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, out
        phases = json.loads(out)
        return {
            "wall": time.perf_counter() - started,
            "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mb": usage.ru_maxrss / 1024,
            **phases,
        }


def report(names: int, rounds: int, kinds: Sequence[str], *, display: bool = False) -> list[dict[str, float | str]]:
    """Measure each format ``rounds`` times; print the medians and return them (``run.py --workload root``)."""
    header = f"{'format':6} {'names':>9} {'cpu s':>6} {'parse':>6} {'stage':>6} {'plan':>6} {'wall s':>7} {'RSS MB':>7}"
    print(f"{header}  (medians of {rounds}; load average {os.getloadavg()[0]:.1f})")
    results: list[dict[str, float | str]] = []
    with tempfile.TemporaryDirectory(prefix="mirror-root-body-") as tmp:
        for kind in kinds:
            body = Path(tmp) / f"root.{kind}"
            write_root(kind, names, body, display=display)
            runs = [measure(kind, body) for _ in range(rounds)]
            med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            print(
                f"{kind:6} {int(med['count']):>9} {med['cpu']:>6.2f} {med['parse']:>6.2f} {med['stage']:>6.2f} "
                f"{med['plan']:>6.2f} {med['wall']:>7.2f} {med['rss_mb']:>7.0f}"
            )
            results.append({"format": kind, **med})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--format", choices=["json", "html", "both"], default="both")
    parser.add_argument("--display-names", action="store_true", help="names to normalize (Django, zope.interface)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return 0
    kinds = ["json", "html"] if args.format == "both" else [args.format]
    report(args.names, args.rounds, kinds, display=args.display_names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
