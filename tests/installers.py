"""Real installers against a served mirror: uv into a fresh venv, and what ended up installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import clean_env


def uv_binary() -> str:
    local = Path(sys.executable).with_name("uv")
    found = str(local) if local.exists() else shutil.which("uv")
    if found is None:
        pytest.fail("uv is not installed (pip install -e '.[test]')")
    return found


def installed(target: Path) -> set[str]:
    return {p.name for p in target.glob("*.dist-info")}


def uv_install(index_url: str, requirement: str, tmp_path: Path) -> set[str]:
    """``uv pip install`` from ``index_url`` alone into a new venv; the dist-infos it installed."""
    env = clean_env(tmp_path)
    venv, uv = tmp_path / "venv", uv_binary()
    subprocess.run([uv, "venv", "--python", sys.executable, str(venv)], check=True, env=env, capture_output=True)
    result = subprocess.run(
        [uv, "pip", "install", "--python", str(venv / "bin" / "python"), "--index-url", index_url, requirement],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return installed(next((venv / "lib").glob("python3*/site-packages")))
