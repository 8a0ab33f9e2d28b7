"""What installers see through a web server: real nginx with examples/nginx/mirror.conf, and ``mirror serve``.

One tree is synced per module; both servers answer the same requests, and pip and uv install
through them.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp.web import BaseRequest, StreamResponse

from mirror.cli import main
from mirror.core.negotiate import PageFormat
from mirror.errors import EXIT_CONFIG, EXIT_ENVIRONMENT, EXIT_OK
from mirror.serve.static import MirrorServer
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


def get(server: Nginx | Serve, path: str, headers: dict[str, str | bytes] | None = None, method: str = "GET") -> Answer:
    """One request with exactly these headers (http.client adds none but Host and Accept-Encoding: identity)."""
    parts = urlsplit(server.url)
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


# -- hostile trees: symlinks out of web/, a directory where a page should be ------------------------


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tree someone tampered with: each way out of ``web/`` that a served path could take."""
    root = tmp_path_factory.mktemp("hostile")
    web = root / "web"
    (web / "simple" / "ok").mkdir(parents=True)
    (web / "simple" / "index.html").write_text("<html></html>")
    (web / "simple" / "ok" / "index.html").write_text("<html>ok</html>")
    (root / "secret.txt").write_text("secret")
    (root / "secret.json").write_text('{"secret": true}')
    # Reproductions from issue 12: a symlinked index.html / index.v1_json served the outside file.
    (web / "simple" / "linked-html").mkdir()
    (web / "simple" / "linked-html" / "index.html").symlink_to(root / "secret.txt")
    (web / "simple" / "linked-json").mkdir()
    (web / "simple" / "linked-json" / "index.html").write_text("<html>decoy</html>")
    (web / "simple" / "linked-json" / "index.v1_json").symlink_to(root / "secret.json")
    (web / "simple" / "linked-dir").symlink_to(root)
    # ...and an index.v1_json that is a directory: a handler traceback and a dropped connection.
    (web / "simple" / "dir-json").mkdir()
    (web / "simple" / "dir-json" / "index.html").write_text("<html>dir</html>")
    (web / "simple" / "dir-json" / "index.v1_json").mkdir()
    (web / "packages").mkdir()
    (web / "packages" / "leak.whl").symlink_to(root / "secret.txt")
    (web / "packages" / "dir").symlink_to(root)
    (web / "packages" / "x.whl.mirror-tmp").write_text("half a file")
    return web


@pytest.fixture(scope="module", params=["nginx", "serve"])
def hostile_server(
    request: pytest.FixtureRequest, hostile: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx | Serve]:
    server = Nginx(hostile, tmp_path_factory.mktemp("nginx-hostile")) if request.param == "nginx" else Serve(hostile)
    with server:
        yield server


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/simple/linked-html/", None),
        ("/simple/linked-json/", UV),
        ("/simple/linked-dir/secret.txt", None),
        ("/simple/linked-dir/", None),
        ("/simple/dir-json/", UV),
        ("/packages/leak.whl", None),
        ("/packages/dir/secret.txt", None),
        ("/packages/x.whl.mirror-tmp", None),
    ],
)
def test_nothing_behind_a_symlink_out_of_web(hostile_server: Nginx | Serve, path: str, accept: str | None) -> None:
    answer = get(hostile_server, path, {} if accept is None else {"Accept": accept})
    assert answer.status in {403, 404}, (path, answer.status)
    assert b"secret" not in answer.body and b"half" not in answer.body
    # The server is still there, and still serves what is inside.
    assert get(hostile_server, "/simple/ok/").body == b"<html>ok</html>"


def test_a_page_that_is_a_directory_is_404_and_its_html_still_served(hostile_server: Nginx | Serve) -> None:
    assert get(hostile_server, "/simple/dir-json/", {"Accept": UV}).status == 404
    assert get(hostile_server, "/simple/dir-json/").body == b"<html>dir</html>"


def test_serve_follows_symlinks_that_stay_inside_web(tmp_path: Path) -> None:
    web = tmp_path / "web"
    (web / "simple" / "real").mkdir(parents=True)
    (web / "simple" / "real" / "index.html").write_text("<html>real</html>")
    (web / "simple" / "alias").symlink_to(web / "simple" / "real")
    with Serve(web) as server:
        assert get(server, "/simple/alias/").body == b"<html>real</html>"


# -- Range: RFC 9110 §14, nginx and mirror serve alike --------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "bytes=5-2",
        "bytes=a-b",
        "bytes=-",
        "bytes=" + "1" * 5000 + "-",  # once a traceback and a dropped connection
        "bytes=0-" + "9" * 19,
        "bytes=\u0663-".encode(),  # non-ASCII digits (UTF-8 on the wire): once a traceback too
        "bytes=0-\u0661\u0660".encode(),
    ],
)
def test_invalid_ranges_are_416(server: Nginx | Serve, web: Path, value: str | bytes) -> None:
    wheel = a_wheel(web)
    answer = get(server, "/" + wheel.relative_to(web).as_posix(), {"Range": value})
    assert answer.status == 416, value
    assert answer.header("Content-Range") == f"bytes */{wheel.stat().st_size}"
    assert get(server, "/simple/demo/").status == 200


def test_ranges_the_rfc_says_to_ignore(server: Nginx | Serve, web: Path) -> None:
    wheel = a_wheel(web)
    path, data = "/" + wheel.relative_to(web).as_posix(), wheel.read_bytes()
    for value in ("items=0-5", "bytes =0-5"):  # an unknown unit (§14.2)
        answer = get(server, path, {"Range": value})
        assert (answer.status, answer.body) == (200, data), value
    etag = get(server, path).header("ETag")
    part = get(server, path, {"Range": "bytes=0-9", "If-Range": etag})
    assert (part.status, part.body) == (206, data[:10])
    stale = get(server, path, {"Range": "bytes=0-9", "If-Range": '"not-this-one"'})
    assert (stale.status, stale.body) == (200, data)  # §13.1.5: the validator changed, send it all
    assert get(server, path, {"Range": "bytes=0-9"}, method="HEAD").header("Content-Length") in {"10", str(len(data))}


# -- validators and conditional requests ------------------------------------------------------------


def served_paths(web: Path) -> list[tuple[str, dict[str, str | bytes], Path]]:
    wheel = a_wheel(web)
    file_path = "/" + wheel.relative_to(web).as_posix()
    return [
        ("/simple/", {}, web / "simple" / "index.html"),
        ("/simple/demo/", {"Accept": UV}, web / "simple" / "demo" / "index.v1_json"),
        ("/simple/demo/", {"Accept": PIP, "Accept-Encoding": "gzip"}, web / "simple" / "demo" / "index.v1_json"),
        ("/simple/demo/", {"Accept": "text/html"}, web / "simple" / "demo" / "index.html"),
        (file_path, {}, wheel),
        (file_path + ".metadata", {}, Path(str(wheel) + ".metadata")),
    ]


def test_every_page_and_file_has_etag_and_last_modified(server: Nginx | Serve, web: Path) -> None:
    for path, headers, source in served_paths(web):
        answer = get(server, path, headers)
        assert answer.status == 200
        assert re.fullmatch(r'(W/)?"[^"]+"', answer.header("ETag")), (path, answer.header("ETag"))
        modified = parsedate_to_datetime(answer.header("Last-Modified"))
        assert int(modified.timestamp()) == int(source.stat().st_mtime), path


def test_conditional_requests_get_304(server: Nginx | Serve, web: Path) -> None:
    for path, headers, source in served_paths(web):
        first = get(server, path, headers)
        etag, modified = first.header("ETag"), first.header("Last-Modified")
        by_etag = get(server, path, {**headers, "If-None-Match": etag})
        assert (by_etag.status, by_etag.body) == (304, b""), path
        # nginx sends a 304 for a gzipped page with the strong form of the tag: same opaque tag.
        assert by_etag.header("ETag").removeprefix("W/") == etag.removeprefix("W/")
        assert get(server, path, {**headers, "If-None-Match": f'"x", {etag}'}).status == 304
        assert get(server, path, {**headers, "If-Modified-Since": modified}).status == 304
        later = formatdate(source.stat().st_mtime + 3600, usegmt=True)
        assert get(server, path, {**headers, "If-Modified-Since": later}).status == 304
        earlier = formatdate(source.stat().st_mtime - 3600, usegmt=True)
        assert get(server, path, {**headers, "If-Modified-Since": earlier}).status == 200
        # §13.1.3: with If-None-Match present, If-Modified-Since is not looked at.
        changed = get(server, path, {**headers, "If-None-Match": '"other"', "If-Modified-Since": modified})
        assert changed.status == 200
        assert get(server, path, {**headers, "If-Modified-Since": "not a date"}).status == 200


def test_a_republished_page_gets_a_new_etag(tmp_path: Path) -> None:
    web = tmp_path / "web"
    (web / "simple" / "p").mkdir(parents=True)
    page = web / "simple" / "p" / "index.html"
    page.write_text("<html>1</html>")
    with Serve(web) as server:
        etag = get(server, "/simple/p/").header("ETag")
        temp = page.with_name("index.html.new")
        temp.write_text("<html>2</html>")  # same size, same second: only the ns of the mtime differ
        temp.replace(page)
        answer = get(server, "/simple/p/", {"If-None-Match": etag})
        assert (answer.status, answer.body) == (200, b"<html>2</html>")


def _settled(capsys: pytest.CaptureFixture[str]) -> str:
    """Everything the server thread logged, once it has logged nothing for 0.3 s: it writes a request's
    line after the answer is sent, so the last lines of one sync can come after the sync returns."""
    text, quiet_since = "", time.monotonic()
    while time.monotonic() - quiet_since < 0.3:
        more = capsys.readouterr().err
        if more:
            text, quiet_since = text + more, time.monotonic()
        time.sleep(0.05)
    return text


def test_a_mirror_of_a_served_mirror_gets_304s_on_a_noop_rerun(
    serve: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Chained mirrors: the downstream's conditional requests are answered 304 when nothing changed."""
    config = tmp_path / "mirror.toml"
    config.write_text(f'[mirror]\ndirectory = "down"\nupstream = "{serve.url}simple/"\nworkers = 2\n')
    serve.server.log = True
    try:
        assert main(["--config", str(config), "--quiet", "sync"]) == EXIT_OK
        first = _settled(capsys)
        assert main(["--config", str(config), "--quiet", "sync"]) == EXIT_OK
        again = _settled(capsys)
    finally:
        serve.server.log = False
    check_tree(tmp_path / "down" / "web")
    assert re.search(r'"GET /simple/" 200', first), first
    statuses = re.findall(r'"GET (\S+)" (\d+)', again)
    assert statuses, again
    assert all(status == "304" for _path, status in statuses), statuses


# -- errors, bursts and idle connections --------------------------------------------------------------


class _Faulty(MirrorServer):
    """A fault injected into one request's handling: what any unforeseen handler error looks like."""

    async def _answer(self, request: BaseRequest) -> StreamResponse:
        if request.path == "/boom":
            raise RuntimeError("injected fault")
        return await super()._answer(request)


def test_a_handler_error_is_a_500_and_a_log_line(web: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Serve(web, _Faulty, log=True) as server:
        answer = get(server, "/boom")
        assert answer.status == 500
        assert get(server, "/simple/demo/").status == 200
    err = capsys.readouterr().err
    assert "mirror serve: error: GET /boom: RuntimeError: injected fault" in err
    assert "Traceback" not in err


def test_a_burst_of_200_connections_is_all_answered(serve: Serve) -> None:
    port = urlsplit(serve.url).port
    assert port is not None

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /simple/demo/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer

    async def burst() -> list[bytes]:
        async with asyncio.timeout(30):
            return await asyncio.gather(*(one() for _ in range(200)))

    answers = asyncio.run(burst())
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)


def test_an_idle_connection_is_closed_and_blocks_nobody(web: Path) -> None:
    with Serve(web, idle_timeout=1.0) as server:
        port = urlsplit(server.url).port
        assert port is not None
        silent = socket.create_connection(("127.0.0.1", port), timeout=10)
        partial = socket.create_connection(("127.0.0.1", port), timeout=10)
        partial.sendall(b"GET /simple/ HTTP/1.1\r\nHost: t\r\n")  # headers never finished
        began = time.monotonic()
        for _ in range(20):  # others are served meanwhile, at once
            assert get(server, "/simple/demo/").status == 200
        assert time.monotonic() - began < 1.0
        for sock in (silent, partial):
            with sock:
                assert sock.recv(1024) == b""  # closed by the server
        assert 0.9 < time.monotonic() - began < 8
        # A keep-alive connection that went quiet after a request is closed too.
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        kept.request("GET", "/simple/")
        kept.getresponse().read()
        assert kept.sock is not None
        assert kept.sock.recv(1024) == b""
        kept.close()
