"""``mirror serve`` under load: bursts of connections opened at once, then requests per second.

    python benchmarks/serve.py [--source CHECKOUT] [--connections 200] [--bursts 5] [--requests 4000]

A synthetic mirror (``tests/synthetic_mirror.py``: 200 projects, 2,000 small files) is served by
``python -m mirror serve`` run from ``--source`` (default: this checkout; point it at another
checkout to compare before and after). Each burst opens ``--connections`` connections at the
same instant, each sending one request; a connection counts as answered when its 200 arrives
within ``--timeout`` seconds. Throughput: 50 keep-alive connections share ``--requests``
requests (project pages as uv asks for them, and files), three rounds; the median is printed.
The client is plain asyncio streams, so it costs little beside the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.synthetic_mirror import build  # noqa: E402

ACCEPT = "application/vnd.pypi.simple.v1+json"


def start(source: Path, config: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(source)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mirror", "--config", str(config), "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=source,
    )
    assert process.stderr is not None
    banner = process.stderr.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
    if not match:
        process.kill()
        raise SystemExit(f"mirror serve did not start: {banner}")
    stream = process.stderr
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()  # drain the access log
    return process, int(match.group(1))


def request(path: str, *, close: bool) -> bytes:
    connection = "close" if close else "keep-alive"
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: {ACCEPT}\r\nConnection: {connection}\r\n\r\n".encode()


async def one_shot(port: int, path: str, timeout: float) -> float | None:
    """Seconds until the whole 200 answer arrived, or None if it did not within ``timeout``."""
    began = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request(path, close=True))
            answer = await reader.read()
            writer.close()
    except (TimeoutError, OSError):
        return None
    return time.perf_counter() - began if answer.startswith(b"HTTP/1.1 200") else None


async def burst(port: int, paths: list[str], connections: int, timeout: float) -> list[float | None]:
    return await asyncio.gather(*(one_shot(port, random.choice(paths), timeout) for _ in range(connections)))


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
    await reader.readexactly(length)
    return status


async def client(port: int, paths: list[str], count: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ok = 0
    for _ in range(count):
        writer.write(request(random.choice(paths), close=False))
        ok += await read_response(reader) == 200
    writer.close()
    return ok


async def throughput(port: int, paths: list[str], total: int, concurrency: int = 50) -> float:
    began = time.perf_counter()
    done = await asyncio.gather(*(client(port, paths, total // concurrency) for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    assert sum(done) == total // concurrency * concurrency, done
    return sum(done) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args()
    random.seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "m"
        projects = build(directory, 2000)
        web = directory / "web"
        files = ["/" + p.relative_to(web).as_posix() for p in web.glob("packages/**/*") if p.is_file()]
        pages = [f"/simple/proj{p:06d}/" for p in range(projects)]
        config = Path(tmp) / "mirror.toml"
        config.write_text(f'[mirror]\ndirectory = "{directory}"\n')
        process, port = start(args.source.resolve(), config)
        try:
            print(f"source {args.source}: {projects} projects, {len(files)} files")
            for n in range(args.bursts):
                times = asyncio.run(burst(port, pages, args.connections, args.timeout))
                answered = sorted(t for t in times if t is not None)
                p50 = statistics.median(answered) if answered else float("nan")
                worst = answered[-1] if answered else float("nan")
                print(
                    f"burst {n + 1}: {len(answered)}/{args.connections} answered within {args.timeout:g} s"
                    f" (p50 {p50 * 1000:.0f} ms, slowest {worst * 1000:.0f} ms)"
                )
            for label, paths in (("pages", pages), ("files", files)):
                rates = [asyncio.run(throughput(port, paths, args.requests)) for _ in range(3)]
                each = ", ".join(f"{r:.0f}" for r in rates)
                print(f"{label}: {statistics.median(rates):.0f} requests/s (median of 3: {each})")
        finally:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
