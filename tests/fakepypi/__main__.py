"""Command line: ``python -m tests.fakepypi serve [options]``.

Builds (or loads) an index, prints ``READY <url>`` on stdout once the port is
bound and serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from .server import FakePyPI
from .synthetic import load_directory, populate_synthetic


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.fakepypi")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a fake index until killed")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--synthetic-projects", type=int, default=0, metavar="N")
    serve.add_argument("--files-per-project", type=int, default=3, metavar="N")
    serve.add_argument(
        "--payload-size", type=int, default=0, metavar="BYTES", help="extra pseudo-random bytes in each synthetic wheel"
    )
    serve.add_argument("--wheels-dir", type=Path, help="also serve every wheel/sdist here")
    serve.add_argument("--html-only", action="store_true")
    serve.add_argument("--file-url-style", choices=("pypi", "flat", "relative"), default="pypi")
    serve.add_argument("--no-hashes", action="store_true")
    return parser


def _serve(args: argparse.Namespace) -> int:
    up = FakePyPI(
        host=args.host,
        port=args.port,
        html_only=args.html_only,
        file_url_style=args.file_url_style,
        hashes=not args.no_hashes,
        record_requests=False,
    )
    started = time.perf_counter()
    files = populate_synthetic(up, args.synthetic_projects, args.files_per_project, payload_size=args.payload_size)
    if args.wheels_dir is not None:
        files += load_directory(up, args.wheels_dir)
    elapsed = time.perf_counter() - started
    print(f"built {files} files in {elapsed:.2f}s (serial {up.serial})", file=sys.stderr)
    # Block the signals before the server thread exists so that only the
    # main thread receives them, via sigwait below.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    with up:
        print(f"READY {up.url}", flush=True)
        signal.sigwait(stop_signals)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
