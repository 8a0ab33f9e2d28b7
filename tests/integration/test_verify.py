"""``mirror verify``: finds what is wrong, repairs it through the normal sync path, resumes after a kill."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirror.errors import EXIT_CONFIG, EXIT_ENVIRONMENT, EXIT_OK, EXIT_PARTIAL
from tests.conftest import ROOT, Mirror, check_tree, snapshot
from tests.fakepypi import FakePyPI
from tests.synthetic_mirror import build


def seed(up: FakePyPI) -> None:
    for name in ("alpha", "beta", "gamma", "delta"):
        up.add_release(name, "1.0")
        up.add_release(name, "1.1", payload_size=2000)


def damage(web: Path) -> None:
    """One of each kind of trouble an operator may wake up to."""
    wheels = sorted((web / "packages").rglob("*.whl"))
    by_project = {w.name.split("-")[0]: w for w in wheels}
    by_project["alpha"].unlink()  # a page links a 404
    target = by_project["beta"]
    target.write_bytes(bytes(len(target.read_bytes())))  # same size, wrong bytes
    (web / "packages" / "stray.tar.gz").write_bytes(b"nobody links me")
    (target.parent / f".{target.name}.0badf00d.mirror-tmp").write_bytes(b"half a download")
    (web / "simple" / "gamma" / "index.v1_json").write_text('{"meta": ')  # a torn page
    (web / "simple" / "ghost").mkdir()
    (web / "simple" / "ghost" / "index.html").write_text("<html></html>")
    metadata = next(iter(sorted((web / "packages").rglob("delta-1.1*.metadata"))))
    metadata.unlink()  # an advertised .metadata gone


def output(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_verify_finds_reports_and_repairs_every_kind_of_damage(
    upstream: FakePyPI, mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    clean = snapshot(mirror.web)
    assert mirror.run("verify", "--hashes") == EXIT_OK
    held = sum(path.startswith("packages/") for path in clean)
    assert output(capsys)[-1].startswith(f"verify ok: 4 projects, {held} files")

    damage(mirror.web)
    damaged = snapshot(mirror.web)
    assert mirror.run("verify", "--hashes", "--dry-run", "--repair", "--delete-orphans") == EXIT_PARTIAL
    lines = output(capsys)
    assert snapshot(mirror.web) == damaged, "a dry run changes nothing"
    text = "\n".join(lines)
    for expected in (
        "missing file: packages/",
        "wrong sha256: packages/",
        "file not in state: packages/stray.tar.gz",
        "temporary file left behind: packages/",
        "page unusable: simple/gamma",
        "page of an unpublished project: simple/ghost",
    ):
        assert expected in text, expected
    assert lines[-1].startswith("verify found problems:")
    assert "run `mirror verify --repair` to fix" not in lines[-1]

    assert mirror.run("verify", "--hashes") == EXIT_PARTIAL  # without --repair: reported, exit 1
    assert "run `mirror verify --repair` to fix" in output(capsys)[-1]

    assert mirror.run("verify", "--hashes", "--repair", "--delete-orphans") == EXIT_OK
    assert "removed 3 orphans; repaired 4 projects" in output(capsys)[-1]
    check_tree(mirror.web)
    assert snapshot(mirror.web) == clean
    assert mirror.run("verify", "--hashes") == EXIT_OK
    assert "no problems" in output(capsys)[-1]


def test_without_hashes_sizes_are_checked_and_repair_keeps_good_files(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    clean = snapshot(mirror.web)
    wheel = sorted((mirror.web / "packages").rglob("gamma-1.1*.whl"))[0]
    wheel.write_bytes(wheel.read_bytes()[:-10])  # a truncated file
    upstream.clear_requests()
    assert mirror.run("verify", "--repair") == EXIT_OK
    assert "1 wrong size" in output(capsys)[-1]
    fetched = [r.path for r in upstream.requests if "/packages/" in r.path]
    assert fetched == [f"/packages/{wheel.relative_to(mirror.web / 'packages').as_posix()}"]
    assert snapshot(mirror.web) == clean


def test_root_index_is_rewritten_from_state(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    clean = snapshot(mirror.web)
    root = mirror.web / "simple" / "index.v1_json"
    root.write_text(root.read_text().replace('{"name":"beta","_last-serial":', '{"name":"zeta","_last-serial":'))
    assert mirror.run("verify") == EXIT_PARTIAL
    assert "root index disagrees with state: simple/index.v1_json" in "\n".join(output(capsys))
    assert mirror.run("verify", "--repair") == EXIT_OK
    assert "rewrote the root index" in output(capsys)[-1]
    assert snapshot(mirror.web) == clean


def test_verify_needs_a_mirror(mirror: Mirror, capsys: pytest.CaptureFixture[str]) -> None:
    mirror.write_config("http://127.0.0.1:9/simple/")
    assert mirror.run("verify") == EXIT_CONFIG
    assert "run `mirror sync` first" in output(capsys)[-1]


def cursor(db: Path) -> tuple[str | None, str | None]:
    with sqlite3.connect(db, timeout=5) as conn:
        rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('verify_phase', 'verify_cursor')"))
    return rows.get("verify_phase"), rows.get("verify_cursor")


def test_a_killed_pass_resumes_where_it_stopped(tmp_path: Path) -> None:
    build(tmp_path / "m", 8_000, per_project=40)
    config = tmp_path / "mirror.toml"
    config.write_text('[mirror]\ndirectory = "m"\n')
    web, db = tmp_path / "m" / "web", tmp_path / "m" / "state" / "mirror.sqlite3"
    files = sorted((web / "packages").rglob("*.whl"))
    files[0].unlink()  # found before the kill
    files[-1].write_bytes(b"!" * files[-1].stat().st_size)  # found after the resume
    command = [sys.executable, "-m", "mirror", "--config", str(config), "verify", "--hashes"]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        phase, at = cursor(db)
        if phase == "files" and at and at > files[0].relative_to(web).as_posix():
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, "the pass ended before it could be interrupted"
    phase, at = cursor(db)
    assert phase == "files" and at is not None

    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == EXIT_PARTIAL, resumed.stderr
    assert "resuming the interrupted pass at files packages/" in resumed.stderr
    summary = resumed.stderr.strip().splitlines()[-1]
    assert "(resumed pass)" in summary and "1 missing file" in summary and "1 wrong sha256" in summary
    checked = int(summary.split(" projects, ")[1].split(" files")[0])
    assert 0 < checked < 8_000 + 200, "the resumed pass skipped what the killed one had done"
    assert cursor(db) == (None, None), "a finished pass leaves no cursor"


def test_repair_with_the_upstream_down_stops_in_one_line_then_resumes(
    mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    up = FakePyPI().start()
    seed(up)
    port = int(up.url.rsplit(":", 1)[1])
    mirror.write_config(up.simple_url, retries=0)
    assert mirror.run("sync") == EXIT_OK
    clean = snapshot(mirror.web)
    next(iter((mirror.web / "packages").rglob("alpha-1.0-*.whl"))).unlink()
    up.stop()
    assert mirror.run("verify", "--repair") == EXIT_ENVIRONMENT
    lines = output(capsys)
    assert lines[-1].startswith("mirror: error: cannot fetch the upstream index")
    with FakePyPI(port=port) as again:
        seed(again)
        assert mirror.run("verify", "--repair") == EXIT_OK
        lines = output(capsys)
    assert "verify: resuming the interrupted pass at repair" in lines
    assert "1 missing file; repaired 1 projects" in lines[-1]
    check_tree(mirror.web)
    assert {k: v for k, v in snapshot(mirror.web).items() if k.startswith("packages/")} == {
        k: v for k, v in clean.items() if k.startswith("packages/")
    }


def test_repair_never_deletes_a_project_the_upstream_stopped_listing(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    next(iter((mirror.web / "packages").rglob("alpha-1.0-*.whl"))).unlink()
    upstream.remove_project("alpha")  # a glitch, or a real removal: either way, not verify's call
    assert mirror.run("verify", "--repair") == EXIT_PARTIAL
    last = output(capsys)[-1]
    assert "1 could not be repaired (e.g. alpha: not listed by the upstream now; left as it is" in last
    assert (mirror.web / "simple" / "alpha" / "index.html").exists()
    assert len(list((mirror.web / "packages").rglob("alpha-*"))) == 5
