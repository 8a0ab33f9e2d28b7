"""The temp-file journal: append while a run goes, compact to work in flight, commit state first."""

from __future__ import annotations

from pathlib import Path

from mirror.sync import journal
from mirror.sync.journal import TempJournal


def test_records_directories_once_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state" / "temp-dirs.journal"
    first = TempJournal(path)
    first.add("a", ["packages/aa/bb", "simple/a", "packages/aa/bb"])
    first.add("b", ["simple/b"])
    first.close()
    assert TempJournal(path).dirs() == ["packages/aa/bb", "simple/a", "simple/b"]


def test_clear_forgets_everything(tmp_path: Path) -> None:
    log = TempJournal(tmp_path / "j")
    log.add("a", ["simple/a"])
    log.clear()
    assert log.dirs() == []
    assert not (tmp_path / "j").exists()


def test_compaction_keeps_work_in_flight_and_commits_state_first(tmp_path: Path) -> None:
    commits: list[int] = []
    log = TempJournal(tmp_path / "j", before_compact=lambda: commits.append(1))
    # Fill past the compaction bound with work that finishes, then add work still in flight.
    line = "packages/" + "x" * 200
    count = journal._COMPACT_BYTES // len(line) + 2
    for i in range(count):
        log.add(f"done{i}", [f"{line}{i}"])
        log.done(f"done{i}")
        if i == 0:
            log.add("open", ["simple/open"])
    assert commits == [1]
    dirs = log.dirs()
    # Finished work before the compaction is gone; the work still open is kept.
    assert f"{line}0" not in dirs
    assert "simple/open" in dirs
    assert len(dirs) < count // 10
