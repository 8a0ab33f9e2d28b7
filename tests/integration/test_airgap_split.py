"""A few hundred MB of wheels, exported in small parts, import into an identical tree with flat memory.

Generated wheels (incompressible payload) always run; set ``MIRROR_REAL_WHEELS`` to a directory of
real wheels to run the same test over them too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirror.errors import EXIT_OK
from tests.conftest import ROOT, snapshot
from tests.fakepypi import FakePyPI
from tests.fakepypi.builder import BuiltFile, build_wheel
from tests.integration.test_airgap import Offline, connected, header

GENERATED_PROJECTS = 8
GENERATED_PAYLOAD = 25_000_000
PART = 16 * 2**20
REAL = os.environ.get("MIRROR_REAL_WHEELS")
# VmHWM, not ru_maxrss: the latter carries the parent's peak across fork+exec, and pytest holds the wheels.
_MEASURED = (
    "import re, sys; from mirror.cli import main; code = main(sys.argv[1:]); "
    "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]; "
    "print('maxrss-kib', hwm, file=sys.stderr); sys.exit(code)"
)


def generated() -> list[tuple[str, BuiltFile]]:
    return [
        (f"bulk{i}", build_wheel(f"bulk{i}", "1.0", payload_size=GENERATED_PAYLOAD)) for i in range(GENERATED_PROJECTS)
    ]


def real(directory: Path) -> list[tuple[str, BuiltFile]]:
    wheels = [BuiltFile.from_path(p) for p in sorted(directory.glob("*.whl"))]
    return [(w.filename.split("-")[0], w) for w in wheels]


def measured(config: Path, *args: str) -> tuple[int, int, float]:
    """Run ``mirror`` in a child process; its exit code, peak RSS in MiB and wall time."""
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, "--quiet", "--config", str(config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    peak = [int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("maxrss-kib")]
    assert peak, done.stderr
    return done.returncode, peak[0] // 1024, time.monotonic() - began


@pytest.mark.parametrize(
    "source",
    [
        "generated",
        pytest.param("real", marks=pytest.mark.skipif(not REAL, reason="set MIRROR_REAL_WHEELS to a wheel directory")),
    ],
)
def test_a_split_export_of_hundreds_of_mb_imports_identically(source: str, tmp_path: Path) -> None:
    wheels = generated() if source == "generated" else real(Path(REAL or "."))
    total = sum(w.size for _, w in wheels)
    assert total > 150 * 2**20
    with FakePyPI() as upstream:
        for name, wheel in wheels:
            version = wheel.filename.split("-")[1]
            upstream.add_file(name, version, wheel)
        online = connected(tmp_path / "online", upstream)
        assert online.run("sync") == EXIT_OK
    usb = tmp_path / "usb"
    code, export_mib, export_s = measured(online.config, "export", str(usb), "--split-size", "16M")
    assert code == EXIT_OK
    (manifest,) = usb.glob("*.manifest.jsonl")
    parts = header(manifest)["parts"]
    assert isinstance(parts, list) and len(parts) >= total // PART
    assert all(0 < (usb / p["name"]).stat().st_size <= PART for p in parts)
    offline = Offline(tmp_path / "offline")
    code, import_mib, import_s = measured(offline.config, "import", str(usb))
    assert code == EXIT_OK
    assert offline.tree() == snapshot(online.web)
    # Streamed both ways: far less memory than the bundle, let alone its largest file.
    print(
        f"{source}: {total / 2**20:.0f} MiB in {len(parts)} parts; export {export_s:.1f}s / {export_mib} MiB peak RSS, "
        f"import {import_s:.1f}s / {import_mib} MiB"
    )
    assert export_mib < 100 and import_mib < 100
