"""Airgap transfer: a connected mirror exports bundles, an offline directory imports them, the trees stay identical."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mirror.cli import main
from mirror.errors import EXIT_CONFIG, EXIT_OK
from tests.conftest import Mirror, StaticServer, check_tree, page_files, snapshot
from tests.fakepypi import FakePyPI


class Offline:
    """An offline mirror directory: its own config (no upstream) and state."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.config = root / "mirror.toml"
        self.config.write_text('[mirror]\ndirectory = "m"\ndiff-format = "both"\n')

    @property
    def web(self) -> Path:
        return self.root / "m" / "web"

    def run(self, *args: str) -> int:
        return main(["--config", str(self.config), *args])

    def import_(self, *paths: Path) -> int:
        return self.run("import", *map(str, paths))

    def tree(self) -> dict[str, str]:
        return snapshot(self.web) if self.web.exists() else {}


def connected(root: Path, upstream: FakePyPI) -> Mirror:
    root.mkdir(parents=True, exist_ok=True)
    mirror = Mirror(root, root / "mirror.toml")
    mirror.write_config(upstream.simple_url)
    return mirror


def export(mirror: Mirror, outdir: Path, *args: str) -> Path:
    """Run ``mirror export`` and return the manifest of the bundle it wrote."""
    before = set(outdir.glob("*.manifest.jsonl"))
    assert mirror.run("export", str(outdir), *args) == EXIT_OK
    (new,) = set(outdir.glob("*.manifest.jsonl")) - before
    return new


def header(manifest: Path) -> dict[str, Any]:
    head = json.loads(manifest.read_text().splitlines()[0])
    assert isinstance(head, dict)
    return head


STEPS: list[tuple[str, list[Callable[[FakePyPI], object]]]] = [
    ("first releases", [lambda up: up.add_release("demo", "1.0"), lambda up: up.add_release("dep", "2.0")]),
    ("new release and a yank", [lambda up: up.add_release("demo", "1.1"), lambda up: up.yank("demo", "1.0", "broken")]),
    (
        "a removed file and a new project",
        [lambda up: up.remove_file("dep", "dep-2.0.tar.gz"), lambda up: up.add_release("new", "0.1")],
    ),
    ("a removed project and an unyank", [lambda up: up.remove_project("dep"), lambda up: up.unyank("demo", "1.0")]),
    ("a quarantine", [lambda up: up.set_status("new", "quarantined", "malware")]),
]


def test_a_chain_of_bundles_keeps_the_offline_tree_identical(upstream: FakePyPI, tmp_path: Path) -> None:
    online = connected(tmp_path / "online", upstream)
    offline = Offline(tmp_path / "offline")
    bundles = tmp_path / "usb"
    options: list[tuple[str, ...]] = [(), (), ("--compress", "gzip"), ("--split-size", "64K"), ()]
    for (step, changes), args in zip(STEPS, options, strict=True):
        for change in changes:
            change(upstream)
        assert online.run("sync") == EXIT_OK, step
        manifest = export(online, bundles, *args)
        assert offline.import_(manifest) == EXIT_OK, step
        assert offline.tree() == snapshot(online.web), step
        check_tree(offline.web)
    # A second offline site that gets the whole chain at once, from the directory, ends up the same.
    late = Offline(tmp_path / "late")
    assert late.import_(bundles) == EXIT_OK
    assert late.tree() == snapshot(online.web)
    # Nothing changed since the last export: no bundle.
    assert online.run("export", str(bundles)) == EXIT_OK
    assert len(list(bundles.glob("*.manifest.jsonl"))) == len(STEPS)


def imported_pair(upstream: FakePyPI, tmp_path: Path) -> tuple[Mirror, Offline]:
    """A connected mirror of demo 1.0 and dep 2.0, and an offline one that imported its first bundle."""
    online = connected(tmp_path / "online", upstream)
    upstream.add_release("demo", "1.0")
    upstream.add_release("dep", "2.0")
    assert online.run("sync") == EXIT_OK
    offline = Offline(tmp_path / "offline")
    assert offline.import_(export(online, tmp_path / "usb")) == EXIT_OK
    return online, offline


def test_offline_state_serves_status_and_chaining(
    upstream: FakePyPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    online, offline = imported_pair(upstream, tmp_path)
    capsys.readouterr()
    assert online.run("status", "--json") == EXIT_OK
    theirs = json.loads(capsys.readouterr().out)
    assert offline.run("status", "--json") == EXIT_OK
    ours = json.loads(capsys.readouterr().out)
    assert {k: ours[k] for k in ("serial", "projects", "files", "bytes")} == {
        k: theirs[k] for k in ("serial", "projects", "files", "bytes")
    }
    # The offline tree is a normal mirror: served statically, another mirror syncs from it.
    downstream = connected(tmp_path / "down", upstream)
    with StaticServer(offline.web) as static:
        downstream.write_config(static.simple_url)
        assert downstream.run("sync") == EXIT_OK
    check_tree(downstream.web)
    assert page_files(downstream.web, "demo").keys() == page_files(offline.web, "demo").keys()
    # ...and it can pass the tree on: its own export feeds a third site.
    relay = Offline(tmp_path / "relay")
    assert relay.import_(export(Mirror(offline.root, offline.config), tmp_path / "usb2")) == EXIT_OK
    assert relay.tree() == offline.tree()


def test_diff_files_list_each_run_with_markers(upstream: FakePyPI, tmp_path: Path) -> None:
    online = connected(tmp_path / "online", upstream)
    online.write_config(upstream.simple_url, **{"diff-format": "both", "diff-keep": 2})
    diffs = online.root / "m" / "diffs"
    upstream.add_release("demo", "1.0")
    upstream.add_release("dep", "2.0")
    assert online.run("sync") == EXIT_OK
    (first,) = diffs.glob("*.diff")
    assert re.fullmatch(rf"\d{{8}}T\d{{6}}Z_serial-0-{upstream.serial}_\d+\.diff", first.name)
    lines = first.read_text().splitlines()
    assert {line.split("\t")[0] for line in lines} == {"A"}
    assert {line.split("\t")[1] for line in lines} == set(snapshot(online.web))

    assert online.run("sync") == EXIT_OK  # nothing changed: no diff file
    assert len(list(diffs.glob("*.diff"))) == 1

    upstream.add_release("demo", "1.1")
    upstream.remove_project("dep")
    assert online.run("sync") == EXIT_OK
    second = max(diffs.glob("*.diff"))
    entries = {path: mark for mark, path in (line.split("\t") for line in second.read_text().splitlines())}
    assert entries["simple/demo/index.v1_json"] == "M"
    assert entries["simple/dep/index.html"] == "D"
    assert entries["simple/index.v1_json"] == "M"
    assert [m for p, m in entries.items() if p.endswith("demo-1.1-py3-none-any.whl")] == ["A"]
    banders = second.with_suffix(".files").read_text().splitlines()
    web = online.web
    assert set(banders) == {str(web / p) for p, m in entries.items() if m != "D"}
    assert all(Path(p).is_file() for p in banders)

    upstream.add_release("demo", "1.2")
    assert online.run("sync") == EXIT_OK
    assert sorted(p.name for p in diffs.glob("*.diff")) == sorted(
        [second.name, max(diffs.glob("*.diff")).name]
    )  # pruned to the two newest runs, both formats
    assert len(list(diffs.glob("*.files"))) == 2


def test_a_full_bundle_resets_the_offline_tree(upstream: FakePyPI, tmp_path: Path) -> None:
    online, offline = imported_pair(upstream, tmp_path)
    upstream.remove_project("dep")
    upstream.add_release("demo", "1.1")
    assert online.run("sync") == EXIT_OK
    export(online, tmp_path / "lost")  # never reaches the offline side
    full = export(online, tmp_path / "usb", "--full")
    assert header(full)["full"] is True
    assert offline.import_(full) == EXIT_OK
    assert offline.tree() == snapshot(online.web)  # dep's pages and files are gone too
    assert not (offline.web / "simple" / "dep").exists()


def test_since_serial_continues_from_an_earlier_export(
    upstream: FakePyPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    online = connected(tmp_path / "online", upstream)
    upstream.add_release("demo", "1.0")
    assert online.run("sync") == EXIT_OK
    first = export(online, tmp_path / "usb")
    serial = upstream.serial
    upstream.add_release("demo", "1.1")
    assert online.run("sync") == EXIT_OK
    export(online, tmp_path / "lost")
    upstream.yank("demo", "1.0")
    assert online.run("sync") == EXIT_OK
    again = export(online, tmp_path / "usb", "--since", str(serial))
    assert header(again)["previous"] == header(first)["id"]
    offline = Offline(tmp_path / "offline")
    assert offline.import_(tmp_path / "usb") == EXIT_OK
    assert offline.tree() == snapshot(online.web)
    capsys.readouterr()
    assert online.run("export", str(tmp_path / "usb"), "--since", str(serial - 1)) == EXIT_CONFIG
    assert "use --full" in capsys.readouterr().err


def test_export_refuses_an_outdir_inside_the_mirror(
    upstream: FakePyPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    online = connected(tmp_path / "online", upstream)
    upstream.add_release("demo", "1.0")
    assert online.run("sync") == EXIT_OK
    capsys.readouterr()
    assert online.run("export", str(online.web / "bundles")) == EXIT_CONFIG
    assert "inside the mirror directory" in capsys.readouterr().err
    assert not (online.web / "bundles").exists()
    assert online.run("export", str(tmp_path / "usb"), "--split-size", "1X") == EXIT_CONFIG
