"""What a person sees of a sync: progress bars in a real pseudo-terminal, plain lines through a pipe."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time

import pyte

from mirror.errors import EXIT_OK, EXIT_PARTIAL
from tests.conftest import ROOT, Mirror, check_tree
from tests.fakepypi import FakePyPI

PROJECTS = 40
COLUMNS, ROWS = 100, 30


def populate(up: FakePyPI) -> None:
    for i in range(PROJECTS):
        up.add_release(f"proj{i:02d}", "1.0", payload_size=2048)
    # Each wheel takes a moment, so all 16 workers have downloads in flight while bars redraw.
    up.faults.slow("*.whl", 0.25, count=PROJECTS)


def configure(mirror: Mirror, upstream: FakePyPI, **keys: object) -> None:
    mirror.write_config(upstream.simple_url, **keys)
    mirror.config.write_text(mirror.config.read_text().replace("workers = 4", "workers = 16"))


def run_in_pty(argv: list[str], timeout: float = 120) -> tuple[int, bytes]:
    """Run ``argv`` with a pseudo-terminal as stdin, stdout and stderr; return its exit code and output."""
    leader, follower = pty.openpty()
    os.set_blocking(leader, True)
    env = {**os.environ, "COLUMNS": str(COLUMNS), "LINES": str(ROWS), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, cwd=ROOT, env=env)
    os.close(follower)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        return process.wait(timeout=max(deadline - time.monotonic(), 1)), bytes(output)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()


def screen_of(output: bytes) -> list[str]:
    """The lines a COLUMNS x ROWS terminal shows at the end, trailing blanks dropped."""
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    stream.feed(output.replace(b"\n", b"\r\n") if b"\r\n" not in output else output)
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def test_tty_shows_bars_that_redraw_in_place(upstream: FakePyPI, mirror: Mirror) -> None:
    populate(upstream)
    configure(mirror, upstream)
    argv = [sys.executable, "-m", "mirror", "--config", str(mirror.config), "sync"]
    code, output = run_in_pty(argv)
    text = output.decode("utf-8", "replace")
    assert code == EXIT_OK, text
    check_tree(mirror.web)
    assert "\x1b[" in text, "no terminal control sequences: the rich reporter was not used"
    lines = screen_of(output)
    # 40 projects and 120 files with 16 downloads at a time, yet the bars were redrawn in place:
    # the terminal ends with the index line, two bars and the (wrapped) summary, not a frame per event.
    assert len([line for line in lines if line]) <= 5, lines
    bars = [line for line in lines if line.startswith(("projects", "files"))]
    assert len(bars) == 2, lines
    projects, files = bars
    assert f"{PROJECTS}/{PROJECTS}" in projects
    assert re.search(r"\d+ files, [\d.]+ kB at [\d.]+ kB/s", files), files
    summary = "".join(lines[lines.index(files) + 1 :])
    assert summary.startswith(f"sync ok: {PROJECTS} projects synced"), lines
    assert summary.endswith("0 failed, 0 deferred")
    assert all(len(line) <= COLUMNS for line in lines)


def test_pipe_gets_plain_lines_and_a_summary(upstream: FakePyPI, mirror: Mirror) -> None:
    populate(upstream)
    upstream.faults.fail("/simple/proj07/", count=50, status=500)
    configure(mirror, upstream, retries=0)
    result = mirror.run_process("sync")
    assert result.returncode == EXIT_PARTIAL, result.stderr
    assert "\x1b[" not in result.stderr
    lines = result.stderr.splitlines()
    synced = sorted(line.removeprefix("synced ") for line in lines if line.startswith("synced "))
    assert synced == [f"proj{i:02d}" for i in range(PROJECTS) if i != 7]
    assert any(line.startswith("failed: proj07") for line in lines), lines
    summary = lines[-1]
    assert re.fullmatch(
        rf"sync partial: {PROJECTS - 1} projects synced, 0 unchanged, 0 deleted; "
        rf"{3 * (PROJECTS - 1)} files added \([\d.]+ kB\), 0 removed; \d+ requests in [\d.]+s; "
        r"1 failed, 0 deferred \(retried next run\)",
        summary,
    ), summary
