"""Bad input ends with one readable line on stderr, no traceback, and the documented exit code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mirror.errors import EXIT_CONFIG, EXIT_ENVIRONMENT, EXIT_LOCKED, EXIT_OK
from tests.conftest import ROOT, Mirror, check_tree, snapshot
from tests.fakepypi import FakePyPI


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "MIRROR_CONFIG"}
    environ["PYTHONPATH"] = str(ROOT)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "mirror", *args], capture_output=True, text=True, cwd=cwd, env=environ, timeout=60
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines, "no error message"
    assert lines[-1].startswith("mirror: error: ")
    return lines[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_missing_config(tmp_path: Path) -> None:
    result = run("sync", cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert "no config file" in one_line(result)


def test_config_named_by_env_but_missing(tmp_path: Path) -> None:
    result = run("sync", cwd=tmp_path, env={"MIRROR_CONFIG": str(tmp_path / "gone.toml")})
    assert result.returncode == EXIT_CONFIG
    assert "gone.toml: config file not found" in one_line(result)


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    (tmp_path / "mirror.toml").write_text('[mirror]\ndirectory = "m"\nupstream = "http://x/"\nworkerz = 3\n')
    result = run("sync", cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    line = one_line(result)
    assert "workerz" in line and "mirror.toml" in line


def test_unknown_plugin_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "mirror.toml").write_text(
        '[mirror]\ndirectory = "m"\nupstream = "http://x/"\n[filters]\nenabled = ["no-such-filter"]\n'
    )
    result = run("sync", cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert "unknown plugin 'no-such-filter'" in one_line(result)


def test_unreachable_upstream(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "mirror.toml").write_text(
        f'[mirror]\ndirectory = "m"\nupstream = "http://127.0.0.1:{port}/simple/"\nretries = 1\n'
    )
    result = run("sync", cwd=tmp_path)
    assert result.returncode == EXIT_ENVIRONMENT
    assert "cannot fetch the upstream index" in one_line(result)


def test_missing_directory_parent(tmp_path: Path) -> None:
    (tmp_path / "mirror.toml").write_text('[mirror]\ndirectory = "no/such/dir"\nupstream = "http://x/"\n')
    result = run("sync", cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert "does not exist" in one_line(result)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unwritable_directory_as_user(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir(mode=0o500)
    (tmp_path / "mirror.toml").write_text('[mirror]\ndirectory = "m"\nupstream = "http://x/"\n')
    result = run("sync", cwd=tmp_path)
    assert result.returncode == EXIT_ENVIRONMENT
    assert "permission denied" in one_line(result).lower()


def test_unwritable_directory(tmp_path: Path, upstream: FakePyPI) -> None:
    """A read-only tree (here: a file where a directory must go, which even root cannot write through)."""
    upstream.add_release("demo", "1.0")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "web").write_text("not a directory")
    (tmp_path / "mirror.toml").write_text(f'[mirror]\ndirectory = "m"\nupstream = "{upstream.simple_url}"\n')
    result = run("sync", cwd=tmp_path)
    assert result.returncode == EXIT_ENVIRONMENT
    assert "cannot create" in one_line(result)


def test_second_concurrent_run_exits_3(upstream: FakePyPI, mirror: Mirror) -> None:
    upstream.add_release("demo", "1.0")
    upstream.faults.slow("/simple/", delay=3.0)
    mirror.write_config(upstream.simple_url)
    first = mirror.start_process("sync", stderr=subprocess.PIPE)
    try:
        lock = mirror.root / "m" / "state" / "lock"
        for _ in range(100):
            if lock.exists() and lock.read_text().strip():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        second = mirror.run_process("sync")
        assert second.returncode == EXIT_LOCKED
        assert "another mirror run holds" in one_line(second)
    finally:
        first.communicate(timeout=60)  # also closes its stderr pipe
        assert first.returncode == EXIT_OK
    check_tree(mirror.web)


def test_init_writes_a_starter_config_that_validates(tmp_path: Path) -> None:
    result = run("init", "site.toml", cwd=tmp_path)
    assert result.returncode == EXIT_OK
    text = (tmp_path / "site.toml").read_text()
    assert "[mirror]" in text and "max-delete-fraction" in text
    again = run("init", "site.toml", cwd=tmp_path)
    assert again.returncode == EXIT_CONFIG
    assert "already exists" in one_line(again)
    status = run("--config", "site.toml", "status", cwd=tmp_path)
    assert status.returncode == EXIT_CONFIG  # valid config, but no mirror yet
    assert "run `mirror sync` first" in one_line(status)


def test_usage_error_exits_2(tmp_path: Path) -> None:
    result = run("frobnicate", cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert "Traceback" not in result.stderr


def test_full_disk_leaves_the_last_good_mirror(upstream: FakePyPI, mirror: Mirror, tmp_path: Path) -> None:
    """ENOSPC mid-run (a file size limit makes the kernel refuse the write) stops the run cleanly."""
    upstream.add_release("demo", "1.0")
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    before = snapshot(mirror.web)
    upstream.add_release("demo", "2.0", payload_size=4 << 20)
    script = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20)); "
        "from mirror.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "--config", str(mirror.config), "sync"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == EXIT_ENVIRONMENT, result.stderr
    assert "File too large" in one_line(result) or "disk" in one_line(result)
    after = snapshot(mirror.web)
    # What clients see is untouched: same pages, same files. A fully verified file of the new
    # release may already sit unlinked in packages/; the next run uses it instead of fetching it.
    assert {k: v for k, v in after.items() if k.startswith("simple/")} == {
        k: v for k, v in before.items() if k.startswith("simple/")
    }
    assert all(after[path] == digest for path, digest in before.items())
    check_tree(mirror.web)
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)


@pytest.mark.parametrize(
    ("mirror_table", "command", "named"),
    [
        # Reproductions from issue 12: tracebacks, or accepted.
        ('directory = "m\\u0000x"', "sync", "directory"),
        ('directory = "m"\nupstream = "http://127.0.0.1:1/simple/"\nmetrics-file = "/"', "sync", "metrics-file"),
        ('directory = "m"\nupstream = "http://mirror:hunter2@127.0.0.1:1/simple/"', "sync", "upstream"),
        ('directory = "/"', "status", "directory"),  # status: were the check missing, it only reads
        ('directory = "m"\nupstream = "http://127.0.0.1:99999/simple/"', "sync", "upstream"),
    ],
)
def test_bad_values_are_one_line_naming_key_and_file(
    tmp_path: Path, mirror_table: str, command: str, named: str
) -> None:
    (tmp_path / "mirror.toml").write_text(f"[mirror]\n{mirror_table}\n")
    result = run("--config", "mirror.toml", command, cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    line = one_line(result)
    assert f"[mirror] {named} " in line and "mirror.toml" in line
    assert "hunter2" not in result.stderr + result.stdout
    assert not (tmp_path / "m").exists()


def test_sync_into_a_directory_that_is_not_a_mirror_is_refused(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("years of work")
    (tmp_path / "mirror.toml").write_text('[mirror]\ndirectory = "home"\nupstream = "http://127.0.0.1:1/simple/"\n')
    result = run("sync", cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert "is not empty and holds no mirror (thesis.tex)" in one_line(result)
    assert [p.name for p in (tmp_path / "home").iterdir()] == ["thesis.tex"]
