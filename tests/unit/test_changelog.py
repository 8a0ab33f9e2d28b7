"""The change log behind diff files and bundles, the part writer, and sizes on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror._state import Change, State
from mirror.airgap.bundle import PartWriter, parse_size
from mirror.errors import ConfigError
from mirror.storage import FileStorage, MemoryStorage, Storage
from mirror.sync.diffs import prune


@pytest.mark.parametrize("backend", ["file", "memory"])
def test_the_log_keeps_the_last_change_per_path_and_tells_added_from_changed(tmp_path: Path, backend: str) -> None:
    state = State(tmp_path / "s.sqlite3")
    web: Storage = (
        FileStorage(tmp_path / "web", on_change=state.record_change)
        if backend == "file"
        else MemoryStorage(on_change=state.record_change)
    )
    web.write_atomic("simple/a/index.html", [b"1"])
    web.write_atomic("packages/x/gone.whl", [b"x"])
    web.write_atomic("packages/x/kept.whl", [b"k"])
    mark = state.change_seq()
    web.write_atomic("simple/a/index.html", [b"2"])  # changed
    web.delete("packages/x/gone.whl")  # deleted
    web.write_atomic("packages/y/new.whl", [b"n"])  # added
    web.delete("packages/z/never.whl")  # deleting what is not there is still recorded (a crash may hide it)
    aborted = web.open_async_writer("packages/y/aborted.whl")
    aborted.abort()  # never published: not a change
    assert list(state.iter_changes(mark)) == [
        Change("packages/x/gone.whl", deleted=True, added=False),
        Change("packages/y/new.whl", deleted=False, added=True),
        Change("packages/z/never.whl", deleted=True, added=False),
        Change("simple/a/index.html", deleted=False, added=False),
    ]
    assert [c.path for c in state.iter_changes(0, mark)] == ["packages/x/kept.whl"]
    web.write_atomic("packages/x/gone.whl", [b"again"])  # reborn after a deletion: added again
    assert Change("packages/x/gone.whl", False, True) in list(state.iter_changes(state.change_seq() - 1))
    state.close()
    reopened = State(tmp_path / "s.sqlite3")
    assert reopened.change_seq() == mark + 5
    reopened.close()


def test_part_writer_cuts_at_the_limit_and_hashes_each_part(tmp_path: Path) -> None:
    import hashlib

    writer = PartWriter(tmp_path, "b", ".tar", limit=1000)
    for size in (300, 1500, 200, 1):
        writer.write(bytes([size % 251]) * size)
    writer.close()
    sizes = [p.size for p in writer.parts]
    assert sizes == [1000, 1000, 1]
    assert [p.name for p in writer.parts] == ["b.part-0001.tar", "b.part-0002.tar", "b.part-0003.tar"]
    for part in writer.parts:
        assert hashlib.sha256((tmp_path / part.name).read_bytes()).hexdigest() == part.sha256
    writer.remove()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("text", "size"), [("4G", 4 << 30), ("650M", 650 << 20), ("512k", 512 << 10), ("1MiB", 1 << 20), ("70000", 70000)]
)
def test_split_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "4X", "-1", "1.5G", "100"])
def test_bad_split_sizes_are_usage_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="--split-size"):
        parse_size(text)


def test_prune_keeps_the_newest_runs_in_both_formats(tmp_path: Path) -> None:
    names = [f"2026010{i}T000000Z_serial-{i}-{i + 1}_{i}" for i in range(1, 6)]
    for name in names:
        (tmp_path / f"{name}.diff").touch()
        (tmp_path / f"{name}.files").touch()
    (tmp_path / "notes.txt").touch()
    prune(tmp_path, 2)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == sorted([f"{n}.{s}" for n in names[-2:] for s in ("diff", "files")] + ["notes.txt"])
