"""Shared fixtures: a fake upstream, a mirror directory with its config, and tree checks."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin

import pytest

from mirror.cli import main
from mirror.core import parse
from tests.fakepypi import FakePyPI
from tests.s3server import SeaweedFS
from tests.servers import InThread

ROOT = Path(__file__).parents[1]
INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration/ is ``integration`` and ``slow``, without each module saying so.

    Slow too: each runs real syncs over HTTP (and often child processes); together they cost several
    times the 20 s the fast loop (``pytest -m "not slow"``) may take.
    """
    for item in items:
        if item.path.is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def upstream() -> Iterator[FakePyPI]:
    with FakePyPI() as up:
        yield up


@dataclass
class Mirror:
    """A mirror directory and its config, with helpers to run ``mirror`` against it."""

    root: Path
    config: Path

    @property
    def web(self) -> Path:
        return self.root / "m" / "web"

    def write_config(self, upstream: str, **mirror_keys: object) -> None:
        lines = ["[mirror]", 'directory = "m"', f'upstream = "{upstream}"', "workers = 4", "timeout = 5"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in mirror_keys.items()]
        self.config.write_text("\n".join(lines) + "\n")

    def run(self, *args: str, capsys: pytest.CaptureFixture[str] | None = None) -> int:
        return main(["--config", str(self.config), *args])

    def start_process(self, *args: str, **popen: Any) -> subprocess.Popen[str]:
        """``mirror --config <config> args`` as a child left running (to kill, signal or race it)."""
        return subprocess.Popen(
            [sys.executable, "-m", "mirror", "--config", str(self.config), *args], cwd=ROOT, text=True, **popen
        )

    def run_process(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mirror", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )


@pytest.fixture
def mirror(tmp_path: Path) -> Mirror:
    return Mirror(tmp_path, tmp_path / "mirror.toml")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(web: Path) -> dict[str, str]:
    """Every file under ``web`` with the sha256 of its bytes: two equal snapshots are equal trees."""
    return {str(p.relative_to(web)): sha256_of(p) for p in sorted(web.rglob("*")) if p.is_file()}


def check_tree(web: Path, *, allow_temps: bool = False) -> None:
    """What a client sees is consistent: every link resolves to a file with the advertised hash.

    ``allow_temps`` is for a tree whose writer was just killed: temp files may remain (the next
    run removes them) but must never be linked.
    """
    temps = [p for p in web.rglob("*") if p.name.endswith(".mirror-tmp")]
    assert allow_temps or not temps, f"temporary files left: {temps}"
    if not (web / "simple" / "index.v1_json").exists():
        return  # killed before the first root index was published: nothing is served yet
    root = json.loads((web / "simple" / "index.v1_json").read_text())
    listed = {p["name"] for p in root["projects"]}
    html_root = parse.IndexHtmlParser()
    html_root.feed((web / "simple" / "index.html").read_bytes())
    html_root.close()
    for name in listed:
        page_dir = web / "simple" / name
        if not allow_temps:  # a kill may land between writing the formats of one page
            assert (page_dir / "index.html").read_bytes() == (page_dir / "index.v1_html").read_bytes()
        for html_name in ("index.html", "index.v1_html"):
            _check_html_links(web, page_dir, name, html_name)
        page = json.loads((page_dir / "index.v1_json").read_text())
        assert page["name"] == name
        for entry in page["files"]:
            target = (page_dir / unquote(entry["url"])).resolve()
            assert web.resolve() in target.parents, f"{entry['url']} escapes the tree"
            assert target.is_file(), f"{name}: {entry['url']} does not resolve"
            assert sha256_of(target) == entry["hashes"]["sha256"], f"{name}: hash of {entry['url']}"
            assert target.stat().st_size == entry["size"]
            if entry.get("core-metadata"):
                meta = Path(str(target) + ".metadata")
                assert meta.is_file(), f"{name}: advertised metadata missing for {entry['filename']}"
                assert sha256_of(meta) == entry["core-metadata"]["sha256"]
            if entry.get("provenance"):  # PEP 740: beside its file, linked relatively with its hash
                link, _, fragment = entry["provenance"].partition("#sha256=")
                provenance = (page_dir / unquote(link)).resolve()
                assert provenance == Path(str(target) + ".provenance"), f"{name}: {link} is not beside its file"
                assert sha256_of(provenance) == fragment, f"{name}: hash of {link}"
            for key in ("requires-python", "upload-time"):
                assert entry.get(key) != "", f"{key} must never be an empty string"


def _check_html_links(web: Path, page_dir: Path, name: str, html_name: str) -> None:
    base = page_dir.as_uri() + "/"
    page = parse.parse_project_html((page_dir / html_name).read_bytes(), base, name)
    for dist in page.files:
        target = Path(unquote(dist.url.removeprefix("file://")))
        assert web.resolve() in target.resolve().parents, f"{dist.url} escapes the tree"
        assert target.is_file(), f"{name}/{html_name}: {dist.url} does not resolve"
        assert sha256_of(target) == dist.hashes["sha256"], f"{name}/{html_name}: hash of {dist.filename}"
        if dist.core_metadata:
            assert Path(str(target) + ".metadata").is_file(), f"{name}/{html_name}: metadata of {dist.filename}"


def page_files(web: Path, name: str) -> dict[str, dict[str, Any]]:
    page = json.loads((web / "simple" / name / "index.v1_json").read_text())
    return {f["filename"]: f for f in page["files"]}


class StaticServer(InThread):
    """A plain static file server on loopback, like any web server over ``web/`` without negotiation."""

    def __init__(self, directory: Path) -> None:
        handler = partial(_QuietHandler, directory=str(directory))
        super().__init__(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler))

    @property
    def simple_url(self) -> str:
        return urljoin(self.url, "simple/")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def clean_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which pip and uv see no index but the one on their command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    env["PIP_NO_CACHE_DIR"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One real S3 server (SeaweedFS) for the session; each test takes its own bucket (``.bucket()``)."""
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
