"""``mirror`` with ``[storage] backend = "s3"`` end to end, against the session's real SeaweedFS.

Commands run as the user runs them (in process through ``main``, or as a child to kill); what
the bucket holds is read back with obstore (keys, bytes, stored headers and sha256 metadata) and
checked the way ``check_tree`` checks a tree on disk.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import obstore
import pytest
from obstore.store import S3Store

from mirror.cli.main import main
from mirror.core import objects
from mirror.errors import EXIT_ENVIRONMENT, EXIT_OK, EXIT_PARTIAL
from tests.conftest import ROOT, check_tree, snapshot
from tests.fakepypi import FakePyPI
from tests.s3server import ACCESS_KEY, SECRET_KEY, SeaweedFS

Objects = dict[str, tuple[str, str, str, str | None]]
"""key -> (sha256 of the bytes, Content-Type, Cache-Control, the sha256 its metadata records)."""


@dataclass
class S3Mirror:
    """A mirror whose web/ tree is a bucket: its config, and helpers to run and read it."""

    root: Path
    server: SeaweedFS
    bucket: str
    prefix: str = ""
    endpoint: str = ""

    @property
    def config(self) -> Path:
        return self.root / "mirror.toml"

    def write_config(self, upstream: str | None, **storage: str) -> None:
        table = {"backend": "s3", "bucket": self.bucket, "endpoint-url": self.endpoint or self.server.endpoint}
        if self.prefix:
            table["prefix"] = self.prefix
        table.update(storage)
        lines = ["[mirror]", 'directory = "m"', "workers = 4", "timeout = 5"]
        lines += [f'upstream = "{upstream}"', ""] if upstream else [""]
        lines += ["[storage]", *(f'{key} = "{value}"' for key, value in table.items())]
        self.config.write_text("\n".join(lines) + "\n")

    def run(self, *args: str) -> int:
        return main(["--config", str(self.config), *args])

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.server.environ}

    def start_process(self, *args: str, **popen: Any) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "mirror", "--config", str(self.config), *args]
        return subprocess.Popen(command, cwd=ROOT, text=True, env=self.env(), **popen)

    def run_process(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mirror", "--config", str(self.config), *args]
        return subprocess.run(command, cwd=ROOT, text=True, env=self.env(), capture_output=True, timeout=120)

    def store(self) -> S3Store:
        return S3Store(
            self.bucket,
            prefix=self.prefix or None,
            endpoint=self.server.endpoint,
            region="us-east-1",
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            client_options={"allow_http": True},
        )

    def objects(self) -> Objects:
        """Every object in the bucket (under the prefix) with its stored headers."""
        store = self.store()
        found: Objects = {}
        for batch in obstore.list(store):
            for meta in batch:
                result = obstore.get(store, meta["path"])
                attributes = result.attributes
                body = bytes(result.bytes())
                found[meta["path"]] = (
                    hashlib.sha256(body).hexdigest(),
                    str(attributes.get("Content-Type")),
                    str(attributes.get("Cache-Control")),
                    attributes.get("sha256"),
                )
        return found

    def download(self, into: Path) -> Path:
        """The bucket as a directory tree, to check with the same helpers as a mirror on disk."""
        store = self.store()
        for batch in obstore.list(store):
            for meta in batch:
                target = into / meta["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(bytes(obstore.get(store, meta["path"]).bytes()))
        return into


@pytest.fixture
def s3env(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> SeaweedFS:
    """The server, with its credentials in this process's environment (commands run in process read them)."""
    for key, value in seaweedfs.environ.items():
        monkeypatch.setenv(key, value)
    return seaweedfs


@pytest.fixture
def s3mirror(tmp_path: Path, s3env: SeaweedFS) -> S3Mirror:
    return S3Mirror(tmp_path, s3env, s3env.bucket())


def check_objects(mirror: S3Mirror, scratch: Path) -> Objects:
    """The bucket is a consistent mirror, and every object carries the headers and sha256 it should."""
    found = mirror.objects()
    for key, (digest, content_type, cache_control, recorded) in found.items():
        expected = objects.content_type(key)
        if expected != "application/octet-stream":  # which SeaweedFS replaces by a type it sniffs
            assert content_type == expected, key
        assert cache_control == objects.cache_control(key), key
        assert recorded == digest, f"{key}: metadata sha256 {recorded} is not the object's {digest}"
    check_tree(mirror.download(scratch))
    return found


def seed(up: FakePyPI) -> None:
    up.add_release("demo", "1.0", requires_dist=["dep>=1"])
    up.add_release("demo", "1.1")
    up.add_release("dep", "2.0")
    up.add_release("Other_Pkg", "0.1")


def test_sync_changes_and_a_no_op_run_in_a_bucket(tmp_path: Path, s3mirror: S3Mirror, upstream: FakePyPI) -> None:
    s3mirror.prefix = "pypi/mirror"  # keys go under the prefix, exactly as under web/
    seed(upstream)
    s3mirror.write_config(upstream.simple_url)
    assert s3mirror.run("sync") == EXIT_OK
    found = check_objects(s3mirror, tmp_path / "first")
    assert {"simple/index.html", "simple/index.v1_html", "simple/index.v1_json"} <= found.keys()
    assert {k for k in found if k.startswith("simple/")} == {
        f"simple/{name}/{page}"
        for name in ("demo", "dep", "other-pkg")
        for page in ("index.html", "index.v1_html", "index.v1_json")
    } | {"simple/index.html", "simple/index.v1_html", "simple/index.v1_json"}
    assert not (s3mirror.root / "m" / "web").exists() or not any((s3mirror.root / "m" / "web").iterdir())

    # A reader without credentials (nginx, a CDN) gets the stored headers.
    with urllib.request.urlopen(
        f"{s3mirror.server.endpoint}/{s3mirror.bucket}/pypi/mirror/simple/demo/index.v1_json"
    ) as r:
        assert r.headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
        assert r.headers["Cache-Control"] == objects.PAGE_CACHE

    upstream.add_release("demo", "1.2")
    upstream.yank("demo", "1.0", "broken")
    upstream.remove_file("dep", "dep-2.0.tar.gz")
    upstream.remove_project("other-pkg")
    assert s3mirror.run("sync") == EXIT_OK
    found = check_objects(s3mirror, tmp_path / "second")
    assert not any("other" in key.lower() for key in found)
    assert not any(key.endswith("dep-2.0.tar.gz") for key in found)
    demo = obstore.get(s3mirror.store(), "simple/demo/index.v1_json").bytes()
    assert b'"yanked": "broken"' in bytes(demo).replace(b'":"', b'": "')

    upstream.clear_requests()
    assert s3mirror.run("sync") == EXIT_OK
    assert len(upstream.requests) == 1  # the root, answered 304: nothing else asked of anyone
    assert s3mirror.objects() == found


def test_kill_9_during_syncs_then_a_rerun_converges_to_a_clean_runs_objects(tmp_path: Path, s3env: SeaweedFS) -> None:
    rng = random.Random(20261202)
    with FakePyPI() as up:
        for i in range(16):
            up.add_release(f"pkg{i:02d}", "1.0", payload_size=20_000 + 1000 * i)
        mirror = S3Mirror(tmp_path / "killed", s3env, s3env.bucket())
        mirror.root.mkdir()
        mirror.write_config(up.simple_url)
        trials, landed = 6, 0
        for trial in range(trials):
            if trial == trials // 2:
                up.remove_release("pkg03", "1.0")
                up.yank("pkg04", "1.0", "bad")
                up.remove_project("pkg15")
            for i in range(trial, trial + 4):
                up.add_release(f"pkg{i:02d}", f"1.{trial + 1}", payload_size=20_000)
            # Each request 0.1 s late: a run outlasts the kill window (0.6-1.6 s) however fast the machine.
            up.faults.rates(slow=1.0, slow_delay=0.1, seed=trial)
            process = mirror.start_process("--quiet", "sync", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.6, 1.6))
            landed += process.poll() is None
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            check_tree(mirror.download(tmp_path / f"after-kill-{trial}"))  # what is served is whole
        assert landed >= trials // 2, f"only {landed} of {trials} kills landed mid-run"
        up.faults.clear()
        result = mirror.run_process("sync")
        assert result.returncode == EXIT_OK, result.stderr
        killed = check_objects(mirror, tmp_path / "converged")
        clean = S3Mirror(tmp_path / "clean", s3env, s3env.bucket())
        clean.root.mkdir()
        clean.write_config(up.simple_url)
        assert clean.run("sync") == EXIT_OK
        assert killed == clean.objects()  # keys, bytes, headers and sha256 metadata
        assert mirror.run("verify", "--hashes") == EXIT_OK


def test_verify_hashes_and_repair_after_damage_behind_its_back(
    tmp_path: Path, s3mirror: S3Mirror, upstream: FakePyPI, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(upstream)
    s3mirror.write_config(upstream.simple_url)
    assert s3mirror.run("sync") == EXIT_OK
    before = s3mirror.objects()
    store = s3mirror.store()
    wheel = next(k for k in before if k.endswith("demo-1.0-py3-none-any.whl"))
    sdist = next(k for k in before if k.endswith("dep-2.0.tar.gz"))
    body = bytes(obstore.get(store, wheel).bytes())
    obstore.put(store, wheel, bytes(reversed(body)))  # same size, other bytes: only --hashes sees it
    obstore.delete(store, sdist)
    obstore.put(store, "packages/zz/orphan.whl", b"nobody links me")
    capsys.readouterr()
    assert s3mirror.run("verify") == EXIT_PARTIAL
    assert sdist in capsys.readouterr().err
    assert s3mirror.run("verify", "--hashes") == EXIT_PARTIAL
    assert wheel in capsys.readouterr().err
    assert s3mirror.run("verify", "--hashes", "--repair", "--delete-orphans") == EXIT_OK
    assert s3mirror.run("verify", "--hashes") == EXIT_OK
    assert check_objects(s3mirror, tmp_path / "repaired") == before


def test_export_from_a_bucket_then_import_into_a_directory_gives_the_same_tree(
    tmp_path: Path, s3mirror: S3Mirror, upstream: FakePyPI
) -> None:
    seed(upstream)
    s3mirror.write_config(upstream.simple_url)
    assert s3mirror.run("sync") == EXIT_OK
    assert s3mirror.run("export", str(tmp_path / "usb")) == EXIT_OK
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "mirror.toml").write_text('[mirror]\ndirectory = "m"\n')
    bundles = sorted(str(p) for p in (tmp_path / "usb").iterdir())
    assert main(["--config", str(offline / "mirror.toml"), "import", *bundles]) == EXIT_OK
    on_disk = snapshot(offline / "m" / "web")
    assert on_disk == {key: digest for key, (digest, *_) in s3mirror.objects().items()}


def test_import_into_a_bucket_uploads_the_staged_files(tmp_path: Path, s3mirror: S3Mirror, upstream: FakePyPI) -> None:
    seed(upstream)
    online = tmp_path / "online"
    online.mkdir()
    (online / "mirror.toml").write_text(f'[mirror]\ndirectory = "m"\nupstream = "{upstream.simple_url}"\n')
    assert main(["--config", str(online / "mirror.toml"), "sync"]) == EXIT_OK
    assert main(["--config", str(online / "mirror.toml"), "export", str(tmp_path / "usb")]) == EXIT_OK
    s3mirror.write_config(None)  # an offline mirror
    bundles = sorted(str(p) for p in (tmp_path / "usb").iterdir())
    assert s3mirror.run("import", *bundles) == EXIT_OK
    assert {key: digest for key, (digest, *_) in check_objects(s3mirror, tmp_path / "in").items()} == snapshot(
        online / "m" / "web"
    )


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mirror: error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad-secret", "bad secret key"),
        ("unknown-key", "bad credentials"),
        ("no-bucket", "the bucket does not exist"),
        ("unreachable", "cannot reach the S3 endpoint"),
    ],
)
def test_a_wrong_bucket_credential_or_endpoint_is_one_line_and_exit_4(
    tmp_path: Path, s3mirror: S3Mirror, upstream: FakePyPI, case: str, expected: str
) -> None:
    seed(upstream)
    if case == "no-bucket":
        s3mirror.bucket = "never-created"
    if case == "unreachable":
        with __import__("socket").socket() as sock:
            sock.bind(("127.0.0.1", 0))
            s3mirror.endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    s3mirror.write_config(upstream.simple_url)
    env = s3mirror.env()
    if case == "bad-secret":
        env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    if case == "unknown-key":
        env["AWS_ACCESS_KEY_ID"] = "nobody"
    for command in (["sync"], ["verify"]):
        result = subprocess.run(
            [sys.executable, "-m", "mirror", "--config", str(s3mirror.config), *command],
            cwd=ROOT,
            text=True,
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert result.returncode == EXIT_ENVIRONMENT
        assert expected in _one_error_line(result)
    if case != "no-bucket" and case != "unreachable":
        assert s3mirror.objects() == {}  # nothing published with the wrong credentials


def test_a_full_quota_is_one_line_and_nothing_half_published(
    tmp_path: Path, s3mirror: S3Mirror, upstream: FakePyPI
) -> None:
    for i in range(4):
        upstream.add_release(f"big{i}", "1.0", payload_size=400_000)  # random bytes: nothing compresses them
    s3mirror.write_config(upstream.simple_url)
    assert s3mirror.run("sync") == EXIT_OK
    before = s3mirror.objects()
    server = s3mirror.server
    server.shell(f"s3.bucket.quota -name {s3mirror.bucket} -op set -sizeMB 1")
    try:
        # SeaweedFS enforces a quota by turning a bucket over it read-only, once its volume
        # statistics (heartbeats, a few seconds late) show it over.
        deadline = time.monotonic() + 60
        while "read only" not in server.shell("s3.bucket.quota.enforce -apply"):
            assert time.monotonic() < deadline, "SeaweedFS never saw the bucket over its quota"
            time.sleep(1)
        upstream.add_release("big0", "2.0", payload_size=400_000)
        upstream.add_release("fresh", "1.0")
        result = s3mirror.run_process("--quiet", "sync")
        assert result.returncode == EXIT_ENVIRONMENT, result.stderr
        # SeaweedFS answers a write into a bucket made read-only by its quota with 500 InternalError
        # (MinIO and Ceph name the quota: their codes read "the bucket's quota is exceeded").
        assert "InternalError" in _one_error_line(result) or "quota" in _one_error_line(result)
        assert s3mirror.objects() == before  # nothing half-published: the refused run changed nothing served
    finally:
        server.shell(f"s3.bucket.quota -name {s3mirror.bucket} -op remove")
        deadline = time.monotonic() + 60
        while "read only" in server.shell("s3.bucket.quota.enforce -apply"):
            assert time.monotonic() < deadline
            time.sleep(1)
    time.sleep(1)
    assert s3mirror.run("sync") == EXIT_OK  # with room again, the next run converges
    assert "simple/fresh/index.v1_json" in check_objects(s3mirror, tmp_path / "after")


class SlowDownProxy:
    """A reverse proxy in front of the S3 gateway that answers ``503 SlowDown`` to every ``every``-th request."""

    def __init__(self, target: str, every: int) -> None:
        import http.server
        import threading

        self.target, self.every = target, every
        self.requests = self.throttled = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.requests += 1
                if proxy.requests % proxy.every == 0:
                    proxy.throttled += 1
                    payload = b"<?xml version='1.0'?><Error><Code>SlowDown</Code><Message>Slow down</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                request = urllib.request.Request(proxy.target + self.path, data=body, method=self.command)
                for key, value in self.headers.items():
                    if key.lower() not in ("connection", "content-length"):
                        request.add_header(key, value)
                try:
                    response = urllib.request.urlopen(request, timeout=30)
                except urllib.error.HTTPError as error:
                    response = error
                data = response.read()
                self.send_response(response.status)
                for key, value in response.headers.items():
                    if key.lower() not in ("connection", "content-length", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def slowdown(s3env: SeaweedFS) -> Iterator[SlowDownProxy]:
    proxy = SlowDownProxy(s3env.endpoint, every=4)
    yield proxy
    proxy.close()


def test_throttling_is_retried_with_backoff(
    tmp_path: Path, s3mirror: S3Mirror, upstream: FakePyPI, slowdown: SlowDownProxy
) -> None:
    seed(upstream)
    s3mirror.endpoint = slowdown.endpoint
    s3mirror.write_config(upstream.simple_url)
    assert s3mirror.run("sync") == EXIT_OK
    assert slowdown.throttled >= 5  # every fourth request was refused, and each was retried
    check_objects(s3mirror, tmp_path / "throttled")
    assert s3mirror.run("verify", "--hashes") == EXIT_OK


def test_a_lost_state_is_refused_then_rebuilt_from_the_bucket(
    tmp_path: Path, s3mirror: S3Mirror, upstream: FakePyPI
) -> None:
    seed(upstream)
    s3mirror.write_config(upstream.simple_url)
    assert s3mirror.run("sync") == EXIT_OK
    before = s3mirror.objects()
    for leftover in (s3mirror.root / "m" / "state").glob("mirror.sqlite3*"):
        leftover.unlink()
    for command in (["sync"], ["verify", "--delete-orphans"]):
        result = s3mirror.run_process("--quiet", *command)
        assert result.returncode == EXIT_ENVIRONMENT
        line = _one_error_line(result)
        assert "state database" in line and f"s3://{s3mirror.bucket} publishes a mirror" in line
    assert s3mirror.objects() == before  # nothing unpublished nor deleted
    assert s3mirror.run("verify", "--rebuild-state") == EXIT_OK
    assert s3mirror.run("verify", "--hashes") == EXIT_OK
    upstream.clear_requests()
    assert s3mirror.run("sync") == EXIT_OK
    assert check_objects(s3mirror, tmp_path / "rebuilt") == before


def test_a_large_file_is_a_multipart_upload_completed_only_on_a_verified_commit(s3env: SeaweedFS) -> None:
    from mirror.errors import IntegrityError
    from mirror.storage.s3 import SINGLE_PUT

    storage = s3env.storage()
    body = random.Random(7).randbytes(2 * SINGLE_PUT + 12345)  # three parts
    digest = hashlib.sha256(body).hexdigest()
    path = "packages/ab/cd/big-1.0.tar.gz"

    async def upload(expected: str | None, commit: bool) -> None:
        async with storage.publishing():
            writer = storage.open_async_writer(path, expected)
            for start in range(0, len(body), 1 << 16):
                await writer.write(body[start : start + (1 << 16)])
            assert storage.size(path) is None  # parts are uploaded, nothing is visible yet
            if commit:
                await writer.commit()
            else:
                writer.abort()

    import anyio

    anyio.run(upload, digest, False, backend="asyncio")  # the download failed its check: aborted
    assert storage.size(path) is None and list(storage.walk("packages")) == []
    with pytest.raises(IntegrityError):  # the writer checks the digest it was promised itself
        anyio.run(upload, "0" * 64, True, backend="asyncio")
    assert storage.size(path) is None
    anyio.run(upload, digest, True, backend="asyncio")
    assert storage.size(path) == len(body)
    assert hashlib.sha256(b"".join(storage.read(path))).hexdigest() == digest
    assert storage.sha256(path) == digest  # recorded from the start of the upload
    result = obstore.get(storage_store(s3env, storage), path, options={"head": True})
    assert result.attributes["Content-Type"] == "application/gzip"
    assert result.attributes["Cache-Control"] == objects.FILE_CACHE


def storage_store(server: SeaweedFS, storage: Any) -> S3Store:
    bucket = storage.where.removeprefix("s3://")
    return S3Mirror(Path("."), server, bucket).store()


def test_without_the_s3_extra_the_one_line_names_it(tmp_path: Path) -> None:
    config = tmp_path / "mirror.toml"
    config.write_text('[mirror]\ndirectory = "m"\n\n[storage]\nbackend = "s3"\nbucket = "pypi"\n')
    # An interpreter in which obstore cannot be imported, as where the extra is not installed.
    code = (
        "import sys; sys.modules['obstore'] = None; sys.modules['obstore.store'] = None\n"
        "from mirror.cli.main import main; sys.exit(main(['--config', sys.argv[1], 'verify']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(config)], cwd=ROOT, text=True, capture_output=True, timeout=60
    )
    assert result.returncode == EXIT_ENVIRONMENT
    assert "pip install 'mirror[s3]'" in _one_error_line(result)
