"""The example third-party plugin: installed as a package, found through its entry point, used by a sync."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mirror.errors import EXIT_OK
from tests.conftest import ROOT, Mirror, check_tree, clean_env, page_files
from tests.fakepypi import FakePyPI

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = ROOT / "examples" / "filter-plugin"


def test_example_plugin_own_tests_pass() -> None:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        capture_output=True, text=True, env=env, cwd=EXAMPLE, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_installed_example_plugin_filters_a_sync(upstream: FakePyPI, mirror: Mirror, tmp_path: Path) -> None:
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
            "--target", str(site), str(EXAMPLE),
        ],
        capture_output=True, text=True, env=clean_env(tmp_path), timeout=180,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    upstream.add_release("demo", "1.0")
    upstream.add_release("pure", "1.0")
    mirror.write_config(upstream.simple_url)
    with mirror.config.open("a") as handle:
        handle.write('[filters]\nenabled = ["wheels-only"]\n[filters.wheels-only]\nsdists-for = ["pure"]\n')
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-m", "mirror", "--config", str(mirror.config), "sync"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode == EXIT_OK, result.stderr
    check_tree(mirror.web)
    assert set(page_files(mirror.web, "demo")) == {"demo-1.0-py3-none-any.whl"}
    assert set(page_files(mirror.web, "pure")) == {"pure-1.0-py3-none-any.whl", "pure-1.0.tar.gz"}
