"""Serving a mirror kept in a bucket: real nginx with ``examples/nginx/s3.conf`` in front of SeaweedFS."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from tests.s3server import SeaweedFS
from tests.servers import ROOT, _wait_for, free_port, nginx_binary

S3_EXAMPLE = ROOT / "examples" / "nginx" / "s3.conf"


def _main_config(workdir: Path, site: Path, access_log: Path) -> Path:
    temps = " ".join(f"{kind}_temp_path {workdir / kind};" for kind in ("client_body", "proxy", "fastcgi"))
    temps += f" uwsgi_temp_path {workdir / 'uwsgi'}; scgi_temp_path {workdir / 'scgi'};"
    user = "user root root;" if os.geteuid() == 0 else ""
    main = (
        f"daemon off; worker_processes 1; pid {workdir / 'nginx.pid'}; error_log {workdir / 'error.log'};\n"
        f"{user}\nevents {{ worker_connections 256; }}\n"
        f"http {{ access_log {access_log} combined; {temps}\n include {site}; }}\n"
    )
    config = workdir / "nginx.conf"
    config.write_text(main)
    return config


class BucketNginx:
    """nginx in the foreground with a site config in front of ``bucket_path`` on the SeaweedFS endpoint.

    The site is ``examples/nginx/s3.conf`` with its endpoint, bucket path and port substituted, or
    any other ``site`` text holding the same placeholders (a bare "CDN rule" in the tests).
    """

    def __init__(self, s3: SeaweedFS, bucket_path: str, workdir: Path, site: str | None = None) -> None:
        self.dir, self.port = workdir, free_port()
        self.access_log = workdir / "access.log"
        endpoint = urlsplit(s3.endpoint).netloc
        text = S3_EXAMPLE.read_text() if site is None else site
        for old, new in (
            ("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{self.port};"),
            ("server 127.0.0.1:8333;", f"server {endpoint};"),
            ("proxy_set_header Host 127.0.0.1:8333;", f"proxy_set_header Host {endpoint};"),
            ('set $mirror_bucket_path "/pypi";', f'set $mirror_bucket_path "{bucket_path}";'),
        ):
            assert old in text, old
            text = text.replace(old, new)
        (workdir / "site.conf").write_text(text)
        self._config = _main_config(workdir, workdir / "site.conf", self.access_log)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> BucketNginx:
        binary = nginx_binary()
        check = subprocess.run(
            [binary, "-t", "-p", str(self.dir), "-c", str(self._config)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr
        self._process = subprocess.Popen(
            [binary, "-p", str(self.dir), "-c", str(self._config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(self.port, self._process, self.dir / "error.log")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=15)

    def requested_paths(self) -> list[str]:
        return [line.split('"')[1].split()[1] for line in self.access_log.read_text().splitlines()]
