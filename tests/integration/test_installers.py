"""pip and uv install from the produced tree, served by a plain static server on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirror.errors import EXIT_OK
from tests.conftest import Mirror, StaticServer, check_tree, clean_env
from tests.fakepypi import FakePyPI
from tests.installers import installed, uv_install


@pytest.fixture
def served(upstream: FakePyPI, mirror: Mirror) -> Iterator[StaticServer]:
    upstream.add_release("demo", "1.0", requires_dist=["dep>=2"])
    upstream.add_release("demo", "2.0", requires_dist=["dep>=2"], requires_python=">=3.99")
    upstream.add_release("demo", "1.5", requires_dist=["dep>=2"])
    upstream.yank("demo", "1.5", "do not use")
    upstream.add_release("dep", "1.0")
    upstream.add_release("dep", "2.0")
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)
    with StaticServer(mirror.web) as static:
        yield static


def test_pip_installs_with_dependencies(served: StaticServer, tmp_path: Path) -> None:
    target = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--index-url", served.simple_url, "--target", str(target), "demo"],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # 2.0 needs a Python that does not exist and 1.5 is yanked: pip must pick 1.0, and dep 2.0.
    assert installed(target) == {"demo-1.0.dist-info", "dep-2.0.dist-info"}


def test_uv_installs_with_dependencies(served: StaticServer, tmp_path: Path) -> None:
    assert uv_install(served.simple_url, "demo", tmp_path) == {"demo-1.0.dist-info", "dep-2.0.dist-info"}
