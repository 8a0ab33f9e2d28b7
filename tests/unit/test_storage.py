"""The storage protocol's contract, held by every backend: FileStorage on disk, MemoryStorage, and
S3Storage against a real SeaweedFS (slow: it needs the session's server).

Each test runs once per backend; what a reader can see goes through the protocol only. An object
store has no temporary names: a download in flight is held by the writer (or is an incomplete
multipart upload), never listed, so the temp-file assertions apply to the other two.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import anyio
import pytest

from mirror.core import layout
from mirror.errors import EnvironmentFault, UnsafeName
from mirror.storage import Entry, FileStorage, MemoryStorage, Storage
from mirror.storage.base import walk_files
from tests.s3server import SeaweedFS

Changes = list[tuple[str, bool]]


@pytest.fixture(params=["file", "memory", pytest.param("s3", marks=[pytest.mark.slow, pytest.mark.integration])])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Storage, Changes]]:
    changes: Changes = []

    def hook(path: str, deleted: bool) -> None:
        changes.append((path, deleted))

    if request.param == "file":
        yield FileStorage(tmp_path / "web", on_change=hook), changes
    elif request.param == "memory":
        yield MemoryStorage(on_change=hook), changes
    else:
        server: SeaweedFS = request.getfixturevalue("seaweedfs")
        yield server.storage(on_change=hook), changes


def no_directories_left(storage: Storage, directory: str) -> bool:
    """``directory`` holds nothing. An object store has no directories, only key prefixes, so there
    the check is that no object is left: SeaweedFS keeps a filer directory a deletion emptied and
    lists it as a common prefix (S3 itself does not), which every reader of a listing tolerates."""
    if has_temps(storage):
        return list(storage.scan(directory)) == []
    return list(walk_files(storage, directory)) == []


def has_temps(storage: Storage) -> bool:
    """Whether a write in flight shows as a temporary name (not on an object store)."""
    return storage.temp_names


def published(storage: Storage) -> dict[str, bytes]:
    return {path: b"".join(storage.read(path)) for path in walk_files(storage)}


def temps(storage: Storage, directory: str) -> list[str]:
    return [e.name for e in storage.scan(directory) if layout.is_temp_name(e.name)]


def test_a_download_is_invisible_until_commit_then_visible_whole(backend: tuple[Storage, Changes]) -> None:
    storage, changes = backend

    async def main() -> None:
        async with storage.publishing():
            writer = storage.open_async_writer("packages/ab/x-1.whl")
            await writer.write(b"x" * 300_000)  # past FileStorage's in-memory buffer: a temp file exists
            await writer.write(b"y")
            assert storage.size("packages/ab/x-1.whl") is None
            assert storage.files_in("packages/ab") == []
            assert len(temps(storage, "packages/ab")) == (1 if has_temps(storage) else 0)
            assert changes == []
            await writer.commit()
            writer.abort()  # after commit: nothing happens

    anyio.run(main, backend="asyncio")
    assert storage.size("packages/ab/x-1.whl") == 300_001
    assert b"".join(storage.read("packages/ab/x-1.whl")) == b"x" * 300_000 + b"y"
    assert temps(storage, "packages/ab") == []
    assert changes == [("packages/ab/x-1.whl", False)]


def test_an_aborted_download_leaves_nothing_and_tells_nobody(backend: tuple[Storage, Changes]) -> None:
    storage, changes = backend

    async def main() -> None:
        writer = storage.open_async_writer("packages/ab/x-1.whl")
        await writer.write(b"x" * 300_000)
        writer.abort()
        writer.abort()

    anyio.run(main, backend="asyncio")
    assert storage.size("packages/ab/x-1.whl") is None
    assert published(storage) == {}
    assert changes == []


def test_pages_are_published_in_order_and_each_change_is_told(backend: tuple[Storage, Changes]) -> None:
    storage, changes = backend
    pages = [("simple/x/index.v1_json", b"{}"), ("simple/x/index.v1_html", b"<a>"), ("simple/x/index.html", b"<a>")]

    async def main() -> None:
        async with storage.publishing():
            await storage.write_pages(pages)

    anyio.run(main, backend="asyncio")
    assert published(storage) == dict(pages)
    assert changes == [(path, False) for path, _ in pages]
    assert storage.files_in("simple/x") == sorted(path for path, _ in pages)


def test_write_atomic_replaces_and_delete_prunes_and_always_tells(backend: tuple[Storage, Changes]) -> None:
    storage, changes = backend
    storage.write_atomic("simple/index.html", [b"old"])
    storage.write_atomic("simple/index.html", [b"n", b"ew"])
    storage.write_atomic("packages/ab/cd/x.whl", [b"x"])
    assert published(storage) == {"simple/index.html": b"new", "packages/ab/cd/x.whl": b"x"}
    storage.delete("packages/ab/cd/x.whl")
    storage.delete("packages/ab/cd/never.whl")  # missing is fine, and still recorded
    assert no_directories_left(storage, "packages")  # the directories it left empty are gone
    assert changes[-2:] == [("packages/ab/cd/x.whl", True), ("packages/ab/cd/never.whl", True)]


def test_a_failing_source_publishes_nothing(backend: tuple[Storage, Changes]) -> None:
    storage, changes = backend

    def chunks() -> Iterator[bytes]:
        yield b"half"
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError):
        storage.write_atomic("simple/index.html", chunks())
    assert storage.size("simple/index.html") is None
    assert temps(storage, "simple") == []
    assert changes == []


def test_scan_lists_files_directories_and_temps_and_remove_temps_clears_them(
    backend: tuple[Storage, Changes],
) -> None:
    storage, _ = backend
    storage.write_atomic("packages/a/one.whl", [b"12345"])
    storage.write_atomic("packages/a/sub/two.whl", [b"12"])
    leftover = storage.open_async_writer("packages/a/three.whl")
    anyio.run(leftover.write, b"z" * 300_000, backend="asyncio")  # an interrupted run's temp file
    found = sorted(storage.scan("packages/a"), key=lambda e: e.name)
    assert [(e.name, e.is_dir) for e in found if not layout.is_temp_name(e.name)] == [
        ("one.whl", False),
        ("sub", True),
    ]
    assert Entry("one.whl", False, 5) in found
    assert len(temps(storage, "packages/a")) == (1 if has_temps(storage) else 0)
    assert storage.files_in("packages/a") == ["packages/a/one.whl"]
    assert storage.remove_temps("packages/a") == (1 if has_temps(storage) else 0)
    assert temps(storage, "packages/a") == []
    assert list(storage.scan("nowhere")) == []
    assert list(walk_files(storage)) == ["packages/a/one.whl", "packages/a/sub/two.whl"]


def test_move_in_consumes_the_source_once(backend: tuple[Storage, Changes], tmp_path: Path) -> None:
    storage, changes = backend
    staged = tmp_path / "staged"
    staged.write_bytes(b"bundle bytes")
    assert storage.move_in("packages/ab/x.whl", staged) is True
    assert not staged.exists()
    assert published(storage) == {"packages/ab/x.whl": b"bundle bytes"}
    assert storage.move_in("packages/ab/x.whl", staged) is False  # already moved by an earlier attempt
    assert changes == [("packages/ab/x.whl", False)]


def test_open_seekable_gives_random_access(backend: tuple[Storage, Changes]) -> None:
    storage, _ = backend
    body = BytesIO()
    with zipfile.ZipFile(body, "w") as wheel:
        wheel.writestr("x-1.dist-info/METADATA", "Name: x\n")
    storage.write_atomic("packages/x-1-py3-none-any.whl", [body.getvalue()])
    with storage.open_seekable("packages/x-1-py3-none-any.whl") as handle, zipfile.ZipFile(handle) as wheel:
        assert wheel.read("x-1.dist-info/METADATA") == b"Name: x\n"
    with pytest.raises(OSError):
        storage.open_seekable("packages/missing.whl")


def test_reading_what_is_not_there(backend: tuple[Storage, Changes]) -> None:
    storage, _ = backend
    assert storage.size("packages/none.whl") is None
    with pytest.raises(EnvironmentFault):
        b"".join(storage.read("packages/none.whl"))


@pytest.mark.parametrize("path", ["../etc/passwd", "packages//x", "packages/./x", "a\\b", "a\x00b", ""])
def test_unsafe_paths_are_refused(backend: tuple[Storage, Changes], path: str) -> None:
    storage, changes = backend
    with pytest.raises(UnsafeName):
        storage.write_atomic(path, [b"x"])
    with pytest.raises(UnsafeName):
        storage.delete(path)
    assert changes == []
