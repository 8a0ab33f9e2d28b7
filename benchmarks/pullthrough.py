"""Pull-through latency: mirror (nginx + ``mirror serve``) against proxpi 1.3, and static nginx.

All three sit in front of the same local upstream (``benchmarks/upstream.py``, the fake PyPI with
synthetic projects). 32 concurrent clients (one asyncio task each, aiohttp, keep-alive) ask for:

- cold pages: ``/simple/<name>/`` of projects neither cache holds yet (each name asked once);
- warm pages: the same pages again;
- cold files: a wheel of each of those projects, first time;
- warm files: the same wheels again.

Each cold phase uses fresh project names, so a cold request is really cold. The two proxies are
measured in ABBA order (mirror, proxpi, proxpi, mirror) and the medians of the two rounds are
given; static nginx (the tree the mirror built, nginx alone) is the reference for warm requests.

    python benchmarks/pullthrough.py [--projects 64] [--payload-size 65536] [--dir /dev/shm] [--json out.json]

Needs nginx (``tests/run`` installs it) and makes ``benchmarks/work/proxpivenv`` (proxpi 1.3 and
gunicorn from PyPI) on first use. Prints p50/p95 in milliseconds and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.servers import Nginx, free_port  # noqa: E402

WORK = REPO / "benchmarks" / "work"
PROXPI_VENV = WORK / "proxpivenv"
CLIENTS = 32
PIDS: dict[str, int] = {}
"""The server process of each proxy (its CPU time is read from /proc)."""
JSON = "application/vnd.pypi.simple.v1+json"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (gunicorn's workers), from /proc."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except (OSError, ValueError, IndexError):
        pass
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def fetch_all(urls: list[str], accept: str | None) -> tuple[list[float], list[bytes]]:
    """Each URL once, by CLIENTS concurrent clients; latency (ms) of each and the bodies."""
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in enumerate(urls):
        queue.put_nowait(item)
    latencies: list[float] = [0.0] * len(urls)
    bodies: list[bytes] = [b""] * len(urls)
    headers = {"Accept": accept} if accept else {}

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            index, url = queue.get_nowait()
            start = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url}: {response.status}")
            latencies[index] = (time.perf_counter() - start) * 1000
            bodies[index] = body

    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
    return latencies, bodies


def wheel_links(pages: list[bytes], page_urls: list[str]) -> list[str]:
    """The first wheel each page links, as an absolute URL."""
    links = []
    for body, url in zip(pages, page_urls, strict=True):
        files = json.loads(body)["files"]
        wheel = next(f for f in files if f["filename"].endswith(".whl"))
        links.append(urljoin(url, wheel["url"].split("#")[0]))
    return links


def cold(index: str, names: list[str], pid: int, stats: Callable[[], dict[str, Any]]) -> dict[str, list[float]]:
    """First requests for the pages of ``names``, then for a wheel of each, through ``index`` (ends with /).

    Also the server's CPU milliseconds per request ("cpu page", "cpu file"): on a loaded machine a
    single-threaded server gets less of a core than one with 32 threads, whatever each needs.
    """
    page_urls = [f"{index}{name}/" for name in names]
    stats()
    before = cpu_seconds(pid)
    cold_pages, bodies = asyncio.run(fetch_all(page_urls, JSON))
    middle = cpu_seconds(pid)
    pages_upstream = stats()
    cold_files, _ = asyncio.run(fetch_all(wheel_links(bodies, page_urls), None))
    after = cpu_seconds(pid)
    files_upstream = stats()
    per = 1000 / len(names)
    return {
        "cold page": cold_pages,
        "cold file": cold_files,
        "cpu page": [(middle - before) * per],
        "cpu file": [(after - middle) * per],
        "upstream requests page": [pages_upstream["total"] / len(names)],
        "upstream requests file": [files_upstream["total"] / len(names)],
        "upstream cpu page": [pages_upstream["cpu_seconds"] * per],
    }


def warm(index: str, names: list[str], repeat: int) -> dict[str, list[float]]:
    """The same pages and wheels again, each asked ``repeat`` times."""
    page_urls = [f"{index}{name}/" for name in names]
    _, bodies = asyncio.run(fetch_all(page_urls, JSON))
    files = wheel_links(bodies, page_urls)
    warm_pages, _ = asyncio.run(fetch_all(page_urls * repeat, JSON))
    warm_files, _ = asyncio.run(fetch_all(files * repeat, None))
    return {"warm page": warm_pages, "warm file": warm_files}


@contextmanager
def upstream(projects: int, payload: int) -> Iterator[tuple[str, Callable[[], dict[str, Any]]]]:
    """The upstream's simple URL, and a call that returns (and resets) its request counts and CPU."""
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "benchmarks" / "upstream.py"),
            "--synthetic-projects",
            str(projects),
            "--files-per-project",
            "2",
            "--payload-size",
            str(payload),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    line = process.stdout.readline()
    assert line.startswith("READY "), line
    stdin, stdout = process.stdin, process.stdout

    def stats() -> dict[str, Any]:
        stdin.write("stats\n")
        stdin.flush()
        answer: dict[str, Any] = json.loads(stdout.readline())
        return answer

    try:
        yield str(json.loads(line[6:])["url"]).rstrip("/") + "/simple/", stats
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def proxpi_venv() -> Path:
    python = PROXPI_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PROXPI_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "proxpi==1.3.*", "gunicorn"], check=True)
    return PROXPI_VENV


@contextmanager
def proxpi(simple: str, cache: Path) -> Iterator[str]:
    venv, port = proxpi_venv(), free_port()
    env = {
        **os.environ,
        "PROXPI_INDEX_URL": simple,
        "PROXPI_CACHE_DIR": str(cache),
        "PROXPI_INDEX_TTL": "600",
    }
    # gunicorn with threads, as proxpi's README runs it in production.
    command = [str(venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--threads", "32", "proxpi.server:app"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, process)
        PIDS["proxpi"] = process.pid
        yield f"http://127.0.0.1:{port}/index/"
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def mirror(simple: str, root: Path) -> Iterator[tuple[str, Path]]:
    """A mirror of proj-00000 only, pull-through on, served by nginx in front of ``mirror serve``."""
    root.mkdir(parents=True)
    config = root / "mirror.toml"
    config.write_text(
        f'[mirror]\ndirectory = "m"\nupstream = "{simple}"\nworkers = 32\n'
        '[filters]\nenabled = ["allowlist"]\n[filters.allowlist]\nprojects = ["proj-00000"]\n'
        "[serve]\npull-through = true\n"
    )
    env = {**os.environ, "MIRROR_CONFIG": str(config)}
    mirror_bin = [sys.executable, "-m", "mirror"]
    subprocess.run([*mirror_bin, "--quiet", "sync"], check=True, env=env, cwd=REPO)
    port = free_port()
    process = subprocess.Popen(
        [*mirror_bin, "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, process)
        PIDS["mirror"] = process.pid
        nginx_dir = root / "nginx"
        nginx_dir.mkdir()
        with Nginx(root / "m" / "web", nginx_dir, f"127.0.0.1:{port}") as nginx:
            yield nginx.url + "simple/", root / "m" / "web"
    finally:
        process.terminate()
        process.wait(timeout=30)


def summary(runs: list[dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    out = {}
    for kind in sorted({k for r in runs for k in r}):
        runs_of = [r for r in runs if kind in r]
        out[kind] = {
            "p50": statistics.median(percentile(r[kind], 0.5) for r in runs_of),
            "p95": statistics.median(percentile(r[kind], 0.95) for r in runs_of),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=64, help="cold projects per round and tool (default 64)")
    parser.add_argument("--payload-size", type=int, default=65536, help="bytes of payload per wheel")
    parser.add_argument("--repeat", type=int, default=4, help="times each warm URL is asked per round")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--dir",
        type=Path,
        default=WORK,
        help="where both caches and the mirror's tree live (default benchmarks/work; /dev/shm takes the disk out)",
    )
    args = parser.parse_args(argv)
    n = args.projects
    results: dict[str, list[dict[str, list[float]]]] = {"mirror": [], "proxpi": [], "nginx static": []}
    WORK.mkdir(parents=True, exist_ok=True)
    proxpi_venv()
    with (
        upstream(4 * n + 1, args.payload_size) as (simple, stats),
        tempfile.TemporaryDirectory(dir=args.dir.resolve()) as tmp,
    ):
        names = [f"proj-{i:05d}" for i in range(1, 4 * n + 1)]
        rounds = [("mirror", names[0:n]), ("proxpi", names[n : 2 * n]), ("proxpi", names[2 * n : 3 * n])]
        rounds.append(("mirror", names[3 * n :]))
        base = Path(tmp)
        (base / "static").mkdir()
        with mirror(simple, base / "mirror") as (mirror_index, web), proxpi(simple, base / "proxpi") as proxpi_index:
            indexes = {"mirror": mirror_index, "proxpi": proxpi_index}
            for tool, batch in rounds:
                results[tool].append(cold(indexes[tool], batch, PIDS[tool], stats))
            # Static nginx alone over the very tree the mirror filled: what "warm" can at best be.
            with Nginx(web, base / "static") as static:
                indexes["nginx static"] = static.url + "simple/"
                order = ["mirror", "nginx static", "proxpi", "proxpi", "nginx static", "mirror"]
                for tool in order:
                    # proxpi holds only what it was asked for; the mirror's tree holds both halves.
                    held = names[n : 3 * n] if tool == "proxpi" else names[0:n] + names[3 * n :]
                    results[tool].append(warm(indexes[tool], held, args.repeat))
    table = {tool: summary(runs) for tool, runs in results.items()}
    load = os.getloadavg()
    print(
        f"{CLIENTS} clients; cold: {n} new projects per round, ABBA (mirror, proxpi, proxpi, mirror); "
        f"warm: {2 * n} projects x {args.repeat}, ABCCBA; medians of 2 rounds"
    )
    print(f"{'':14}" + "".join(f"{k:>22}" for k in ("cold page", "warm page", "cold file", "warm file")))
    for tool, kinds in table.items():
        cells = []
        for kind in ("cold page", "warm page", "cold file", "warm file"):
            cell = kinds.get(kind)
            cells.append(f"{cell['p50']:8.2f} / {cell['p95']:8.2f} ms" if cell else f"{'-':>22}")
        print(f"{tool:14}" + "".join(f"{c:>22}" for c in cells))
    print(f"(p50 / p95) load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for tool in ("mirror", "proxpi"):
        cpu = table[tool]
        print(
            f"{tool}: server CPU per cold page {cpu['cpu page']['p50']:.1f} ms, "
            f"per cold file {cpu['cpu file']['p50']:.1f} ms; upstream requests per cold page "
            f"{cpu['upstream requests page']['p50']:.2f}, per cold file {cpu['upstream requests file']['p50']:.2f}, "
            f"upstream CPU per cold page {cpu['upstream cpu page']['p50']:.1f} ms"
        )
    ratios = {k: table["mirror"][k]["p50"] / table["proxpi"][k]["p50"] for k in ("cold page", "cold file")}
    print("mirror/proxpi p50: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    if args.json:
        args.json.write_text(json.dumps({"table": table, "load": load, "clients": CLIENTS, "projects": n}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
