"""Peak memory of `mirror sync` against oversized answers (not part of the tests).

Each case runs `python -m mirror sync` as a child against ``tests.oversized.OversizedServer``
on 127.0.0.1 and reports the child's exit code, wall time and peak RSS (``wait4``: the
mirror process and its file-writer child). ``--python`` picks the interpreter (so another
checkout's venv measures the code before a change)::

    .venv/bin/python benchmarks/bounds.py
    .venv/bin/python benchmarks/bounds.py --python /path/to/other/.venv/bin/python --case root-bomb
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.measure import run_mirror  # noqa: E402

from tests.oversized import (  # noqa: E402
    JSON_TYPE,
    SDIST,
    Answers,
    OversizedServer,
    gzip_of_spaces,
    html_links_page,
    json_links_page,
    sdist_page,
    simple_root,
)


def root_bomb() -> Answers:
    """A 3 GiB root (as HTML) sent as a gzip body of a few MB."""
    return Answers(root=gzip_of_spaces(3 << 30), root_encoding="gzip")


def links(kind: str, count: int, *, hashed: bool = True) -> Callable[[], Answers]:
    def make() -> Answers:
        body = json_links_page("many", count, hashed=hashed) if kind == "json" else html_links_page("many", count)
        return Answers(
            root=simple_root(["good", "many"]),
            pages={"good": sdist_page("good"), "many": (JSON_TYPE if kind == "json" else "text/html", body)},
            files={"good-1.0.tar.gz": SDIST},
        )

    return make


# name -> (answers, extra sync arguments)
CASES: dict[str, tuple[Callable[[], Answers], list[str]]] = {
    "root-bomb": (root_bomb, []),
    "page-1m-links-html": (links("html", 1_000_000), []),
    # Without hashes, so that the page (70 MB) stays under max-page-mb and meets the file bound.
    "page-1m-links-json": (links("json", 1_000_000, hashed=False), []),
    # The largest page the default bound admits, planned but not downloaded.
    "page-100k-links-json-dry-run": (links("json", 100_000), ["--dry-run"]),
}


def serve(name: str) -> None:
    """The server side of a case, in its own process (see ``run_case``); stops when stdin closes."""
    with OversizedServer(CASES[name][0]()) as server:
        print(server.simple_url, flush=True)
        sys.stdin.read()


def run_case(python: str, name: str, workdir: Path) -> tuple[int, float, float, str]:
    # Linux keeps a process's peak RSS across fork and exec, so the mirror child must be forked
    # from a small process: the answers (a million links) are built in a server process of their own.
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None and server.stdin is not None
    try:
        url = server.stdout.readline().strip()
        config = workdir / f"{name}.toml"
        config.write_text(f'[mirror]\ndirectory = "{workdir / name}"\nupstream = "{url}"\nretries = 0\n')
        return run_mirror([python, "-m", "mirror", "--config", str(config), "sync", *CASES[name][1]], workdir)
    finally:
        server.stdin.close()
        server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="interpreter with mirror installed")
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="only these cases (repeatable)")
    parser.add_argument("--serve", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    print(f"{'case':32} {'exit':>4} {'wall s':>7} {'peak RSS MB':>11}  last line")
    for name in args.case or list(CASES):
        with tempfile.TemporaryDirectory(prefix="mirror-bounds-") as tmp:
            code, wall, rss, last = run_case(args.python, name, Path(tmp))
        print(f"{name:32} {code:>4} {wall:>7.1f} {rss:>11.0f}  {last[:120]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
