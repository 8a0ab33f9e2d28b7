"""What installers see through a web server: real nginx with examples/nginx/mirror.conf, and ``mirror serve``.

One tree is synced per module; both servers answer the same requests, and pip and uv install
through them.
"""

from __future__ import annotations

import gzip
import http.client
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mirror.cli import main
from mirror.core.negotiate import PageFormat
from mirror.errors import EXIT_CONFIG, EXIT_ENVIRONMENT, EXIT_OK
from tests.conftest import check_tree, clean_env
from tests.core.test_negotiate import CASES, PIP, UV
from tests.fakepypi import FakePyPI
from tests.installers import installed, uv_binary, uv_install
from tests.servers import Nginx, Serve


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served")
    with FakePyPI() as up:
        up.add_release("dep", "1.0", upload_time="2024-01-05T00:00:00Z")
        up.add_release("dep", "2.0", upload_time="2024-02-01T00:00:00Z")
        up.add_release("demo", "1.0", requires_dist=["dep>=1"], upload_time="2024-01-10T00:00:00Z")
        up.add_release("demo", "1.1", requires_dist=["dep>=1"], upload_time="2024-03-10T00:00:00Z", payload_size=4096)
        config = root / "mirror.toml"
        config.write_text(f'[mirror]\ndirectory = "m"\nupstream = "{up.simple_url}"\nworkers = 4\n')
        assert main(["--config", str(config), "--quiet", "sync"]) == EXIT_OK
    check_tree(root / "m" / "web")
    return root / "m" / "web"


@pytest.fixture(scope="module")
def nginx(web: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with Nginx(web, tmp_path_factory.mktemp("nginx")) as server:
        yield server


@pytest.fixture(scope="module")
def serve(web: Path) -> Iterator[Serve]:
    with Serve(web) as server:
        yield server


@pytest.fixture(params=["nginx", "serve"])
def server(request: pytest.FixtureRequest) -> Nginx | Serve:
    found: Nginx | Serve = request.getfixturevalue(request.param)
    return found


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


def get(server: Nginx | Serve, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> Answer:
    """One request with exactly these headers (http.client adds none but Host and Accept-Encoding: identity)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        if response.getheader("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return Answer(response.status, response.headers, body)
    finally:
        conn.close()


def a_wheel(web: Path) -> Path:
    return next(web.glob("packages/**/demo-1.1-*.whl"))


@pytest.mark.parametrize(("accept", "expected"), CASES)
def test_each_accept_gets_its_format(
    server: Nginx | Serve, web: Path, accept: str | None, expected: PageFormat
) -> None:
    for path, directory in (("/simple/demo/", web / "simple" / "demo"), ("/simple/", web / "simple")):
        answer = get(server, path, {} if accept is None else {"Accept": accept})
        assert answer.status == 200
        assert answer.header("Content-Type") == expected.content_type
        assert answer.body == (directory / expected.filename).read_bytes()
        assert "Accept" in [v.strip() for v in answer.header("Vary").split(",")]
        assert answer.header("Cache-Control") == "max-age=60, public"


@pytest.mark.parametrize("accept", [UV, PIP, "text/html"])
def test_pages_are_gzipped(server: Nginx | Serve, web: Path, accept: str) -> None:
    answer = get(server, "/simple/demo/", {"Accept": accept, "Accept-Encoding": "gzip"})
    assert answer.header("Content-Encoding") == "gzip"
    expected = "index.html" if accept == "text/html" else "index.v1_json"
    assert answer.body == (web / "simple" / "demo" / expected).read_bytes()


def test_project_without_slash_redirects(server: Nginx | Serve) -> None:
    for path, target in (("/simple/demo", "/simple/demo/"), ("/simple", "/simple/")):
        answer = get(server, path)
        assert answer.status == 301
        assert answer.header("Location").endswith(target)
    assert get(server, "/simple/no-such-project/").status == 404
    top = get(server, "/")
    assert (top.status, top.header("Location")) == (302, "/simple/")


def test_files_are_immutable_and_ranges_work(server: Nginx | Serve, web: Path) -> None:
    wheel = a_wheel(web)
    path = "/" + wheel.relative_to(web).as_posix()
    data = wheel.read_bytes()
    whole = get(server, path)
    assert (whole.status, whole.body) == (200, data)
    assert whole.header("Cache-Control") == "max-age=31536000, public, immutable"
    part = get(server, path, {"Range": "bytes=100-1123"})
    assert part.status == 206
    assert part.header("Content-Range") == f"bytes 100-1123/{len(data)}"
    assert part.body == data[100:1124]
    tail = get(server, path, {"Range": "bytes=-16"})
    assert (tail.status, tail.body) == (206, data[-16:])
    assert get(server, path, {"Range": f"bytes={len(data)}-"}).status == 416
    metadata = get(server, path + ".metadata")
    assert metadata.body == Path(str(wheel) + ".metadata").read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/../state/mirror.sqlite3",
        "/simple/../../state/mirror.sqlite3",
        "/simple/%2e%2e/%2e%2e/state/mirror.sqlite3",
        "/packages/..%2f..%2fstate%2fmirror.sqlite3",
        "/state/mirror.sqlite3",
        "/%2e%2e/m/state/lock",
    ],
)
def test_nothing_outside_web_is_reachable(server: Nginx | Serve, path: str) -> None:
    answer = get(server, path)
    assert answer.status in {400, 404}, (path, answer.status)
    assert b"SQLite" not in answer.body


def test_serve_is_read_only(serve: Serve) -> None:
    answer = get(serve, "/simple/demo/", method="PUT")
    assert answer.status == 405


# -- installers -----------------------------------------------------------------------------------


def pip(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=clean_env(tmp_path), timeout=180
    )


def test_pip_installs_through_each_server(server: Nginx | Serve, tmp_path: Path) -> None:
    target = tmp_path / "site"
    result = pip("install", "--index-url", server.url + "simple/", "--target", str(target), "demo", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(target) == {"demo-1.1.dist-info", "dep-2.0.dist-info"}


def test_pip_download_uses_the_metadata_files(nginx: Nginx, tmp_path: Path) -> None:
    before = len(nginx.requested_paths())
    dest = tmp_path / "dl"
    result = pip("download", "--index-url", nginx.url + "simple/", "--dest", str(dest), "demo", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["demo-1.1-py3-none-any.whl", "dep-2.0-py3-none-any.whl"]
    paths = nginx.requested_paths()[before:]
    assert any(p.endswith("demo-1.1-py3-none-any.whl.metadata") for p in paths), paths
    assert any(p.endswith("dep-2.0-py3-none-any.whl.metadata") for p in paths), paths


def test_uv_installs_through_each_server(server: Nginx | Serve, tmp_path: Path) -> None:
    assert uv_install(server.url + "simple/", "demo", tmp_path) == {"demo-1.1.dist-info", "dep-2.0.dist-info"}


def test_uv_exclude_newer_picks_what_was_uploaded_before(nginx: Nginx, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("demo\n")
    result = subprocess.run(
        [
            *(uv_binary(), "pip", "compile", "requirements.in", "--python", sys.executable, "--no-header"),
            *("--index-url", nginx.url + "simple/", "--exclude-newer", "2024-01-20T00:00:00Z"),
        ],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        cwd=tmp_path,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    pins = [line.strip() for line in result.stdout.splitlines() if "==" in line]
    # demo 1.1 (March) and dep 2.0 (February) are newer than the cut-off.
    assert pins == ["demo==1.0", "dep==1.0"]


# -- the command ----------------------------------------------------------------------------------


def test_mirror_serve_command(web: Path, tmp_path: Path) -> None:
    config = tmp_path / "mirror.toml"
    config.write_text(f'[mirror]\ndirectory = "{web.parent}"\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "mirror", "--config", str(config), "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)simple/", banner)
        assert match, banner
        parts = urlsplit(match.group(1))
        conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=10)
        conn.request("GET", "/simple/demo/", headers={"Accept": UV})
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == PageFormat.JSON.content_type
        assert response.read() == (web / "simple" / "demo" / "index.v1_json").read_bytes()
        conn.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)  # also closes its stderr pipe
        assert process.returncode == EXIT_OK


def test_serve_before_any_sync_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "mirror.toml").write_text('[mirror]\ndirectory = "m"\n')
    (tmp_path / "m").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "mirror", "--config", str(tmp_path / "mirror.toml"), "serve"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == EXIT_CONFIG
    assert result.stderr.startswith("mirror: error: nothing to serve") and result.stderr.count("\n") == 1


def test_serve_on_a_busy_port_is_an_environment_error(web: Path, tmp_path: Path) -> None:
    (tmp_path / "mirror.toml").write_text(f'[mirror]\ndirectory = "{web.parent}"\n')
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mirror", "--config", str(tmp_path / "mirror.toml"), "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == EXIT_ENVIRONMENT
    assert "cannot serve on 127.0.0.1" in result.stderr and result.stderr.count("\n") == 1


def test_serve_does_not_follow_symlinks_out_of_the_tree(tmp_path: Path) -> None:
    web = tmp_path / "web"
    (web / "simple").mkdir(parents=True)
    (web / "simple" / "index.html").write_text("<html></html>")
    (tmp_path / "secret.txt").write_text("secret")
    (web / "packages").mkdir()
    (web / "packages" / "leak.whl").symlink_to(tmp_path / "secret.txt")
    (web / "packages" / "dir").symlink_to(tmp_path)
    (web / "packages" / "x.whl.mirror-tmp").write_text("half a file")
    with Serve(web) as server:
        for path in ("/packages/leak.whl", "/packages/dir/secret.txt", "/packages/x.whl.mirror-tmp"):
            answer = get(server, path)
            assert answer.status == 404, path
            assert b"secret" not in answer.body and b"half" not in answer.body
        assert get(server, "/simple/").status == 200
