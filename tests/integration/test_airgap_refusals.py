"""Every refused import leaves the offline tree exactly as it was; an interrupted import resumes."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mirror.errors import EXIT_CONFIG, EXIT_OK
from tests.conftest import ROOT, Mirror, check_tree, snapshot
from tests.fakepypi import FakePyPI
from tests.integration.test_airgap import Offline, connected, export, header


@dataclass
class Chain:
    online: Mirror
    offline: Offline
    bundles: list[Path]
    """Three manifests: a full bundle, then two incremental ones (the second split into parts)."""

    def parts(self, index: int) -> list[Path]:
        manifest = self.bundles[index]
        return [manifest.with_name(p["name"]) for p in header(manifest)["parts"]]


@pytest.fixture
def chain(upstream: FakePyPI, tmp_path: Path) -> Chain:
    online = connected(tmp_path / "online", upstream)
    usb = tmp_path / "usb"
    upstream.add_release("demo", "1.0")
    upstream.add_release("dep", "2.0")
    assert online.run("sync") == EXIT_OK
    first = export(online, usb)
    upstream.add_release("demo", "1.1", payload_size=300_000)
    upstream.remove_project("dep")
    assert online.run("sync") == EXIT_OK
    second = export(online, usb, "--split-size", "64K")
    upstream.add_release("demo", "1.2")
    assert online.run("sync") == EXIT_OK
    third = export(online, usb)
    offline = Offline(tmp_path / "offline")
    assert offline.import_(first) == EXIT_OK
    return Chain(online, offline, [first, second, third])


def refused(chain: Chain, capsys: pytest.CaptureFixture[str], *paths: Path) -> str:
    """Import ``paths``, expect a refusal that changes nothing, and return its one line."""
    before = chain.offline.tree()
    capsys.readouterr()
    assert chain.offline.import_(*paths) == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mirror: error: ")
    assert chain.offline.tree() == before
    staging = chain.offline.root / "m" / "state" / "import"
    assert not staging.exists() or not any(staging.iterdir())
    return err


def rewrite_part_in_manifest(manifest: Path, part: Path) -> None:
    """What a careful forger does: make the manifest's part list agree with the altered part."""
    lines = manifest.read_text().splitlines(keepends=True)
    head = json.loads(lines[0])
    for entry in head["parts"]:
        if entry["name"] == part.name:
            entry["size"] = part.stat().st_size
            entry["sha256"] = hashlib.sha256(part.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(head) + "\n" + "".join(lines[1:]))


def flip_byte_in_file_data(part: Path) -> None:
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the middle of a 64K part of a 300 KB wheel is file content
    part.write_bytes(bytes(data))


def test_a_tampered_file_is_refused(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    part = chain.parts(1)[2]
    flip_byte_in_file_data(part)
    rewrite_part_in_manifest(chain.bundles[1], part)
    err = refused(chain, capsys, chain.bundles[1])
    assert "does not match its sha256 (altered)" in err and "demo-1.1" in err


def test_a_tampered_part_is_refused(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    part = chain.parts(1)[1]
    flip_byte_in_file_data(part)
    assert f"part {part.name} does not match its sha256" in refused(chain, capsys, chain.bundles[1])


def test_a_truncated_part_is_refused(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    part = chain.parts(1)[-1]
    part.write_bytes(part.read_bytes()[:-700])
    assert f"part {part.name} is" in refused(chain, capsys, chain.bundles[1])
    # Cut inside file data, with the manifest made to agree: the tar stream itself no longer checks out.
    middle = chain.parts(1)[2]
    middle.write_bytes(middle.read_bytes()[: middle.stat().st_size // 2])
    rewrite_part_in_manifest(chain.bundles[1], middle)
    rewrite_part_in_manifest(chain.bundles[1], part)
    assert "bundle " + str(header(chain.bundles[1])["id"]) in refused(chain, capsys, chain.bundles[1])


def test_a_missing_part_is_refused(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    parts = chain.parts(1)
    assert len(parts) > 3
    parts[2].unlink()
    err = refused(chain, capsys, parts[0])  # named by one of its parts
    assert f"missing its part {parts[2].name}" in err


def test_a_skipped_bundle_is_refused_naming_the_one_needed(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    needed = header(chain.bundles[1])["id"]
    assert f"needs bundle {needed} imported first" in refused(chain, capsys, chain.bundles[2])
    # Given with an older bundle the tree lacks too, still nothing of the set is applied.
    fresh = Offline(chain.offline.root.parent / "fresh")
    chain.offline = fresh
    assert "needs bundle" in refused(chain, capsys, chain.bundles[0], chain.bundles[2])


def test_the_same_bundle_twice_is_a_no_op(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    offline = chain.offline
    assert offline.import_(chain.parts(1)[0]) == EXIT_OK
    after = offline.tree()
    diffs = sorted((offline.root / "m" / "diffs").iterdir())
    capsys.readouterr()
    assert offline.import_(chain.bundles[1], chain.bundles[0]) == EXIT_OK
    assert "already imported" in capsys.readouterr().err
    assert offline.tree() == after
    assert sorted((offline.root / "m" / "diffs").iterdir()) == diffs
    assert offline.import_(chain.bundles[2]) == EXIT_OK
    assert offline.tree() == snapshot(chain.online.web)


def test_import_refuses_a_config_with_an_upstream(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert chain.online.run("import", str(chain.bundles[1])) == EXIT_CONFIG
    assert "import is for an offline mirror" in capsys.readouterr().err


def test_a_bundle_from_another_mirror_is_refused(
    chain: Chain, upstream: FakePyPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = connected(tmp_path / "other", upstream)
    assert other.run("sync") == EXIT_OK
    assert "comes from another mirror" in refused(chain, capsys, export(other, tmp_path / "other-usb"))


def test_an_interrupted_import_resumes(chain: Chain, upstream: FakePyPI, tmp_path: Path) -> None:
    for i in range(12):
        upstream.add_release(f"bulk{i:02d}", "1.0", payload_size=1_500_000)
    assert chain.online.run("sync") == EXIT_OK
    big = export(chain.online, tmp_path / "usb", "--split-size", "4M")
    rng = random.Random(6)
    pristine = chain.offline.root.parent / "pristine"
    shutil.copytree(chain.offline.root, pristine)
    paths = [*map(str, chain.bundles[1:]), str(big)]

    def start(offline: Offline) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "mirror", "--quiet", "--config", str(offline.config), "import", *paths]
        return subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)

    shutil.copytree(pristine, pristine.parent / "timing")
    began = time.monotonic()
    assert start(Offline(pristine.parent / "timing")).wait() == EXIT_OK
    whole = time.monotonic() - began
    interrupted = 0
    for trial in range(5):
        site = chain.offline.root.parent / f"trial{trial}"
        shutil.copytree(pristine, site)
        offline = Offline(site)
        proc = start(offline)
        time.sleep(rng.uniform(0.2, 0.95) * whole)
        proc.send_signal(signal.SIGKILL)
        interrupted += proc.wait() == -signal.SIGKILL
        check_tree(offline.web, allow_temps=True)
        assert offline.import_(*chain.bundles[1:], big) == EXIT_OK, f"trial {trial}"
        assert offline.tree() == snapshot(chain.online.web), f"trial {trial}"
        assert not any((site / "m" / "state" / "import").iterdir())
    assert interrupted >= 3
