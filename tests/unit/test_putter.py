"""The file writer process: small files published through a real child process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from mirror.core import layout
from mirror.errors import EnvironmentFault
from mirror.storage.fs import FileStorage


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_downloads_and_pages_are_published_with_their_directories(tmp_path: Path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    changes: list[tuple[str, bool]] = []
    storage = FileStorage(web, on_change=lambda path, deleted: changes.append((path, deleted)))

    async def main() -> None:
        async with storage.publishing():
            writer = storage.open_async_writer("packages/ab/cd/ef/demo-1.0-py3-none-any.whl")
            await writer.write(b"wheel ")
            await writer.write(b"bytes")
            await writer.commit()
            await storage.write_pages([("simple/demo/index.v1_json", b"{}"), ("simple/demo/index.html", b"<html>")])

    anyio.run(main)
    assert tree(web) == {
        "packages/ab/cd/ef/demo-1.0-py3-none-any.whl": b"wheel bytes",
        "simple/demo/index.v1_json": b"{}",
        "simple/demo/index.html": b"<html>",
    }
    assert changes == [
        ("packages/ab/cd/ef/demo-1.0-py3-none-any.whl", False),
        ("simple/demo/index.v1_json", False),
        ("simple/demo/index.html", False),
    ]


def test_a_failed_page_stops_the_rest_of_its_set(tmp_path: Path) -> None:
    """Pages go in order; after a failure the later ones are not written (no half-replaced set)."""
    web = tmp_path / "web"
    (web / "simple/demo/index.v1_html").mkdir(parents=True)  # a directory where a page must go: rename fails
    storage = FileStorage(web)

    async def main() -> None:
        async with storage.publishing():
            await storage.write_pages(
                [
                    ("simple/demo/index.v1_json", b"{}"),
                    ("simple/demo/index.v1_html", b"<html>"),
                    ("simple/demo/index.html", b"<html>"),
                ]
            )

    with pytest.raises(EnvironmentFault, match=r"index\.v1_html"):
        anyio.run(main)
    names = sorted(p.name for p in (web / "simple/demo").iterdir())
    assert names == ["index.v1_html", "index.v1_json"]  # the directory, the first page; no temp file, no third page
    assert (web / "simple/demo/index.v1_html").is_dir()


def test_a_large_download_streams_from_the_event_loop(tmp_path: Path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    storage = FileStorage(web)
    chunk = os.urandom(1 << 16)

    async def main() -> None:
        async with storage.publishing():
            writer = storage.open_async_writer("packages/big/file.whl")
            for _ in range(8):  # 512 KiB: past the in-memory limit
                await writer.write(chunk)
            await writer.commit()

    anyio.run(main)
    assert tree(web) == {"packages/big/file.whl": chunk * 8}


def test_a_dead_writer_process_fails_the_run_in_one_line(tmp_path: Path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    storage = FileStorage(web)

    async def main() -> None:
        async with storage.publishing():
            await storage.write_pages([("simple/a/index.html", b"a")])
            putter = storage._putter
            assert putter is not None and putter._transport is not None
            os.kill(putter._transport.get_pid(), signal.SIGKILL)
            with anyio.fail_after(10):
                while putter._transport.get_returncode() is None:
                    await anyio.sleep(0.01)
            await storage.write_pages([("simple/b/index.html", b"b")])

    with pytest.raises(EnvironmentFault, match="file writer process stopped unexpectedly"):
        anyio.run(main)
    assert tree(web) == {"simple/a/index.html": b"a"}


def test_without_publishing_or_with_fsync_files_are_written_in_process(tmp_path: Path) -> None:
    for fsync in (False, True):
        web = tmp_path / f"web-{fsync}"
        web.mkdir()
        storage = FileStorage(web, fsync=fsync)

        async def main(storage: FileStorage = storage, publishing: bool = fsync) -> None:
            if publishing:
                async with storage.publishing():
                    await storage.write_pages([("simple/a/index.html", b"a")])
                assert storage._putter is None
            else:
                await storage.write_pages([("simple/a/index.html", b"a")])

        anyio.run(main)
        assert tree(web) == {"simple/a/index.html": b"a"}


async def _cancelled_mid_put(storage: FileStorage, cancel: Callable[[], object], reached: list[str]) -> None:
    """Publish a file while the writer process is stopped, cancel the caller meanwhile, then let it go on."""
    await storage.write_pages([("simple/a/index.html", b"a")])  # starts the writer process
    putter = storage._putter
    assert putter is not None and putter._transport is not None
    pid = putter._transport.get_pid()
    os.kill(pid, signal.SIGSTOP)
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, cancel)
    loop.call_later(0.3, os.kill, pid, signal.SIGCONT)
    writer = storage.open_async_writer("packages/ab/cd/ef/demo-1.0-py3-none-any.whl")
    await writer.write(b"wheel")
    await writer.commit()  # returns: the file was published, and its caller learns it
    reached.append("committed")
    await asyncio.sleep(0)  # the deferred cancellation lands at the next checkpoint
    reached.append("past the checkpoint")


@pytest.mark.parametrize("way", ["anyio", "asyncio"])
def test_a_cancelled_caller_still_learns_what_was_published(tmp_path: Path, way: str) -> None:
    """Cancelled while the writer process works: the put completes and is recorded, the
    cancellation then lands at the caller's next checkpoint, for an anyio scope (which still
    recognises it as its own) and for a plain asyncio task alike."""
    changes: list[str] = []
    storage = FileStorage(tmp_path, on_change=lambda path, deleted: changes.append(path))
    reached: list[str] = []

    async def with_anyio() -> None:
        async with storage.publishing():
            with anyio.CancelScope() as scope:
                await _cancelled_mid_put(storage, scope.cancel, reached)
            assert scope.cancelled_caught
            await anyio.sleep(0)  # the scope took its cancellation back: nothing is left pending
            reached.append("after the scope")

    async def with_asyncio() -> None:
        async with storage.publishing():
            task = asyncio.create_task(_cancelled_mid_put(storage, lambda: task.cancel(), reached))
            with pytest.raises(asyncio.CancelledError):
                await task
            assert task.cancelled()

    if way == "anyio":
        anyio.run(with_anyio)
        assert reached == ["committed", "after the scope"]
    else:
        asyncio.run(with_asyncio())
        assert reached == ["committed"]
    assert changes[-1] == "packages/ab/cd/ef/demo-1.0-py3-none-any.whl"
    assert (tmp_path / "packages/ab/cd/ef/demo-1.0-py3-none-any.whl").read_bytes() == b"wheel"


PARENT = """
import anyio, sys
from pathlib import Path
from mirror.storage.fs import FileStorage

async def main():
    storage = FileStorage(Path(sys.argv[1]))
    async with storage.publishing():
        await storage.write_pages([("simple/a/index.html", b"a")])
        print(storage._putter._transport.get_pid(), flush=True)
        await anyio.sleep(60)

anyio.run(main)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie nobody reaps (a container's init) is dead too


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_writer_process_ends_with_a_killed_parent(tmp_path: Path) -> None:
    """kill -9 of `mirror sync`: its writer process writes nothing more and exits (Ctrl-C alone does not end it)."""
    web = tmp_path / "web"
    web.mkdir()
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(web)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.kill(child, signal.SIGINT)  # Ctrl-C reaches the whole group: the parent decides, the writer stays
    time.sleep(0.2)
    assert _alive(child)
    parent.kill()
    parent.communicate()  # also closes its stdout pipe
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(child)
    assert not [p for p in web.rglob("*") if layout.is_temp_name(p.name)]


@pytest.mark.parametrize("mode", ["child", "inline", "threads"])
def test_a_page_with_the_bytes_of_the_one_before_is_a_hard_link(tmp_path: Path, mode: str) -> None:
    """index.html and index.v1_html are the same bytes: one inode, and a later rewrite replaces both names."""
    web = tmp_path / "web"
    web.mkdir()
    changes: list[tuple[str, bool]] = []
    storage = FileStorage(
        web, on_change=lambda path, deleted: changes.append((path, deleted)), threads=mode == "threads"
    )

    async def write(html: bytes, json: bytes) -> None:
        pages = [
            ("simple/demo/index.v1_json", json),
            ("simple/demo/index.v1_html", html),
            ("simple/demo/index.html", html),
        ]
        await storage.write_pages(pages)

    async def twice() -> None:
        # One writer process for both writes: it must go on serving after a link.
        async with storage.publishing() if mode == "child" else contextlib.nullcontext():
            await write(b"<html>1</html>", b"{}")
            inodes.append(check_linked())
            await write(b"<html>2</html>", b"{}")
            inodes.append(check_linked())

    def check_linked() -> int:
        v1_html, html = web / "simple/demo/index.v1_html", web / "simple/demo/index.html"
        assert os.path.samefile(v1_html, html) and v1_html.stat().st_nlink == 2
        assert not os.path.samefile(web / "simple/demo/index.v1_json", html)
        return html.stat().st_ino

    inodes: list[int] = []
    anyio.run(twice)
    assert inodes[0] != inodes[1]
    assert tree(web) == {
        "simple/demo/index.v1_json": b"{}",
        "simple/demo/index.v1_html": b"<html>2</html>",
        "simple/demo/index.html": b"<html>2</html>",
    }
    assert changes[-3:] == [
        (p, False) for p in ("simple/demo/index.v1_json", "simple/demo/index.v1_html", "simple/demo/index.html")
    ]
    assert not [p for p in (web / "simple/demo").iterdir() if p.name.endswith(layout.TEMP_SUFFIX)]


def test_where_hard_links_fail_the_page_is_copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system without hard links (some network and FUSE mounts answer EPERM): the same bytes, written."""
    web = tmp_path / "web"
    web.mkdir()

    def no_links(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    html = b"<html>demo</html>"
    anyio.run(FileStorage(web).write_pages, [("simple/demo/index.v1_html", html), ("simple/demo/index.html", html)])
    assert tree(web) == {"simple/demo/index.v1_html": html, "simple/demo/index.html": html}
    assert not os.path.samefile(web / "simple/demo/index.v1_html", web / "simple/demo/index.html")
