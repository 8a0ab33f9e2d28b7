"""Real index servers from PyPI, started on 127.0.0.1: pypiserver, devpi-server, a bandersnatch-made tree.

Each one holds wheels the fake upstream's builder makes and can take a new release, lose a release
and lose a project, the way its users change it (a file in pypiserver's directory, devpi's upload
and delete API, a bandersnatch run over a changed upstream).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import httpx
import pytest

from tests.fakepypi.builder import BuiltFile, build_wheel
from tests.servers import free_port

BIN = Path(sys.executable).parent


def wheel(name: str, version: str, *, requires_dist: tuple[str, ...] = ()) -> BuiltFile:
    return build_wheel(name, version, requires_dist=requires_dist)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url}: the server did not come up: {log.read_text(errors='replace')[-2000:]}")


def _script(name: str) -> str:
    found = BIN / name
    if not found.exists():
        pytest.fail(f"{name} is not installed (pip install -e '.[test]')")
    return str(found)


class _Process:
    """A server child process; stopped (SIGTERM, then SIGKILL) on exit."""

    process: subprocess.Popen[bytes] | None = None

    def _start(self, argv: list[str], log: Path, ready: str, env: dict[str, str] | None = None) -> None:
        with open(log, "wb") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        _wait_until_up(ready, self.process, log)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class PypiServer(_Process):
    """pypiserver 2.x over a directory of distribution files (no fallback to PyPI)."""

    def __init__(self, workdir: Path) -> None:
        self.packages = workdir / "packages"
        self.packages.mkdir(parents=True)
        self.log = workdir / "pypiserver.log"
        self.port = free_port()

    @property
    def simple_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def __enter__(self) -> Self:
        argv = [_script("pypi-server"), "run", "-i", "127.0.0.1", "-p", str(self.port)]
        argv += ["-a", ".", "-P", ".", "--disable-fallback", "--hash-algo", "sha256", str(self.packages)]
        self._start(argv, self.log, self.simple_url)
        return self

    def upload(self, built: BuiltFile) -> None:
        (self.packages / built.filename).write_bytes(built.content)

    def remove(self, filename: str) -> None:
        (self.packages / filename).unlink()


class DevpiServer(_Process):
    """devpi-server 6.x with one volatile index, ``root/dev``, changed through its HTTP API."""

    PASSWORD = "mirror-tests"

    def __init__(self, workdir: Path) -> None:
        self.serverdir = workdir / "devpi"
        self.log = workdir / "devpi.log"
        self.port = free_port()
        self._env = {**os.environ, "HOME": str(workdir)}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def simple_url(self) -> str:
        return f"{self.url}/root/dev/+simple/"

    def __enter__(self) -> Self:
        init = [_script("devpi-init"), "--serverdir", str(self.serverdir), "--no-root-pypi"]
        subprocess.run([*init, "--root-passwd", self.PASSWORD], check=True, capture_output=True, env=self._env)
        argv = [_script("devpi-server"), "--serverdir", str(self.serverdir), "--host", "127.0.0.1"]
        # Its default key derivation (argon2, 64 MiB) takes ~40 s of CPU at start on a busy machine.
        argv += ["--argon2-memory-cost", "8", "--argon2-time-cost", "1", "--argon2-parallelism", "1"]
        self._start([*argv, "--port", str(self.port)], self.log, f"{self.url}/+api", env=self._env)
        # One login: every request with the password would verify its (deliberately slow) hash again.
        login = httpx.post(f"{self.url}/+login", json={"user": "root", "password": self.PASSWORD}, timeout=60)
        assert login.status_code == 200, login.text
        token = login.json()["result"]["password"]
        self._auth = {"X-Devpi-Auth": base64.b64encode(f"root:{token}".encode()).decode()}
        index = {"type": "stage", "bases": [], "volatile": True, "acl_upload": ["root"]}
        self._call("PUT", f"{self.url}/root/dev", json=index)
        return self

    def _call(self, method: str, url: str, **kwargs: Any) -> None:
        response = httpx.request(method, url, headers=self._auth, timeout=60, **kwargs)
        assert response.status_code < 300, f"devpi {method} {url}: {response.status_code} {response.text[:500]}"

    def upload(self, built: BuiltFile) -> None:
        name, version = built.filename.split("-")[:2]
        form = {":action": "file_upload", "name": name, "version": version, "protocol_version": "1"}
        form |= {"filetype": "bdist_wheel", "pyversion": "py3", "sha256_digest": built.sha256}
        self._call("POST", f"{self.url}/root/dev/", data=form, files={"content": (built.filename, built.content)})

    def remove_release(self, name: str, version: str) -> None:
        self._call("DELETE", f"{self.url}/root/dev/{name}/{version}")

    def remove_project(self, name: str) -> None:
        self._call("DELETE", f"{self.url}/root/dev/{name}")


def python312() -> str:
    """A Python >= 3.12 for bandersnatch 8.2 (on PATH, then pyenv's versions), or a skip that says why."""
    candidates = [shutil.which(name) for name in ("python3.12", "python3.13", "python3.14")]
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for pattern in ("3.12*", "3.13*", "3.14*"):
        candidates += [str(p / "bin" / "python") for p in sorted(versions.glob(pattern), reverse=True)]
    probe = "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 12))"
    for found in candidates:
        if found and subprocess.run([found, "-c", probe], capture_output=True, timeout=60).returncode == 0:
            return found
    pytest.skip("bandersnatch 8.2 needs Python >= 3.12 with venv; none found on PATH or in pyenv's versions")


def bandersnatch(venv: Path) -> Path:
    """``bandersnatch`` 8.2 in its own venv, installed from PyPI (skips if PyPI cannot be reached)."""
    script = venv / "bin" / "bandersnatch"
    if script.exists():
        return script
    subprocess.run([python312(), "-m", "venv", str(venv)], check=True, capture_output=True)
    drop = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_NO_INDEX", "PIP_CONFIG_FILE")
    env = {k: v for k, v in os.environ.items() if k not in drop} | {"PIP_CONFIG_FILE": os.devnull}
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--index-url", "https://pypi.org/simple/"]
    result = subprocess.run([*pip, "bandersnatch==8.2.0"], capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        if any(word in result.stderr.lower() for word in ("connect", "resolve", "network is unreachable")):
            pytest.skip(f"cannot install bandersnatch 8.2 from PyPI: {last}")
        pytest.fail(f"pip install bandersnatch==8.2.0 failed: {result.stderr[-2000:]}")
    return script


def run_bandersnatch(script: Path, upstream_url: str, directory: Path) -> None:
    """``bandersnatch mirror`` of ``upstream_url`` (a server root, not /simple/) into ``directory``."""
    config = directory.parent / "bandersnatch.conf"
    config.write_text(
        f"[mirror]\ndirectory = {directory}\nmaster = {upstream_url}\nallow-non-https = true\nworkers = 3\n"
        "timeout = 30\nglobal-timeout = 600\nstop-on-error = true\nhash-index = false\nsimple-format = ALL\n"
        "json = false\nrelease-files = true\ncore-metadata = true\ncleanup = false\n"
        "delete-packages = true\nstorage-backend = filesystem\nverifiers = 3\ncompare-method = hash\n"
    )
    argv = [str(script), "--config", str(config), "mirror"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
