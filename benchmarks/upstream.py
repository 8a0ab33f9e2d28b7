"""The benchmark upstream: ``tests.fakepypi.FakePyPI`` served in-process, with a request counter.

Run by ``run.py`` as a child process (cwd anywhere; the repository root is put on ``sys.path``)::

    python benchmarks/upstream.py [--synthetic-projects N --files-per-project K] [--wheels-dir DIR]

Once the port is bound it prints one line on stdout, ``READY {json}``, where the JSON object
holds ``url``, ``files`` (distribution files), ``metadata`` (PEP 658 ``.metadata`` files the
pages advertise) and ``bytes``.  It then reads commands from stdin, one per line, and answers each
with one JSON line on stdout:

``stats``
    the requests served since the previous ``stats`` (total, by kind, by status) and the CPU
    seconds this upstream spent meanwhile; then resets the counters.

End of input stops the server.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from packaging.utils import parse_sdist_filename, parse_wheel_filename  # noqa: E402

from tests.fakepypi import BuiltFile, FakePyPI, RequestRecord, build_wheel  # noqa: E402
from tests.fakepypi.builder import metadata_field  # noqa: E402


@dataclass(frozen=True)
class Upload:
    """One file to publish on the fake index."""

    name: str
    version: str
    built: BuiltFile


def synthetic_uploads(projects: int, files_per_project: int, payload_size: int) -> Iterator[Upload]:
    """The same index as ``python -m tests.fakepypi serve --synthetic-projects``: ``proj-NNNNN`` 1.0.k."""
    for i in range(projects):
        name = f"proj-{i:05d}"
        for k in range(files_per_project):
            version = f"1.0.{k}"
            yield Upload(name, version, build_wheel(name, version, payload_size=payload_size))


def directory_uploads(directory: Path) -> Iterator[Upload]:
    """Every ``*.whl`` / ``*.tar.gz`` in ``directory``, sorted by filename (like ``--wheels-dir``)."""
    for path in sorted(directory.iterdir()):
        if not path.name.endswith((".whl", ".tar.gz")):
            continue
        built = BuiltFile.from_path(path)
        if built.is_wheel:
            name, version, _, _ = parse_wheel_filename(built.filename)
        else:
            name, version = parse_sdist_filename(built.filename)
        display = metadata_field(built.metadata, "Name") or str(name)
        yield Upload(display, str(version), built)


def publish(up: FakePyPI, uploads: Iterable[Upload]) -> dict[str, int]:
    """Add each upload as its own mutation; returns the expected file counts."""
    counts = {"files": 0, "metadata": 0, "bytes": 0}
    for upload in uploads:
        up.add_file(upload.name, upload.version, upload.built)
        counts["files"] += 1
        counts["metadata"] += upload.built.metadata is not None
        counts["bytes"] += upload.built.size
    return counts


def request_kind(path: str) -> str:
    """Coarse class of a request path, for the per-kind counts."""
    if path in ("/simple", "/simple/"):
        return "root"
    if path.startswith("/simple/"):
        return "page"
    if path.startswith("/pypi/"):
        return "legacy-json"
    if path.startswith(("/packages/", "/files/")):
        return "metadata" if path.endswith(".metadata") else "file"
    return "other"


def summarize(records: list[RequestRecord], cpu_seconds: float) -> dict[str, object]:
    """The ``stats`` answer for a batch of request records."""
    return {
        "total": len(records),
        "by_kind": dict(Counter(request_kind(r.path) for r in records)),
        "by_status": {str(k): v for k, v in Counter(r.status for r in records).items()},
        "cpu_seconds": round(cpu_seconds, 3),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve(up: FakePyPI, counts: dict[str, int]) -> None:
    """Print READY, then answer ``stats`` commands until stdin closes."""
    with up:
        print("READY " + json.dumps({"url": up.url, **counts}), flush=True)
        up.clear_requests()
        cpu_mark = _cpu()
        for line in sys.stdin:
            command = line.strip()
            if command != "stats":
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
                continue
            records, cpu_now = up.requests, _cpu()
            up.clear_requests()
            print(json.dumps(summarize(records, cpu_now - cpu_mark)), flush=True)
            cpu_mark = cpu_now


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic-projects", type=int, default=0, metavar="N")
    parser.add_argument("--files-per-project", type=int, default=3, metavar="K")
    parser.add_argument("--payload-size", type=int, default=0, metavar="BYTES")
    parser.add_argument("--wheels-dir", type=Path)
    parser.add_argument(
        "--empty-projects", type=int, default=0, metavar="N", help="N more projects with one release and no files"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    up = FakePyPI(record_requests=True)
    counts = publish(up, synthetic_uploads(args.synthetic_projects, args.files_per_project, args.payload_size))
    for i in range(args.empty_projects):
        # A page without files: the pages-only workload measures the per-page cost alone.
        up.add_release(f"empty-{i:06d}", "1.0", files=[])
    if args.wheels_dir is not None:
        more = publish(up, directory_uploads(args.wheels_dir))
        counts = {key: counts[key] + more[key] for key in counts}
    print(f"built {counts['files']} files in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    serve(up, counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
