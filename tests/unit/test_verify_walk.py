"""The sorted tree walk verify merge-joins against state: order, resume cursor, unusable names.

The walk goes through the storage protocol, so it runs over every backend.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirror.storage import FileStorage, MemoryStorage, Storage
from mirror.verify.engine import walk_sorted
from tests.s3server import SeaweedFS

NAMES = ["a/x", "a/y/z", "a-b", "a.c", "a0", "b/c/d/e", "b/c-d", "b/c.d", "ü/ß", "B"]


@pytest.fixture(params=["file", "memory", pytest.param("s3", marks=[pytest.mark.slow, pytest.mark.integration])])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    made: Storage
    if request.param == "s3":  # its own walk: a flat listing per directory, sorted (SeaweedFS lists depth first)
        server: SeaweedFS = request.getfixturevalue("seaweedfs")
        made = server.storage()
    else:
        made = FileStorage(tmp_path) if request.param == "file" else MemoryStorage()
    for name in NAMES:
        made.write_atomic(f"packages/{name}", [name.encode()])
    return made


def test_walk_yields_full_paths_in_the_order_sqlite_sorts_them(storage: Storage) -> None:
    bad: list[str] = []
    walked = list(walk_sorted(storage, "packages", "", bad.append))
    paths = [f.path for f in walked]
    assert paths == sorted(f"packages/{n}" for n in NAMES)
    assert [f.size for f in walked] == [len(p.removeprefix("packages/").encode()) for p in paths]
    assert bad == []


def test_walk_resumes_after_a_cursor_without_revisiting(storage: Storage) -> None:
    everything = [f.path for f in walk_sorted(storage, "packages", "", print)]
    for cut in range(len(everything)):
        rest = [f.path for f in walk_sorted(storage, "packages", everything[cut], print)]
        assert rest == everything[cut + 1 :]


def test_names_that_are_not_utf8_are_reported_apart(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    for name in NAMES:
        storage.write_atomic(f"packages/{name}", [name.encode()])
    with open(os.fsencode(tmp_path / "packages" / "a") + b"/\xff.whl", "wb") as handle:
        handle.write(b"x")
    bad: list[str] = []
    paths = [f.path for f in walk_sorted(storage, "packages", "", bad.append)]
    assert paths == sorted(f"packages/{n}" for n in NAMES)
    assert len(bad) == 1 and os.fsencode(bad[0]).endswith(b"/\xff.whl")


def test_missing_top_is_an_empty_walk(tmp_path: Path) -> None:
    assert list(walk_sorted(FileStorage(tmp_path), "packages", "", print)) == []
    assert list(walk_sorted(MemoryStorage(), "packages", "", print)) == []
