"""Against the real index (the upstream of examples/mirror.toml): the README quick start, and an allowlist
with its dependencies, then pip and uv installing from the served tree.

Marked ``network``. It skips, saying why, only when the index cannot be reached or answers 5xx;
any other failure is a failure.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from mirror.errors import EXIT_OK
from tests.conftest import ROOT, StaticServer, check_tree, clean_env
from tests.installers import installed, uv_install

pytestmark = [pytest.mark.network, pytest.mark.integration]

EXAMPLE = ROOT / "examples" / "mirror.toml"
UPSTREAM: str = tomllib.loads(EXAMPLE.read_text())["mirror"]["upstream"]


@pytest.fixture(scope="module", autouse=True)
def reachable() -> None:
    try:
        response = httpx.get(f"{UPSTREAM}requests/", timeout=20, follow_redirects=True)
    except httpx.HTTPError as exc:
        pytest.skip(f"the index {UPSTREAM} is unreachable: {type(exc).__name__}: {exc}")
    if response.status_code >= 500:
        pytest.skip(f"the index {UPSTREAM} answers {response.status_code}")


def _mirror(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=config.parent.parent,
    )


def _pip(index_url: str, tmp_path: Path, *args: str) -> set[str]:
    target = tmp_path / "pip-site"
    argv = [sys.executable, "-m", "pip", "install", "--index-url", index_url, "--target", str(target), *args]
    result = subprocess.run(argv, capture_output=True, text=True, env=clean_env(tmp_path), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return installed(target)


def test_readme_quick_start(tmp_path: Path) -> None:
    """``mirror --config examples/mirror.toml sync requests httpx``, from a copy of examples/, twice."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    config = tmp_path / "examples" / "mirror.toml"
    started = time.monotonic()
    first = _mirror(config, "sync", "requests", "httpx")
    assert first.returncode == EXIT_OK, first.stderr
    took = time.monotonic() - started
    web = tmp_path / "pypi-mirror" / "web"
    check_tree(web)
    assert {p.name for p in (web / "simple").iterdir() if p.is_dir()} == {"requests", "httpx"}
    pages = {p: p.stat().st_ino for p in (web / "simple").rglob("index.*")}
    again = _mirror(config, "sync", "requests", "httpx")
    assert again.returncode == EXIT_OK, again.stderr
    assert {p: p.stat().st_ino for p in pages} == pages, "an unchanged page was published again"
    assert "2 unchanged" in again.stderr
    print(f"quick start: first run {took:.1f}s", file=sys.stderr)
    with StaticServer(web) as static:
        assert {"requests", "httpx"} <= {
            name.split("-")[0] for name in _pip(static.simple_url, tmp_path, "--no-deps", "requests", "httpx")
        }


def test_allowlist_with_dependencies_installs(tmp_path: Path) -> None:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    machine = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
    arch = machine.get(platform.machine().lower(), "x86_64")
    config = tmp_path / "m" / "mirror.toml"
    config.parent.mkdir()
    config.write_text(
        f'[mirror]\ndirectory = "."\nupstream = "{UPSTREAM}"\nworkers = 16\n\n'
        '[filters]\nenabled = ["allowlist", "environments", "latest"]\n\n'
        '[filters.allowlist]\nprojects = ["requests"]\ndependencies = true\n\n'
        f'[filters.environments]\ntargets = [{{ python = "{python}", platform = "manylinux_2_28_{arch}" }}]\n'
        "sdists = false\n\n[filters.latest]\ncount = 1\n"
    )
    result = _mirror(config, "sync")
    assert result.returncode == EXIT_OK, result.stderr
    web = config.parent / "web"
    check_tree(web)
    mirrored = {p.name for p in (web / "simple").iterdir() if p.is_dir()}
    assert {"requests", "idna", "urllib3", "certifi", "charset-normalizer"} <= mirrored
    again = _mirror(config, "sync")
    assert again.returncode == EXIT_OK, again.stderr
    assert "0 projects synced" in again.stderr
    with StaticServer(web) as static:
        got = {name.split("-")[0] for name in _pip(static.simple_url, tmp_path, "requests")}
        assert {"requests", "idna", "urllib3", "certifi", "charset_normalizer"} <= got
        got = {name.split("-")[0] for name in uv_install(static.simple_url, "requests", tmp_path)}
        assert {"requests", "idna", "urllib3", "certifi", "charset_normalizer"} <= got
