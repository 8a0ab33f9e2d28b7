"""The sorted tree walk verify merge-joins against state: order, resume cursor, unusable names."""

from __future__ import annotations

import os
from pathlib import Path

from mirror.verify.engine import walk_sorted

NAMES = ["a/x", "a/y/z", "a-b", "a.c", "a0", "b/c/d/e", "b/c-d", "b/c.d", "ü/ß", "B"]


def make(tmp_path: Path) -> str:
    for name in NAMES:
        path = tmp_path / "packages" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
    return str(tmp_path)


def test_walk_yields_full_paths_in_the_order_sqlite_sorts_them(tmp_path: Path) -> None:
    bad: list[str] = []
    walked = list(walk_sorted(make(tmp_path), "packages", "", bad.append))
    paths = [f.path for f in walked]
    assert paths == sorted(f"packages/{n}" for n in NAMES)
    assert [f.size for f in walked] == [len(p.removeprefix("packages/").encode()) for p in paths]
    assert bad == []


def test_walk_resumes_after_a_cursor_without_revisiting(tmp_path: Path) -> None:
    root = make(tmp_path)
    everything = [f.path for f in walk_sorted(root, "packages", "", print)]
    for cut in range(len(everything)):
        rest = [f.path for f in walk_sorted(root, "packages", everything[cut], print)]
        assert rest == everything[cut + 1 :]


def test_names_that_are_not_utf8_are_reported_apart(tmp_path: Path) -> None:
    root = make(tmp_path)
    with open(os.fsencode(tmp_path / "packages" / "a") + b"/\xff.whl", "wb") as handle:
        handle.write(b"x")
    bad: list[str] = []
    paths = [f.path for f in walk_sorted(root, "packages", "", bad.append)]
    assert paths == sorted(f"packages/{n}" for n in NAMES)
    assert len(bad) == 1 and os.fsencode(bad[0]).endswith(b"/\xff.whl")


def test_missing_top_is_an_empty_walk(tmp_path: Path) -> None:
    assert list(walk_sorted(str(tmp_path), "packages", "", print)) == []
