"""kill -9 at any moment, then a rerun, converges to exactly the tree a clean run makes."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

from mirror._config import load as load_config
from mirror._state import STATE_DB, State
from mirror.errors import EXIT_OK
from mirror.storage.fs import FileStorage
from mirror.sync import recovery
from mirror.sync.engine import TEMP_JOURNAL
from mirror.sync.journal import TempJournal
from tests.conftest import Mirror, check_tree, snapshot
from tests.fakepypi import FakePyPI

TRIALS = 16


def populate(up: FakePyPI, projects: int, version: str) -> None:
    for i in range(projects):
        up.add_release(f"pkg{i:02d}", version, payload_size=20_000 + 1000 * i)


def start(mirror: Mirror) -> subprocess.Popen[str]:
    return mirror.start_process("--quiet", "sync", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def clean_tree(up: FakePyPI, root: Path) -> dict[str, str]:
    reference = Mirror(root, root / "mirror.toml")
    root.mkdir()
    reference.write_config(up.simple_url)
    assert reference.run("sync") == EXIT_OK
    return snapshot(reference.web)


def test_sigkill_at_random_points_then_rerun_converges(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    with FakePyPI() as up:
        # Slow file responses stretch the run so kills land in every phase, not only at the start.
        populate(up, 30, "1.0")
        mirror = Mirror(tmp_path / "m0", tmp_path / "m0" / "mirror.toml")
        mirror.root.mkdir()
        mirror.write_config(up.simple_url)
        killed_mid_run = 0
        for trial in range(TRIALS):
            if trial == TRIALS // 2:
                # Halfway through, the upstream moves on: new releases, removals, a yank, a deleted project.
                populate(up, 24, "2.0")
                up.remove_release("pkg03", "1.0")
                up.yank("pkg04", "1.0", "bad")
                up.remove_project("pkg29")
            elif trial:
                # The upstream keeps moving, so later runs still have work for the kills to land in.
                populate(up, 8, f"1.{trial}")
            up.faults.rates(slow=1.0, slow_delay=0.05, seed=trial)
            process = start(mirror)
            delay = rng.uniform(0.3, 1.2)  # a first full run takes about 1.7 s here, later ones less
            time.sleep(delay)
            killed_mid_run += process.poll() is None
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            check_tree(mirror.web, allow_temps=True)
            if trial % 3 == 2:
                # verify on a freshly killed tree: state may lag the tree by one batch, never the other way.
                assert mirror.run("verify", "--repair", "--delete-orphans") == EXIT_OK
                check_tree(mirror.web)
        # The trials only prove something if most kills hit a run in progress.
        assert killed_mid_run >= TRIALS * 3 // 4, f"only {killed_mid_run} of {TRIALS} kills landed mid-run"
        up.faults.clear()
        assert mirror.run("sync") == EXIT_OK
        check_tree(mirror.web)
        assert snapshot(mirror.web) == clean_tree(up, tmp_path / "reference")
        assert mirror.run("verify", "--hashes") == EXIT_OK  # state and tree agree exactly


def test_files_published_but_never_recorded_leave_with_their_project(tmp_path: Path) -> None:
    """A kill after a rename but before the state commit leaves files state does not know.

    The journal names the directories the killed run worked in; the next run removes what
    state does not know there, so a project deleted upstream meanwhile leaves nothing behind.
    """
    with FakePyPI() as up:
        populate(up, 2, "1.0")
        mirror = Mirror(tmp_path, tmp_path / "mirror.toml")
        mirror.write_config(up.simple_url)
        assert mirror.run("sync") == EXIT_OK
        reference = snapshot(mirror.web)
        # What a killed run leaves: a verified file and a page of a project state never recorded.
        stray_file = mirror.web / "packages" / "ab" / "cd" / "ef" / "gone-1.0-py3-none-any.whl"
        stray_file.parent.mkdir(parents=True)
        stray_file.write_bytes(b"verified but unrecorded")
        stray_page = mirror.web / "simple" / "gone" / "index.html"
        stray_page.parent.mkdir(parents=True)
        stray_page.write_text("<html></html>")
        journal = mirror.root / "m" / "state" / "temp-dirs.journal"
        journal.write_text("packages/ab/cd/ef\nsimple/gone\nsimple/pkg00\n")
        assert mirror.run("sync", "--force-check") == EXIT_OK
        assert snapshot(mirror.web) == reference
        assert not (mirror.web / "packages" / "ab").exists()
        assert not journal.exists()


def test_recovery_never_removes_a_file_a_published_page_links(tmp_path: Path) -> None:
    """What a run killed after publishing a page, before committing its files, leaves must stay served.

    The tree is the one a completed run made, the state the one before it (its commit never
    happened), and the journal names the directories the run worked in. Right after recovery, before
    anything is republished, every page's links resolve; the rerun then converges.
    """
    with FakePyPI() as up:
        populate(up, 2, "1.0")
        before = Mirror(tmp_path / "before", tmp_path / "before" / "mirror.toml")
        before.root.mkdir()
        before.write_config(up.simple_url)
        assert before.run("sync") == EXIT_OK
        old_tree = snapshot(before.web)
        up.add_release("pkg00", "2.0", payload_size=5000)
        up.add_release("newproj", "1.0")
        after = tmp_path / "after"
        shutil.copytree(before.root, after)
        assert before.run("sync") == EXIT_OK
        new_tree = snapshot(before.web)
        # The killed run's leftovers: its whole tree, the state from before it, and its journal.
        shutil.rmtree(after / "m" / "web")
        shutil.copytree(before.web, after / "m" / "web")
        written = sorted(p for p in new_tree if old_tree.get(p) != new_tree[p])
        assert "simple/pkg00/index.v1_json" in written
        dirs = sorted({p.rpartition("/")[0] for p in written})
        (after / "m" / "state" / TEMP_JOURNAL).write_text("".join(f"{d}\n" for d in dirs))
        config = load_config(after / "mirror.toml")
        state = State(config.state_dir / STATE_DB)
        try:
            done = recovery.recover(TempJournal(config.state_dir / TEMP_JOURNAL).dirs(), FileStorage(config.web), state)
            state.commit()
        finally:
            state.close()
        assert done.adopted >= 2
        check_tree(after / "m" / "web")  # the moment the bug showed: pages linking files recovery removed
        assert snapshot(after / "m" / "web") == new_tree
        resumed = Mirror(after, after / "mirror.toml")
        assert resumed.run("sync") == EXIT_OK
        assert snapshot(resumed.web) == new_tree
        assert resumed.run("verify") == EXIT_OK
