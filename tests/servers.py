"""Web servers over a synced ``web/`` tree: real nginx with the example config, and ``mirror serve``."""

from __future__ import annotations

import asyncio
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Self

import pytest

from mirror.serve.static import MirrorServer

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "nginx" / "mirror.conf"


def nginx_binary() -> str:
    """nginx, or a skip outside CI; in CI (CI=true) a missing nginx is a failure, never a skip."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("nginx is not installed: tests/run installs it (apt-get install nginx-light)")
    pytest.skip("nginx is not installed (tests/run installs it)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not start listening")


class Nginx:
    """nginx in the foreground with ``examples/nginx/mirror.conf``, its root and port substituted.

    ``backend`` (``host:port``) or ``mirror_port`` is the ``mirror serve`` that nginx hands misses and
    uploads to; without one those are 404.
    """

    def __init__(self, web: Path, workdir: Path, backend: str | None = None, *, mirror_port: int | None = None) -> None:
        if backend is None and mirror_port is not None:
            backend = f"127.0.0.1:{mirror_port}"
        self.web, self.dir, self.port, self.backend = web, workdir, free_port(), backend
        self.access_log = workdir / "access.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _write_config(self) -> Path:
        site = EXAMPLE.read_text()
        assert "root /srv/pypi/web;" in site and "listen 127.0.0.1:8080;" in site
        site = site.replace("root /srv/pypi/web;", f"root {self.web};")
        site = site.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{self.port};")
        assert "proxy_pass http://mirror_serve;" in site and "    server 127.0.0.1:8081;" in site
        if self.backend is None:
            site = site.replace("proxy_pass http://mirror_serve;", "return 404;")
        else:
            site = site.replace("    server 127.0.0.1:8081;", f"    server {self.backend};")
        (self.dir / "site.conf").write_text(site)
        temps = " ".join(f"{kind}_temp_path {self.dir / kind};" for kind in ("client_body", "proxy", "fastcgi"))
        temps += f" uwsgi_temp_path {self.dir / 'uwsgi'}; scgi_temp_path {self.dir / 'scgi'};"
        # As root, nginx would hand requests to `nobody`, who cannot read pytest's private tmp dirs.
        user = "user root root;" if os.geteuid() == 0 else ""
        main = (
            f"daemon off; worker_processes 1; pid {self.dir / 'nginx.pid'}; error_log {self.dir / 'error.log'};\n"
            f"{user}\nevents {{ worker_connections 256; }}\n"
            f"http {{ access_log {self.access_log} combined; {temps}\n include {self.dir / 'site.conf'}; }}\n"
        )
        config = self.dir / "nginx.conf"
        config.write_text(main)
        return config

    def __enter__(self) -> Nginx:
        config = self._write_config()
        binary = nginx_binary()
        check = subprocess.run([binary, "-t", "-p", str(self.dir), "-c", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self._process = subprocess.Popen(
            [binary, "-p", str(self.dir), "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for(self.port, self._process, self.dir / "error.log")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=15)

    def requested_paths(self) -> list[str]:
        return [line.split('"')[1].split()[1] for line in self.access_log.read_text().splitlines()]


class InThread:
    """An ``http.server`` server run by a daemon thread of this process, for the span of a ``with``."""

    def __init__(self, server: http.server.HTTPServer) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class Serve:
    """``mirror serve``'s server on its own event loop in a thread of this process."""

    def __init__(self, web: Path, server_class: type[MirrorServer] = MirrorServer, **options: Any) -> None:
        options.setdefault("log", False)
        self.server = server_class(web, "127.0.0.1", 0, **options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
