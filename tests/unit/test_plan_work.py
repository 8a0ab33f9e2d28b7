"""State.plan_work (the index plan done by SQLite) stores the same work as plan_index (the Python merge).

The engine plans in SQL when every listed and every local project takes part as it is, and with
the Python merge otherwise (names on the command line, project filters, rechecks); both must
decide alike for every mix of new, changed, unchanged, unfinished and vanished projects.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.utils import NormalizedName

from mirror._state import State
from mirror.core.parse import IndexBatch
from mirror.core.plan import Action, LocalProject, plan_index

NAMES = st.sampled_from(["a", "a-b", "b", "c", "d0", "z", "zz"])
SERIAL = st.one_of(st.none(), st.integers(0, 6))
# name -> (serial, published); a project registered but never published has published False
LOCAL = st.dictionaries(NAMES, st.tuples(SERIAL, st.booleans()), max_size=7)
UPSTREAM = st.lists(st.tuples(NAMES, SERIAL), max_size=9)  # duplicates: the later entry wins


def work(state: State) -> dict[Action, list[tuple[str, int | None]]]:
    return {action: [(c.name, c.serial) for c in state.iter_work(action)] for action in Action}


def stage(state: State, local: dict[str, tuple[int | None, bool]], upstream: list[tuple[str, int | None]]) -> None:
    for name, (serial, published) in local.items():
        if published:
            state.publish_project(name, serial, None, None)
        else:
            state.register_project(name)
    batch = IndexBatch()
    for name, serial in upstream:
        batch.add(NormalizedName(name), serial)
    state.replace_upstream([batch])


def test_plan_work_on_a_small_mirror(tmp_path: Path) -> None:
    state = State(tmp_path / "state.sqlite3")
    local = {"a": (1, True), "b": (2, True), "c": (None, True), "d": (5, False), "gone": (1, True)}
    stage(state, local, [("a", 1), ("b", 3), ("c", 1), ("d", 5), ("new", None), ("b", 2)])
    state.plan_work()
    # b's later entry (2) wins: unchanged; c has no serial yet, d never finished, new is new
    assert work(state) == {Action.SYNC: [("c", 1), ("d", 5), ("new", None)], Action.DELETE: [("gone", None)]}
    state.plan_work(recheck_all=True, deletions_only=True)
    assert work(state) == {Action.SYNC: [], Action.DELETE: [("gone", None)]}
    state.close()


# A state database per example: seconds, so left out of the fast loop.
@pytest.mark.slow
@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(LOCAL, UPSTREAM, st.booleans(), st.booleans())
def test_plan_work_stores_what_plan_index_plans(
    local: dict[str, tuple[int | None, bool]],
    upstream: list[tuple[str, int | None]],
    recheck_all: bool,
    deletions_only: bool,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = State(Path(tmp) / "state.sqlite3")
        stage(state, local, upstream)
        state.plan_work(recheck_all=recheck_all, deletions_only=deletions_only)
        by_sql = work(state)
        locals_ = (LocalProject(p.name, None) if recheck_all else p for p in state.iter_local())
        changes = plan_index(state.iter_upstream(), locals_)
        state.store_work(c for c in changes if not deletions_only or c.action is Action.DELETE)
        assert by_sql == work(state)
        state.close()
