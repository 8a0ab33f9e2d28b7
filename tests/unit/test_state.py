"""State: the staged listing and the plan stream through SQLite with flat memory."""

from __future__ import annotations

import json
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import NormalizedName

from mirror._state import State
from mirror.core import parse
from mirror.core.models import IndexEntry
from mirror.core.plan import Action, LocalFile, plan_index


def root_document(count: int) -> bytes:
    projects = ",".join(json.dumps({"name": f"project-{i:07d}", "_last-serial": i}) for i in range(count))
    return f'{{"meta":{{"api-version":"1.4","_last-serial":{count}}},"projects":[{projects}]}}'.encode()


@pytest.mark.slow
def test_staging_and_planning_200k_projects_keeps_memory_flat(tmp_path: Path) -> None:
    count = 200_000
    body = root_document(count)
    state = State(tmp_path / "state.sqlite3")
    for i in range(0, count, 2):  # half the projects are already mirrored, some at an older serial
        state.publish_project(f"project-{i:07d}", i - (i % 4 == 0), None, None)
    state.publish_project("zz-gone", 1, None, None)
    state.commit()

    def batches() -> Iterator[parse.IndexBatch]:
        parser = parse.IndexJsonParser()
        for start in range(0, len(body), 1 << 16):
            yield parser.feed_batch(body[start : start + (1 << 16)])
        parser.close()

    tracemalloc.start()
    assert state.replace_upstream(batches()) == count
    state.plan_work()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # The document alone is ~9 MB; a list of 200k entries would be far more than this bound.
    assert peak < 8 * 2**20, f"peak Python allocations {peak / 2**20:.1f} MiB"
    assert state.count_work(Action.DELETE) == 1
    assert state.count_work(Action.SYNC) == count // 2 + count // 4
    planned_by_sql = work_rows(state)
    tracemalloc.start()
    state.store_work(plan_index(state.iter_upstream(), state.iter_local()))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 2**20, f"peak Python allocations {peak / 2**20:.1f} MiB"
    assert work_rows(state) == planned_by_sql
    state.close()


def work_rows(state: State) -> dict[Action, list[tuple[str, int | None]]]:
    return {action: [(c.name, c.serial) for c in state.iter_work(action)] for action in Action}


def test_files_and_projects_round_trip(tmp_path: Path) -> None:
    state = State(tmp_path / "s.sqlite3")
    state.add_file("demo", LocalFile("packages/a/demo-1.0.tar.gz", 10, "a" * 64))
    state.publish_project("demo", 7, '"etag"', None)
    state.commit()
    state.close()
    again = State(tmp_path / "s.sqlite3")
    assert again.project("demo") == (7, '"etag"', None)
    assert again.project_files("demo") == {
        "packages/a/demo-1.0.tar.gz": LocalFile("packages/a/demo-1.0.tar.gz", 10, "a" * 64)
    }
    assert again.file_owner("packages/a/demo-1.0.tar.gz") == "demo"
    assert list(again.iter_published()) == [IndexEntry(NormalizedName("demo"), 7)]
    again.forget_project("demo")
    assert again.totals().projects == 0 and again.totals().files == 0
    again.close()


def test_dry_run_state_commits_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    State(path).close()
    dry = State(path, dry_run=True)
    dry.publish_project("demo", 1, None, None)
    dry.commit()
    dry.close()
    assert State(path).project("demo") is None


def test_a_state_database_from_before_page_digests_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE projects (name TEXT PRIMARY KEY, serial INTEGER, published INTEGER NOT NULL DEFAULT 0, "
        "etag TEXT, last_modified TEXT)"
    )
    old.execute("INSERT INTO projects VALUES ('demo', 3, 1, NULL, NULL)")
    old.commit()
    old.close()
    state = State(path)
    assert state.page_digest("demo") is None
    state.publish_project("demo", 4, None, None, "ab" * 32)
    state.commit()
    assert state.page_digest("demo") == "ab" * 32
    assert state.local_project("demo") is not None
    state.close()


def test_file_owners_answers_many_paths_in_chunks(tmp_path: Path) -> None:
    state = State(tmp_path / "s.sqlite3")
    for i in range(1200):  # more than one chunk of bound parameters
        state.add_file(f"p{i % 3}", LocalFile(f"packages/{i:04d}.whl", 1, "0" * 64))
    asked = [f"packages/{i:04d}.whl" for i in range(0, 1300, 7)]
    owners = state.file_owners(asked)
    assert owners == {p: state.file_owner(p) for p in asked if state.file_owner(p) is not None}
    assert len(owners) == len([i for i in range(0, 1300, 7) if i < 1200])
    assert state.file_owners([]) == {}
    state.close()
