"""The code stays ruff- and mypy --strict-clean: checked in the same run as the tests."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
# What is not the project's own code: the venv, caches, build output, benchmark scratch space.
NOT_OURS = {".venv", ".git", "build", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def _tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    if found.exists():
        return str(found)
    which = shutil.which(name)
    if which is None:
        pytest.fail(f"{name} is not installed (pip install -e '.[test]')")
    return which


def test_ruff_is_clean() -> None:
    result = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_checks_every_python_file() -> None:
    """Tests, benchmarks and examples are type-checked too: no Python file lies outside mypy's ``files``."""
    files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    checked = [ROOT / name for name in files]
    unchecked = [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if not NOT_OURS.intersection(path.relative_to(ROOT).parts)
        and not any(part.endswith(".egg-info") for part in path.parts)
        and not path.is_relative_to(ROOT / "benchmarks" / "work")
        and not any(path == c or path.is_relative_to(c) for c in checked)
    ]
    assert unchecked == []
