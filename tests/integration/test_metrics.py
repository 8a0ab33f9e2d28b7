"""After every run, ok, partial or stopped: a Prometheus textfile, and ``mirror status`` tells the same."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mirror._metrics import RunFacts, render
from mirror.errors import EXIT_ENVIRONMENT, EXIT_OK, EXIT_PARTIAL
from tests.conftest import Mirror
from tests.fakepypi import FakePyPI
from tests.servers import free_port


def samples(path: Path) -> dict[str, float]:
    """The samples of a text-format file; every metric must carry HELP and TYPE lines."""
    values: dict[str, float] = {}
    described: set[str] = set()
    for line in path.read_text().splitlines():
        if line.startswith("# TYPE "):
            described.add(line.split()[2])
        elif line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            assert name.split("{")[0] in described, f"{name} has no TYPE line"
            values[name] = float(value)
    return values


def status_json(mirror: Mirror, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert mirror.run("status", "--json") == EXIT_OK
    facts: dict[str, object] = json.loads(capsys.readouterr().out)
    return facts


def test_ok_run_writes_the_textfile_and_status_agrees(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.add_release("demo", "1.0")
    upstream.add_release("dep", "2.0")
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    prom = mirror.root / "m" / "state" / "metrics.prom"
    got = samples(prom)
    db = sqlite3.connect(mirror.root / "m" / "state" / "mirror.sqlite3")
    files, size = db.execute("SELECT count(*), sum(size) FROM files").fetchone()
    assert got['mirror_last_run_result{result="ok"}'] == 1
    assert got['mirror_last_run_result{result="error"}'] == 0
    assert got["mirror_serial"] == upstream.serial
    assert (got["mirror_projects"], got["mirror_files"], got["mirror_bytes"]) == (2, files, size)
    assert got["mirror_last_run_failures"] == 0
    assert got["mirror_last_success_timestamp_seconds"] == got["mirror_last_run_timestamp_seconds"]
    assert [p.name for p in prom.parent.iterdir() if p.name.endswith(".tmp")] == []

    facts = status_json(mirror, capsys)
    outcome = facts["last_outcome"]
    assert isinstance(outcome, dict)
    assert (outcome["result"], outcome["files"], outcome["bytes"], outcome["failures"]) == ("ok", files, size, 0)
    assert facts["metrics_file"] == str(prom)
    assert mirror.run("status") == EXIT_OK
    text = capsys.readouterr().out
    assert "last run" in text and "ok in" in text and "0 failures" in text and str(prom) in text


def test_partial_run_then_recovery(upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]) -> None:
    upstream.add_release("demo", "1.0")
    upstream.add_release("dep", "2.0")
    upstream.faults.fail("/simple/dep/", count=20, status=500)
    mirror.write_config(upstream.simple_url, retries=0, **{"metrics-file": "textfiles/mirror.prom"})
    assert mirror.run("sync") == EXIT_PARTIAL
    prom = mirror.root / "textfiles" / "mirror.prom"
    got = samples(prom)
    assert got['mirror_last_run_result{result="partial"}'] == 1
    assert got["mirror_last_run_failures"] == 1
    assert "mirror_last_success_timestamp_seconds" not in got  # never succeeded: absent, not zero

    upstream.faults.clear()
    assert mirror.run("sync") == EXIT_OK
    got = samples(prom)
    assert got['mirror_last_run_result{result="ok"}'] == 1
    assert got["mirror_projects"] == 2
    assert got["mirror_last_success_timestamp_seconds"] == got["mirror_last_run_timestamp_seconds"]


def test_stopped_run_still_writes_metrics(
    upstream: FakePyPI, mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.add_release("demo", "1.0")
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    first = samples(mirror.root / "m" / "state" / "metrics.prom")

    mirror.write_config(f"http://127.0.0.1:{free_port()}/simple/", retries=0)
    assert mirror.run("sync") == EXIT_ENVIRONMENT
    got = samples(mirror.root / "m" / "state" / "metrics.prom")
    assert got['mirror_last_run_result{result="error"}'] == 1
    assert got['mirror_last_run_result{result="ok"}'] == 0
    # What the mirror holds, and when it last succeeded, survive the failed run.
    assert got["mirror_files"] == first["mirror_files"]
    assert got["mirror_last_success_timestamp_seconds"] == first["mirror_last_success_timestamp_seconds"]
    outcome = status_json(mirror, capsys)["last_outcome"]
    assert isinstance(outcome, dict)
    assert outcome["result"] == "error"
    assert "cannot fetch the upstream index" in str(outcome["error"])


def test_render_is_the_text_format() -> None:
    facts = RunFacts(
        started=100.0,
        finished=112.5,
        result="partial",
        serial=None,
        projects=3,
        files=7,
        bytes=1234,
        failures=2,
        synced=1,
        files_added=4,
        bytes_added=99,
        last_success=None,
    )
    text = render(facts)
    assert text.endswith("\n")
    assert "mirror_last_run_duration_seconds 12.500\n" in text
    assert 'mirror_last_run_result{result="partial"} 1\n' in text
    assert "mirror_serial" not in text and "mirror_last_success" not in text
    assert RunFacts.from_json(facts.to_json()) == facts
