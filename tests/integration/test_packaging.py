"""The distribution users install (`pip install .`, README's quick start) holds all of the code.

Everything else runs from the editable checkout, where a module missing from the wheel goes unseen.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_every_module_and_data_file(tmp_path: Path) -> None:
    # Built from a copy (setuptools leaves build/ beside the sources), with the venv's setuptools
    # and no build isolation: nothing to download.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("mirror", "mirror_plugins"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("mirror-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        held = set(archive.namelist())
    wanted = {
        path.relative_to(ROOT).as_posix()
        for package in ("mirror", "mirror_plugins")
        for path in (ROOT / package).rglob("*")
        if path.is_file()
        and (path.suffix == ".py" or path.name in {"py.typed", "starter.toml"})
        and "__pycache__" not in path.parts
    }
    assert "mirror/private/publish.py" in wanted and "mirror/serve/upload.py" in wanted
    assert wanted - held == set()
