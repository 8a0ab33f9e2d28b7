"""Torture: a faulty upstream, an upstream that vanishes, a full disk, a read-only mirror, a second run.

Every case ends with the documented exit code and one readable last line, and what clients see
is always a consistent tree: the last good one, or the new one.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirror.errors import EXIT_ENVIRONMENT, EXIT_LOCKED, EXIT_OK, EXIT_PARTIAL
from tests.conftest import Mirror, check_tree, snapshot
from tests.fakepypi import FakePyPI
from tests.integration.test_crash import clean_tree


def populate(up: FakePyPI, projects: int, payload: int = 4000) -> None:
    for i in range(projects):
        up.add_release(f"pkg{i:02d}", "1.0", payload_size=payload)
        up.add_release(f"pkg{i:02d}", "2.0", payload_size=payload + 100)


def last_run(mirror: Mirror) -> dict[str, object]:
    db = mirror.root / "m" / "state" / "mirror.sqlite3"
    with sqlite3.connect(db) as conn:
        (value,) = conn.execute("SELECT value FROM meta WHERE key = 'last_run'").fetchone()
    result: dict[str, object] = json.loads(value)
    return result


def sync_until_ok(mirror: Mirror, runs: int) -> list[int]:
    """Sync until a run exits 0 (at most ``runs``); after each, the tree is consistent and the exit code honest."""
    codes: list[int] = []
    while len(codes) < runs:
        code = mirror.run("sync")
        codes.append(code)
        check_tree(mirror.web)  # corrupt or partial bytes are never visible
        summary = last_run(mirror)
        left = int(str(summary["failed"])) + int(str(summary["deferred"]))
        assert (code == EXIT_OK) == (left == 0), (code, summary)
        assert code in (EXIT_OK, EXIT_PARTIAL)
        if code == EXIT_OK:
            break
    return codes


def test_every_counted_fault_then_stale_pages_cost_exactly_one_extra_run(tmp_path: Path) -> None:
    with FakePyPI() as up:
        populate(up, 8)
        reference = clean_tree(up, tmp_path / "reference")
        mirror = Mirror(tmp_path / "m0", tmp_path / "m0" / "mirror.toml")
        mirror.root.mkdir()
        mirror.write_config(up.simple_url, **{"stale-retries": 1})
        faults = up.faults
        faults.fail("/simple/", status=503, count=1)
        faults.fail("/simple/pkg01/", status=429, retry_after=1, count=1)
        faults.fail("*pkg02-1.0.tar.gz", status=502, count=2)
        faults.reset("*pkg03-2.0-py3-none-any.whl", count=1)
        faults.truncate("*pkg04-1.0-py3-none-any.whl", count=1)
        faults.corrupt("*pkg05-2.0.tar.gz", count=1)
        faults.oversize("*pkg06-1.0.tar.gz", count=1)
        faults.slow("*pkg07*", delay=0.3, count=4)
        faults.stale("pkg00", count=3)  # beyond stale-retries: deferred to the next run
        assert sync_until_ok(mirror, runs=3) == [EXIT_PARTIAL, EXIT_OK]
        assert faults.pending() == 0
        assert snapshot(mirror.web) == reference
        assert mirror.run("verify", "--hashes") == EXIT_OK


@pytest.mark.parametrize("seed", [1, 2])
def test_random_faults_converge_to_the_clean_tree(tmp_path: Path, seed: int) -> None:
    with FakePyPI() as up:
        populate(up, 10)
        reference = clean_tree(up, tmp_path / "reference")
        mirror = Mirror(tmp_path / "m0", tmp_path / "m0" / "mirror.toml")
        mirror.root.mkdir()
        mirror.write_config(up.simple_url, retries=3)
        up.faults.rates(error_5xx=0.1, reset=0.1, corrupt=0.1, truncate=0.1, slow=0.2, slow_delay=0.05, seed=seed)
        codes = sync_until_ok(mirror, runs=6)
        assert codes[-1] == EXIT_OK, codes
        assert snapshot(mirror.web) == reference
        assert mirror.run("verify", "--hashes") == EXIT_OK


def test_upstream_that_disappears_mid_run(tmp_path: Path) -> None:
    up = FakePyPI().start()
    try:
        populate(up, 40, payload=2000)
        mirror = Mirror(tmp_path, tmp_path / "mirror.toml")
        mirror.write_config(up.simple_url, retries=1)
        up.faults.rates(slow=1.0, slow_delay=0.05)
        child = mirror.start_process("--quiet", "sync", stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not list((mirror.web / "simple").glob("pkg0*/index.html")) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        up.stop()
    _, err = child.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert child.returncode == EXIT_ENVIRONMENT, err
    assert lines[-1].startswith("mirror: error: the upstream stopped answering"), lines[-1]
    assert "Traceback" not in err
    check_tree(mirror.web)


def test_verify_during_a_sync_is_refused(upstream: FakePyPI, mirror: Mirror) -> None:
    populate(upstream, 2)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    upstream.add_release("pkg00", "3.0")
    upstream.faults.slow("/simple/", delay=2.0)
    child = mirror.start_process("--quiet", "sync", stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.8)
        second = mirror.run_process("verify", "--repair")
        assert second.returncode == EXIT_LOCKED
        assert second.stderr.strip().splitlines()[-1].startswith("mirror: error: another mirror run holds")
    finally:
        assert child.wait(timeout=60) == EXIT_OK
    check_tree(mirror.web)


@contextlib.contextmanager
def mounted(*args: str) -> Iterator[None]:
    """Run ``mount args``; skip the test (only this real-mount variant) where mounting is not permitted."""
    target = args[-1]
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip()}); the simulated variant runs in test_cli_errors")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", target], check=False)


def test_disk_full_on_a_real_small_filesystem(upstream: FakePyPI, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    with mounted("-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)):
        mirror = Mirror(disk, disk / "mirror.toml")
        upstream.add_release("demo", "1.0")
        mirror.write_config(upstream.simple_url)
        assert mirror.run("sync") == EXIT_OK
        before = snapshot(mirror.web)
        upstream.add_release("demo", "2.0", payload_size=4 << 20, wheel_tags=("py3-none-any",), sdist=False)
        result = mirror.run_process("sync")
        assert result.returncode == EXIT_ENVIRONMENT, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("mirror: error: ") and "disk full" in last, last
        assert "Traceback" not in result.stderr
        after = snapshot(mirror.web)
        assert {k: v for k, v in after.items() if k.startswith("simple/")} == {
            k: v for k, v in before.items() if k.startswith("simple/")
        }
        check_tree(mirror.web)
        # Room again: the next run completes, and leaves nothing behind.
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        assert mirror.run("sync") == EXIT_OK
        check_tree(mirror.web)
        assert mirror.run("verify", "--hashes") == EXIT_OK


def test_read_only_mirror(upstream: FakePyPI, tmp_path: Path) -> None:
    mirror = Mirror(tmp_path, tmp_path / "mirror.toml")
    upstream.add_release("demo", "1.0")
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    before = snapshot(mirror.web)
    upstream.add_release("demo", "2.0")
    directory = str(mirror.root / "m")
    with mounted("--bind", "-o", "ro", directory, directory):
        if subprocess.run(["touch", f"{directory}/probe"], capture_output=True).returncode == 0:
            pytest.skip("the bind mount did not become read-only here")
        for command in (("sync",), ("verify", "--repair", "--delete-orphans")):
            result = mirror.run_process(*command)
            assert result.returncode == EXIT_ENVIRONMENT, result.stderr
            last = result.stderr.strip().splitlines()[-1]
            assert last.startswith("mirror: error: ") and "read-only file system" in last.lower(), last
            assert "Traceback" not in result.stderr
        assert snapshot(mirror.web) == before
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)


def test_sigterm_leaves_a_consistent_tree(tmp_path: Path) -> None:
    with FakePyPI() as up:
        populate(up, 12)
        mirror = Mirror(tmp_path, tmp_path / "mirror.toml")
        mirror.write_config(up.simple_url)
        up.faults.rates(slow=1.0, slow_delay=0.05)
        child = mirror.start_process("--quiet", "sync", stderr=subprocess.PIPE)
        time.sleep(0.6)
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=30)
        check_tree(mirror.web, allow_temps=True)
        up.faults.clear()
        assert mirror.run("sync") == EXIT_OK
        check_tree(mirror.web)
