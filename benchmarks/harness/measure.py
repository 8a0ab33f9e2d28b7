"""Run one child process and measure it: wall time, CPU time and peak RSS of that child only."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ChildResult:
    """What ``os.wait4`` and a clock said about one child run."""

    exit_code: int
    wall: float
    """Seconds, ``time.perf_counter`` around spawn + wait."""
    cpu: float
    """User + system seconds of the child (from its own rusage)."""
    cpu_sys: float
    """The system (kernel) part of ``cpu``."""
    max_rss_kib: int
    machine_busy: float
    """CPU seconds the whole machine spent busy meanwhile (all processes, from /proc/stat)."""
    timed_out: bool = False


def run_child(argv: Sequence[str], log: Path, *, env: dict[str, str] | None = None, timeout: float) -> ChildResult:
    """Run ``argv`` with stdout+stderr to ``log`` (not a TTY) and reap it with ``os.wait4``.

    A watchdog kills the child after ``timeout`` seconds; the result then says ``timed_out``.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        busy_before = machine_busy()
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
        expired = threading.Event()
        watchdog = threading.Timer(timeout, _kill, args=(proc.pid, expired))
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - started
        busy = machine_busy() - busy_before
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    return ChildResult(
        exit_code=proc.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        cpu_sys=usage.ru_stime,
        max_rss_kib=usage.ru_maxrss,  # KiB on Linux
        machine_busy=busy,
        timed_out=expired.is_set(),
    )


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot (0.0 where /proc/stat is missing)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _kill(pid: int, expired: threading.Event) -> None:
    expired.set()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class TreeCount:
    """Files under a mirror's ``web/packages``."""

    files: int
    """Distribution files (everything but ``*.metadata``)."""
    metadata: int
    bytes: int
    """Bytes of the distribution files."""


def count_packages(packages: Path) -> TreeCount:
    """Count what a tool stored under ``web/packages`` (temporary files would count as files)."""
    files = metadata = size = 0
    for root, _dirs, names in os.walk(packages):
        for name in names:
            if name.endswith(".metadata"):
                metadata += 1
            else:
                files += 1
                size += os.stat(os.path.join(root, name)).st_size
    return TreeCount(files, metadata, size)


def run_mirror(argv: Sequence[str], cwd: Path) -> tuple[int, float, float, str]:
    """(exit code, wall seconds, peak RSS in MB, last stderr line) of one ``mirror`` child run.

    ``wait4`` gives that child's own peak (its reaped writer child included); the caller's process
    must be small, since Linux keeps a peak RSS across fork and exec.
    """
    started = time.perf_counter()
    child = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    last = (err.strip().splitlines() or [""])[-1]
    return child.returncode, time.perf_counter() - started, usage.ru_maxrss / 1024, last
