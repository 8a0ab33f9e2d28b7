"""Discovery cost against a real index: an allowlisted sync of 1, 10 and 100 projects, cold and no-op.

Not part of the test run. It talks to the upstream of ``examples/mirror.toml`` (the real index)
unless ``--upstream`` says otherwise. Each case writes a fresh mirror, syncs it (``cold``), then
syncs it again with nothing changed upstream (``noop``); wall time, CPU time (user + system of the
``mirror`` child), peak RSS and the requests the run made (its summary line) are recorded, and the
median of ``--repeat`` rounds is printed.

To keep the bytes small (this measures discovery, not bandwidth) every project keeps its latest
release only, and only files up to 1 MB.

    .venv/bin/python benchmarks/discovery.py                          # this checkout
    .venv/bin/python benchmarks/discovery.py --source /tmp/main-copy  # another one (its mirror/ package)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Among the most downloaded projects of PyPI: all exist on any full index.
PROJECTS = [
    "requests",
    "boto3",
    "botocore",
    "urllib3",
    "setuptools",
    "certifi",
    "charset-normalizer",
    "idna",
    "typing-extensions",
    "python-dateutil",
    "packaging",
    "s3transfer",
    "six",
    "aiobotocore",
    "pyyaml",
    "numpy",
    "grpcio-status",
    "s3fs",
    "fsspec",
    "pip",
    "cryptography",
    "wheel",
    "google-api-core",
    "cffi",
    "pycparser",
    "attrs",
    "pandas",
    "protobuf",
    "importlib-metadata",
    "zipp",
    "rsa",
    "pyasn1",
    "jmespath",
    "click",
    "platformdirs",
    "pydantic",
    "markupsafe",
    "jinja2",
    "pytz",
    "colorama",
    "filelock",
    "pluggy",
    "tomli",
    "pyjwt",
    "wrapt",
    "googleapis-common-protos",
    "virtualenv",
    "cachetools",
    "pytest",
    "pydantic-core",
    "pyasn1-modules",
    "google-auth",
    "annotated-types",
    "sqlalchemy",
    "psutil",
    "aiohttp",
    "yarl",
    "multidict",
    "frozenlist",
    "aiosignal",
    "pyparsing",
    "exceptiongroup",
    "iniconfig",
    "tzdata",
    "soupsieve",
    "beautifulsoup4",
    "docutils",
    "requests-oauthlib",
    "oauthlib",
    "decorator",
    "greenlet",
    "werkzeug",
    "distlib",
    "isodate",
    "lxml",
    "pygments",
    "scipy",
    "tomlkit",
    "more-itertools",
    "pillow",
    "openpyxl",
    "et-xmlfile",
    "h11",
    "httpx",
    "httpcore",
    "anyio",
    "sniffio",
    "rich",
    "markdown-it-py",
    "mdurl",
    "tqdm",
    "regex",
    "grpcio",
    "async-timeout",
    "proto-plus",
    "chardet",
    "flask",
    "itsdangerous",
    "blinker",
    "sortedcontainers",
]
_REQUESTS = re.compile(r"(\d+) requests in")


@dataclass
class Run:
    case: str
    phase: str
    wall: float
    cpu: float
    rss_mb: float
    requests: int
    exit: int


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    upstream = args.upstream or tomllib.loads((ROOT / "examples" / "mirror.toml").read_text())["mirror"]["upstream"]
    source = Path(args.source).resolve() if args.source else ROOT
    runs: list[Run] = []
    for round_ in range(args.repeat):
        for size in args.sizes:
            runs += _case(source, upstream, size, args.workers)
            print(f"round {round_ + 1}: {size} projects done", file=sys.stderr)
    _print(runs)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in runs], indent=1))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="a checkout whose mirror/ package to run (default: this one)")
    parser.add_argument("--upstream", help="the index (default: examples/mirror.toml's upstream)")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 100])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--json", help="write every run here")
    return parser


def _case(source: Path, upstream: str, size: int, workers: int) -> list[Run]:
    work = Path(tempfile.mkdtemp(prefix="mirror-discovery-"))
    try:
        config = work / "mirror.toml"
        config.write_text(_config(upstream, PROJECTS[:size], workers))
        return [_sync(source, config, f"allowlist-{size}", phase) for phase in ("cold", "noop")]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _config(upstream: str, projects: list[str], workers: int) -> str:
    return (
        f'[mirror]\ndirectory = "m"\nupstream = "{upstream}"\nworkers = {workers}\n\n'
        '[filters]\nenabled = ["allowlist", "latest", "size"]\n\n'
        f"[filters.allowlist]\nprojects = {json.dumps(projects)}\n\n"
        "[filters.latest]\ncount = 1\n\n[filters.size]\nmax-file-mb = 1\n"
    )


def _sync(source: Path, config: Path, case: str, phase: str) -> Run:
    env = {**os.environ, "PYTHONPATH": str(source)}
    log = config.with_name(f"{phase}.log")
    started = time.perf_counter()
    with open(log, "w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "mirror", "--config", str(config), "sync"], stdout=out, stderr=out, env=env
        )
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    found = _REQUESTS.findall(log.read_text())
    return Run(
        case,
        phase,
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        int(found[-1]) if found else -1,
        os.waitstatus_to_exitcode(status),
    )


def _print(runs: list[Run]) -> None:
    print(f"{'case':<16}{'phase':<7}{'wall s':>8}{'cpu s':>8}{'rss MB':>8}{'requests':>10}  exits")
    keys = sorted({(r.case, r.phase) for r in runs}, key=lambda k: (int(k[0].rpartition("-")[2]), k[1]))
    for case, phase in keys:
        group = [r for r in runs if (r.case, r.phase) == (case, phase)]
        print(
            f"{case:<16}{phase:<7}{statistics.median(r.wall for r in group):>8.2f}"
            f"{statistics.median(r.cpu for r in group):>8.2f}{statistics.median(r.rss_mb for r in group):>8.0f}"
            f"{statistics.median(r.requests for r in group):>10.0f}  {sorted({r.exit for r in group})}"
        )


if __name__ == "__main__":
    sys.exit(main())
