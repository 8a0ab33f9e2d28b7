"""Serving a mirror kept in an S3 bucket (real SeaweedFS): nginx with examples/nginx/s3.conf in
front of it, ``mirror serve`` reading it, and what a bare endpoint or a CDN without negotiation
gives pip and uv.

One mirror is synced into one bucket per module; every server answers from those objects.
"""

from __future__ import annotations

import gzip
import http.client
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import obstore
import pytest
from obstore.store import S3Store

from mirror.cli import main
from mirror.core import objects
from mirror.core.negotiate import PageFormat
from mirror.errors import EXIT_CONFIG, EXIT_ENVIRONMENT, EXIT_OK
from mirror.serve.objects import ObjectServer
from tests.conftest import clean_env
from tests.core.test_negotiate import CASES, PIP, UV
from tests.fakepypi import FakePyPI
from tests.installers import installed, uv_binary, uv_install
from tests.s3server import SeaweedFS
from tests.s3serving import S3_EXAMPLE, BucketNginx
from tests.servers import EXAMPLE, Serve, free_port

PREFIX = "pypi/mirror"


@dataclass(frozen=True)
class Bucket:
    """The bucket a mirror was synced into, and a client that reads its objects."""

    name: str
    prefix: str
    store: S3Store
    config: Path
    """The mirror's config file (``[storage] backend = "s3"``)."""

    @property
    def path(self) -> str:
        """``/<bucket>/<prefix>``: where the tree starts on a path-style endpoint."""
        return f"/{self.name}/{self.prefix}"

    def read(self, key: str) -> bytes:
        return bytes(obstore.get(self.store, key).bytes())

    def keys(self, prefix: str) -> list[str]:
        return sorted(meta["path"] for batch in obstore.list(self.store, prefix) for meta in batch)


@pytest.fixture(scope="module")
def bucket(seaweedfs: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bucket]:
    """A mirror synced by ``mirror sync`` straight into a bucket, under a prefix."""
    root = tmp_path_factory.mktemp("s3served")
    name = seaweedfs.bucket()
    with FakePyPI() as up, pytest.MonkeyPatch.context() as patch:
        for key, value in seaweedfs.environ.items():
            patch.setenv(key, value)
        up.add_release("dep", "1.0", upload_time="2024-01-05T00:00:00Z")
        up.add_release("dep", "2.0", upload_time="2024-02-01T00:00:00Z")
        up.add_release("demo", "1.0", requires_dist=["dep>=1"], upload_time="2024-01-10T00:00:00Z")
        up.add_release("demo", "1.1", requires_dist=["dep>=1"], upload_time="2024-03-10T00:00:00Z", payload_size=4096)
        config = root / "mirror.toml"
        config.write_text(
            f'[mirror]\ndirectory = "m"\nupstream = "{up.simple_url}"\nworkers = 4\n'
            f'[storage]\nbackend = "s3"\nbucket = "{name}"\nprefix = "{PREFIX}"\n'
            f'endpoint-url = "{seaweedfs.endpoint}"\nregion = "us-east-1"\n'
        )
        assert main(["--config", str(config), "--quiet", "sync"]) == EXIT_OK
    store = seaweedfs.storage(bucket=name, prefix=PREFIX).store
    assert not (root / "m" / "web" / "simple").exists()  # the tree is in the bucket only
    yield Bucket(name, PREFIX, store, config)


@pytest.fixture(scope="module")
def nginx(seaweedfs: SeaweedFS, bucket: Bucket, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BucketNginx]:
    with BucketNginx(seaweedfs, bucket.path, tmp_path_factory.mktemp("nginx-s3")) as server:
        yield server


@pytest.fixture(scope="module")
def serve(bucket: Bucket) -> Iterator[Serve]:
    with Serve(bucket.store, server_class=ObjectServer, where=f"s3://{bucket.name}/{bucket.prefix}") as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture(params=["nginx", "serve"])
def server(request: pytest.FixtureRequest) -> BucketNginx | Serve:
    found: BucketNginx | Serve = request.getfixturevalue(request.param)
    return found


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


def get(url: str, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> Answer:
    """One request with exactly these headers (http.client adds none but Host and Accept-Encoding: identity)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request(method, path, headers=dict(headers or {}))
        response = conn.getresponse()
        body = response.read()
        if response.getheader("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return Answer(response.status, response.headers, body)
    finally:
        conn.close()


def wheel_key(bucket: Bucket) -> str:
    return next(k for k in bucket.keys("packages") if k.endswith("/demo-1.1-py3-none-any.whl"))


# -- the example config ----------------------------------------------------------------------------


def _maps(text: str) -> str:
    return text[text.index("# -- 1.") : text.index("server {")]


def test_the_s3_example_negotiates_with_the_same_maps_as_the_disk_one() -> None:
    # Copied, not included: each example is one file to drop into conf.d. This keeps them equal.
    s3_maps = _maps(S3_EXAMPLE.read_text())
    assert "# -- 5." in s3_maps  # its own map follows the shared ones
    assert s3_maps[: s3_maps.index("# -- 5.")] == _maps(EXAMPLE.read_text())


# -- negotiation, redirects, files: nginx in front of the bucket and mirror serve alike -------------


@pytest.mark.parametrize(("accept", "expected"), CASES)
def test_each_accept_gets_its_format(
    server: BucketNginx | Serve, bucket: Bucket, accept: str | None, expected: PageFormat
) -> None:
    for path, directory in (("/simple/demo/", "simple/demo"), ("/simple/", "simple")):
        answer = get(server.url, path, {} if accept is None else {"Accept": accept})
        assert answer.status == 200
        assert answer.header("Content-Type") == expected.content_type
        assert answer.body == bucket.read(f"{directory}/{expected.filename}")
        assert "Accept" in [v.strip() for v in answer.header("Vary").split(",")]
        assert answer.header("Cache-Control") == "max-age=60, public"


@pytest.mark.parametrize("accept", [UV, PIP, "text/html"])
def test_pages_are_gzipped(server: BucketNginx | Serve, bucket: Bucket, accept: str) -> None:
    answer = get(server.url, "/simple/demo/", {"Accept": accept, "Accept-Encoding": "gzip"})
    assert answer.header("Content-Encoding") == "gzip"
    expected = "index.html" if accept == "text/html" else "index.v1_json"
    assert answer.body == bucket.read(f"simple/demo/{expected}")


def test_redirects_and_missing_pages(server: BucketNginx | Serve) -> None:
    for path, target in (("/simple/demo", "/simple/demo/"), ("/simple", "/simple/")):
        answer = get(server.url, path)
        assert answer.status == 301
        assert answer.header("Location").endswith(target)
    for path in ("/simple/no-such-project/", "/packages/", "/packages/no/such.whl", "/packages/no/such.whl/"):
        missing = get(server.url, path)
        # A plain 404, never the bucket's XML (which names the bucket and the key).
        assert missing.status == 404, path
        assert b"<Error>" not in missing.body and b"NoSuchKey" not in missing.body
    top = get(server.url, "/")
    assert (top.status, top.header("Location")) == (302, "/simple/")


def test_files_are_immutable_and_ranges_work(server: BucketNginx | Serve, bucket: Bucket) -> None:
    key = wheel_key(bucket)
    data = bucket.read(key)
    whole = get(server.url, "/" + key)
    assert (whole.status, whole.body) == (200, data)
    assert whole.header("Cache-Control") == "max-age=31536000, public, immutable"
    assert whole.header("Content-Type") == "application/zip" == objects.content_type(key)
    part = get(server.url, "/" + key, {"Range": "bytes=100-1123"})
    assert part.status == 206
    assert part.header("Content-Range") == f"bytes 100-1123/{len(data)}"
    assert part.body == data[100:1124]
    tail = get(server.url, "/" + key, {"Range": "bytes=-16"})
    assert (tail.status, tail.body) == (206, data[-16:])
    assert get(server.url, "/" + key, {"Range": f"bytes={len(data)}-"}).status == 416
    head = get(server.url, "/" + key, method="HEAD")
    assert (head.status, head.header("Content-Length"), head.body) == (200, str(len(data)), b"")
    metadata = get(server.url, "/" + key + ".metadata")
    assert metadata.body == bucket.read(key + ".metadata")
    assert metadata.header("Content-Type").startswith("text/plain")


def test_conditional_requests_get_304(server: BucketNginx | Serve, bucket: Bucket) -> None:
    key = wheel_key(bucket)
    for path, headers in (
        ("/simple/demo/", {"Accept": UV}),
        ("/simple/demo/", {"Accept": PIP, "Accept-Encoding": "gzip"}),
        ("/simple/", {}),
        ("/" + key, {}),
    ):
        first = get(server.url, path, headers)
        etag, modified = first.header("ETag"), first.header("Last-Modified")
        assert re.fullmatch(r'(W/)?"[^"]+"', etag), (path, etag)
        by_etag = get(server.url, path, {**headers, "If-None-Match": etag})
        assert (by_etag.status, by_etag.body) == (304, b""), path
        assert get(server.url, path, {**headers, "If-Modified-Since": modified}).status == 304, path
        assert get(server.url, path, {**headers, "If-None-Match": '"other"'}).status == 200, path


@pytest.mark.parametrize("query", ["acl", "tagging", "versionId=1", "list-type=2", "uploads", "x-id=GetObject"])
def test_a_query_string_never_reaches_the_bucket(server: BucketNginx | Serve, bucket: Bucket, query: str) -> None:
    # S3 reads ?acl, ?tagging, ?versionId= ... as requests for another resource than the object.
    key = wheel_key(bucket)
    answer = get(server.url, f"/{key}?{query}")
    assert (answer.status, answer.body) == (200, bucket.read(key))
    page = get(server.url, f"/simple/demo/?{query}", {"Accept": UV})
    assert (page.status, page.body) == (200, bucket.read("simple/demo/index.v1_json"))
    assert get(server.url, f"/packages/?{query}").status == 404


@pytest.mark.parametrize(
    "path",
    [
        "/../x",
        "/simple/../../pypi/",
        "/simple/%2e%2e/%2e%2e/",
        "/packages/..%2f..%2f",
        "/packages/%2e%2e/%2e%2e/x",
        "/packages/..%5c..%5cx",
        "/simple/demo/index.html.mirror-tmp",
    ],
)
def test_nothing_outside_the_tree_is_reachable(server: BucketNginx | Serve, path: str) -> None:
    answer = get(server.url, path)
    assert answer.status in {400, 404}, (path, answer.status)
    assert b"ListBucketResult" not in answer.body and b"<Error>" not in answer.body


def test_serve_is_read_only(serve: Serve) -> None:
    for method in ("PUT", "POST", "DELETE"):
        assert get(serve.url, "/simple/demo/", method=method).status == 405


# -- installers through the servers ------------------------------------------------------------------


def pip(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=clean_env(tmp_path), timeout=180
    )


def test_pip_installs_through_each_server(server: BucketNginx | Serve, tmp_path: Path) -> None:
    target = tmp_path / "site"
    result = pip("install", "--index-url", server.url + "simple/", "--target", str(target), "demo", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(target) == {"demo-1.1.dist-info", "dep-2.0.dist-info"}


def test_uv_installs_through_each_server(server: BucketNginx | Serve, tmp_path: Path) -> None:
    assert uv_install(server.url + "simple/", "demo", tmp_path) == {"demo-1.1.dist-info", "dep-2.0.dist-info"}


def test_pip_download_through_nginx_uses_the_metadata_files(nginx: BucketNginx, tmp_path: Path) -> None:
    before = len(nginx.requested_paths())
    dest = tmp_path / "dl"
    result = pip("download", "--index-url", nginx.url + "simple/", "--dest", str(dest), "demo", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["demo-1.1-py3-none-any.whl", "dep-2.0-py3-none-any.whl"]
    paths = nginx.requested_paths()[before:]
    assert any(p.endswith("demo-1.1-py3-none-any.whl.metadata") for p in paths), paths


# -- the command -----------------------------------------------------------------------------------


def _serve_env(seaweedfs: SeaweedFS) -> dict[str, str]:
    return {**os.environ, **seaweedfs.environ}


def test_mirror_serve_command_reads_the_bucket(seaweedfs: SeaweedFS, bucket: Bucket) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "mirror", "--config", str(bucket.config), "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=_serve_env(seaweedfs),
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        match = re.search(r"serving (s3://\S+) at (http://127\.0\.0\.1:\d+/)simple/", banner)
        assert match, banner
        assert match.group(1) == f"s3://{bucket.name}/{bucket.prefix}"
        answer = get(match.group(2), "/simple/demo/", {"Accept": UV})
        assert answer.status == 200
        assert answer.header("Content-Type") == PageFormat.JSON.content_type
        assert answer.body == bucket.read("simple/demo/index.v1_json")
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
        assert process.returncode == EXIT_OK


def test_serving_an_empty_bucket_is_a_config_error(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    config = tmp_path / "mirror.toml"
    config.write_text(
        f'[mirror]\ndirectory = "m"\n[storage]\nbackend = "s3"\nbucket = "{seaweedfs.bucket()}"\n'
        f'endpoint-url = "{seaweedfs.endpoint}"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "mirror", "--config", str(config), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_serve_env(seaweedfs),
    )
    assert result.returncode == EXIT_CONFIG
    assert result.stderr.startswith("mirror: error: nothing to serve: s3://") and result.stderr.count("\n") == 1


def test_serving_a_missing_bucket_is_an_environment_error(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    config = tmp_path / "mirror.toml"
    config.write_text(
        f'[mirror]\ndirectory = "m"\n[storage]\nbackend = "s3"\nbucket = "no-such-bucket"\n'
        f'endpoint-url = "{seaweedfs.endpoint}"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "mirror", "--config", str(config), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_serve_env(seaweedfs),
    )
    assert result.returncode == EXIT_ENVIRONMENT
    assert result.stderr.startswith("mirror: error: s3://no-such-bucket") and result.stderr.count("\n") == 1


def test_a_bucket_gone_while_serving_is_a_502_and_one_log_line(
    seaweedfs: SeaweedFS, bucket: Bucket, capsys: pytest.CaptureFixture[str]
) -> None:
    # A store on a port where nothing listens: the endpoint went away under a running server.
    gone = S3Store(
        bucket.name,
        endpoint=f"http://127.0.0.1:{free_port()}",
        region="us-east-1",
        skip_signature=True,
        client_options={"allow_http": True, "timeout": "5s", "connect_timeout": "1s"},
        retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=1)},
    )
    with Serve(gone, server_class=ObjectServer, where="s3://gone", log=True) as server:  # type: ignore[arg-type]
        answer = get(server.url, "/simple/demo/")
    assert answer.status == 502
    logged = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(logged) == 1 and logged[0].startswith("mirror serve: error: GET /simple/demo/: s3://gone:"), logged


# -- a bare endpoint, and a CDN without negotiation ------------------------------------------------


def test_a_bare_endpoint_serves_the_html_pages_but_not_their_directory_urls(
    seaweedfs: SeaweedFS, bucket: Bucket, tmp_path: Path
) -> None:
    base = seaweedfs.endpoint + bucket.path
    page = get(base, f"{bucket.path}/simple/demo/index.html")  # anonymous: no signature
    assert page.status == 200
    assert page.header("Content-Type") == "text/html; charset=utf-8"
    assert page.header("Cache-Control") == "max-age=60, public"
    assert page.body == bucket.read("simple/demo/index.html")
    # The URL pip and uv ask for is the directory's: S3 has no index documents on its REST
    # endpoint (AWS answers 404 or 403; SeaweedFS an empty 200 "application/x-directory").
    directory = get(base, f"{bucket.path}/simple/demo/")
    assert directory.body != page.body
    result = pip(
        *("download", "--no-deps", "--index-url", f"{base}/simple/", "--dest", str(tmp_path / "dl"), "demo"),
        tmp_path=tmp_path,
    )
    assert result.returncode != 0


def test_pip_and_uv_install_from_a_bare_endpoint_with_find_links(
    seaweedfs: SeaweedFS, bucket: Bucket, tmp_path: Path
) -> None:
    # Each page links its files relatively (../../packages/...), so the page URLs themselves work
    # as flat indexes: --find-links per project, no negotiation, no index documents.
    base = seaweedfs.endpoint + bucket.path
    links = [arg for name in ("demo", "dep") for arg in ("--find-links", f"{base}/simple/{name}/index.html")]
    target = tmp_path / "site"
    result = pip("install", "--no-index", *links, "--target", str(target), "demo", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(target) == {"demo-1.1.dist-info", "dep-2.0.dist-info"}
    env = clean_env(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run(
        [uv_binary(), "venv", "--python", sys.executable, str(venv)], check=True, env=env, capture_output=True
    )
    result = subprocess.run(
        [uv_binary(), "pip", "install", "--python", str(venv / "bin" / "python"), "--no-index", *links, "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(next((venv / "lib").glob("python3*/site-packages"))) == {"demo-1.1.dist-info", "dep-2.0.dist-info"}


# What an S3 website endpoint's index document, a CloudFront Function or a Cloudflare rewrite rule
# does: a URL ending in "/" gets "index.html" appended; nothing else. No negotiation.
CDN_RULE = """
upstream mirror_bucket { server 127.0.0.1:8333; }
server {
    listen 127.0.0.1:8080;
    set $mirror_bucket_path "/pypi";
    proxy_set_header Host 127.0.0.1:8333;
    location ~ /$ {
        rewrite ^ $mirror_bucket_path${uri}index.html? break;
        proxy_pass http://mirror_bucket;
    }
    location / {
        rewrite ^ $mirror_bucket_path$uri? break;
        proxy_pass http://mirror_bucket;
    }
}
"""


@pytest.fixture(scope="module")
def cdn(seaweedfs: SeaweedFS, bucket: Bucket, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BucketNginx]:
    with BucketNginx(seaweedfs, bucket.path, tmp_path_factory.mktemp("cdn"), site=CDN_RULE) as server:
        yield server


def test_pip_and_uv_install_through_a_cdn_that_only_appends_index_html(
    cdn: BucketNginx, bucket: Bucket, tmp_path: Path
) -> None:
    page = get(cdn.url, "/simple/demo/", {"Accept": PIP})
    # JSON asked for first, HTML answered, and labelled so: installers take it.
    assert (page.status, page.header("Content-Type")) == (200, "text/html; charset=utf-8")
    assert page.body == bucket.read("simple/demo/index.html")
    target = tmp_path / "site"
    result = pip("install", "--index-url", cdn.url + "simple/", "--target", str(target), "demo", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(target) == {"demo-1.1.dist-info", "dep-2.0.dist-info"}
    assert uv_install(cdn.url + "simple/", "demo", tmp_path / "uv") == {"demo-1.1.dist-info", "dep-2.0.dist-info"}
