"""Private projects: ``mirror add``/``remove``, ``mirror user add``, uploads to ``/legacy/`` with real
twine and uv (behind real nginx), installs with real pip and uv from one index URL, the reserved
name a sync never takes from the upstream, verify and airgap exports, and every refusal."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mirror.cli.serve import handlers
from mirror.errors import EXIT_CONFIG, EXIT_OK, EXIT_PARTIAL
from tests.conftest import Mirror, StaticServer, check_tree, clean_env, page_files, snapshot
from tests.fakepypi import BuiltFile, FakePyPI, build_sdist, build_wheel
from tests.installers import installed, uv_binary, uv_install
from tests.servers import Nginx, Serve, free_port

PASSWORD = "correct horse battery staple"


def _config(mirror: Mirror, upstream: FakePyPI, **serve: object) -> None:
    mirror.write_config(upstream.simple_url)
    keys = {"users-file": "users.toml", **serve}
    lines = ["[serve]", *(f"{k} = {json.dumps(v)}" for k, v in keys.items())]
    with mirror.config.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


def _user_add(mirror: Mirror, name: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror", "--config", str(mirror.config), "user", "add", name],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def _write(built: BuiltFile, directory: Path, filename: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (filename or built.filename)
    path.write_bytes(built.content)
    return path


@pytest.fixture
def synced(upstream: FakePyPI, mirror: Mirror) -> Mirror:
    """A mirror of ``dep`` (1.0, 2.0) and ``other``; the upstream also has a ``teamlib`` (the confusion bait)."""
    upstream.add_release("dep", "1.0")
    upstream.add_release("dep", "2.0")
    upstream.add_release("other", "1.0")
    upstream.add_release("teamlib", "99.0")
    _config(mirror, upstream)
    assert mirror.run("sync", "dep", "other") == EXIT_OK
    result = _user_add(mirror, "alice", PASSWORD)
    assert result.returncode == EXIT_OK, result.stderr
    return mirror


@pytest.fixture
def dists(tmp_path: Path) -> dict[str, Path]:
    out = tmp_path / "dist"
    return {
        "wheel": _write(build_wheel("teamlib", "1.0", requires_dist=["dep>=2"]), out),
        "sdist": _write(build_sdist("teamlib", "0.9", requires_dist=["dep>=2"]), out),
    }


@pytest.fixture
def served(synced: Mirror) -> Iterator[Serve]:
    from mirror._config import load

    with Serve(synced.web, handlers=handlers(load(synced.config))) as server:
        yield server


def _auth(user: str = "alice", password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _post(
    url: str,
    filename: str,
    content: bytes,
    headers: dict[str, str] | None = None,
    action: str = "file_upload",
    **form: str,
) -> httpx.Response:
    fields = {
        ":action": action,
        "protocol_version": "1",
        "sha256_digest": hashlib.sha256(content).hexdigest(),
        **form,
    }
    return httpx.post(
        url + "legacy/",
        data=fields,
        files={"content": (filename, content, "application/octet-stream")},
        headers=_auth() if headers is None else headers,
        timeout=60,
    )


def _twine(url: str, *files: Path, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = clean_env(Path(files[0]).parent)
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    twine = str(Path(sys.executable).with_name("twine"))
    return subprocess.run(
        [
            twine,
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            url + "legacy/",
            "-u",
            "alice",
            "-p",
            password,
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _uv_publish(url: str, *files: Path, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = clean_env(Path(files[0]).parent)
    return subprocess.run(
        [
            uv_binary(),
            "publish",
            "--publish-url",
            url + "legacy/",
            "--username",
            "alice",
            "--password",
            password,
            "--trusted-publishing",
            "never",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _pip_install(index: str, requirement: str, tmp_path: Path) -> set[str]:
    target = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--index-url", index, "--target", str(target), requirement],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return installed(target)


# -- mirror add / remove, the reserved name, verify, export ---------------------------------------


def test_add_publishes_and_pip_and_uv_install_from_one_index(
    synced: Mirror, dists: dict[str, Path], tmp_path: Path
) -> None:
    assert synced.run("add", str(dists["wheel"]), str(dists["sdist"])) == EXIT_OK
    check_tree(synced.web)
    files = page_files(synced.web, "teamlib")
    assert set(files) == {dists["wheel"].name, dists["sdist"].name}
    wheel = files[dists["wheel"].name]
    assert wheel["hashes"]["sha256"] == hashlib.sha256(dists["wheel"].read_bytes()).hexdigest()
    assert wheel["core-metadata"], "a wheel's METADATA is published beside it (PEP 658)"
    assert "core-metadata" not in files[dists["sdist"].name] or not files[dists["sdist"].name]["core-metadata"]
    root = json.loads((synced.web / "simple" / "index.v1_json").read_text())
    assert {p["name"] for p in root["projects"]} == {"dep", "other", "teamlib"}
    page = json.loads((synced.web / "simple" / "teamlib" / "index.v1_json").read_text())
    assert page["versions"] == ["0.9", "1.0"]
    # Adding the same bytes again changes nothing; the same name with other bytes is refused.
    before = snapshot(synced.web)
    assert synced.run("add", str(dists["wheel"])) == EXIT_OK
    assert snapshot(synced.web) == before
    other = _write(build_wheel("teamlib", "1.0", requires_dist=["dep"]), tmp_path / "other")
    assert synced.run("add", str(other)) == EXIT_CONFIG
    assert snapshot(synced.web) == before
    with StaticServer(synced.web) as static:
        assert _pip_install(static.simple_url, "teamlib", tmp_path / "pip") == {
            "teamlib-1.0.dist-info",
            "dep-2.0.dist-info",
        }
        assert uv_install(static.simple_url, "teamlib", tmp_path / "uv") == {
            "teamlib-1.0.dist-info",
            "dep-2.0.dist-info",
        }


def test_a_private_name_is_never_taken_from_the_upstream(
    synced: Mirror, upstream: FakePyPI, dists: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert synced.run("add", str(dists["wheel"])) == EXIT_OK
    before = snapshot(synced.web)
    upstream.clear_requests()
    upstream.add_release("teamlib", "100.0")  # a newer release "upstream": the dependency-confusion attack
    for args in (("sync",), ("sync", "--force-check"), ("sync", "teamlib"), ("sync", "dep", "teamlib")):
        assert synced.run(*args) == EXIT_OK, args
    assert not [r for r in upstream.requests if "teamlib" in r.path], "the sync asked the upstream for teamlib"
    after = snapshot(synced.web)
    teamlib = {k: v for k, v in after.items() if "teamlib" in k}
    assert teamlib == {k: v for k, v in before.items() if "teamlib" in k}
    assert set(page_files(synced.web, "teamlib")) == {dists["wheel"].name}
    capsys.readouterr()
    assert synced.run("sync", "--explain", "teamlib") == EXIT_OK
    assert "private project" in capsys.readouterr().out
    check_tree(synced.web)


def test_an_upstream_name_needs_replace_upstream(synced: Mirror, upstream: FakePyPI, tmp_path: Path) -> None:
    mine = _write(build_wheel("dep", "3.0"), tmp_path / "mine")
    before = snapshot(synced.web)
    result = synced.run_process("add", str(mine))
    assert result.returncode == EXIT_CONFIG
    assert result.stderr.strip().splitlines()[-1].startswith("mirror: error: dep is mirrored from the upstream")
    assert snapshot(synced.web) == before
    assert synced.run("add", "--replace-upstream", str(mine)) == EXIT_OK
    check_tree(synced.web)
    assert set(page_files(synced.web, "dep")) == {mine.name}
    assert not [p for p in snapshot(synced.web) if p.startswith("packages/") and "/dep-" in p and "3.0" not in p]
    # The next syncs leave it private, and never fetch it.
    upstream.clear_requests()
    assert synced.run("sync", "--force-check") == EXIT_OK
    assert set(page_files(synced.web, "dep")) == {mine.name}
    assert not [r for r in upstream.requests if "/dep" in r.path]
    assert synced.run("verify", "--hashes") == EXIT_OK


def test_remove_a_release_then_the_project(synced: Mirror, dists: dict[str, Path]) -> None:
    assert synced.run("add", str(dists["wheel"]), str(dists["sdist"])) == EXIT_OK
    assert synced.run("remove", "teamlib", "0.9") == EXIT_OK
    check_tree(synced.web)
    assert set(page_files(synced.web, "teamlib")) == {dists["wheel"].name}
    assert not [p for p in snapshot(synced.web) if p.endswith(dists["sdist"].name)]
    assert synced.run("remove", "teamlib", "5.0") == EXIT_CONFIG
    assert synced.run("remove", "dep") == EXIT_CONFIG  # mirrored from the upstream: the sync's
    assert synced.run("remove", "teamlib") == EXIT_OK
    check_tree(synced.web)
    assert not (synced.web / "simple" / "teamlib").exists()
    assert not [p for p in snapshot(synced.web) if "teamlib" in p]
    root = json.loads((synced.web / "simple" / "index.v1_json").read_text())
    assert {p["name"] for p in root["projects"]} == {"dep", "other"}
    assert synced.run("verify", "--hashes") == EXIT_OK


def test_verify_and_airgap_export_carry_private_projects(
    synced: Mirror, dists: dict[str, Path], tmp_path: Path
) -> None:
    assert synced.run("add", str(dists["wheel"]), str(dists["sdist"])) == EXIT_OK
    assert synced.run("verify", "--hashes") == EXIT_OK
    out = tmp_path / "usb"
    out.mkdir()
    assert synced.run("export", str(out), "--full") == EXIT_OK
    offline = Mirror(tmp_path / "offline", tmp_path / "offline" / "mirror.toml")
    offline.root.mkdir()
    offline.config.write_text('[mirror]\ndirectory = "m"\n')
    assert offline.run("import", str(out)) == EXIT_OK
    assert snapshot(offline.web) == snapshot(synced.web)
    assert set(page_files(offline.web, "teamlib")) == {dists["wheel"].name, dists["sdist"].name}
    check_tree(offline.web)


@pytest.mark.parametrize(
    ("make", "complaint"),
    [
        (lambda d: _write(build_wheel("teamlib", "1.0"), d, "notes.txt"), "not a distribution"),
        (lambda d: _write(build_wheel("other-name", "1.0"), d, "teamlib-1.0-py3-none-any.whl"), "metadata says"),
        (lambda d: _write(build_wheel("teamlib", "1.1"), d, "teamlib-1.0-py3-none-any.whl"), "version"),
        (lambda d: _write(build_wheel("teamlib", "1.0"), d, "teamlib-1.0.tar.gz"), "not a sdist archive"),
        (
            lambda d: (
                d.joinpath("teamlib-1.0-py3-none-any.whl").write_bytes(b"not a zip")
                and d / "teamlib-1.0-py3-none-any.whl"
            ),
            "not a wheel",
        ),
        (lambda d: _write(build_wheel("teamlib", "1.0"), d, "teamlib-1.0-py3-none-any-extra-bits.whl"), "valid"),
    ],
)
def test_add_refuses_what_is_not_a_consistent_distribution(
    synced: Mirror, tmp_path: Path, make: object, complaint: str
) -> None:
    directory = tmp_path / "bad"
    directory.mkdir()
    path = make(directory)  # type: ignore[operator]
    before = snapshot(synced.web)
    result = synced.run_process("add", str(path))
    assert result.returncode == EXIT_CONFIG, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("mirror: error: ") and complaint in last, last
    assert "Traceback" not in result.stderr
    assert snapshot(synced.web) == before


def test_user_add_writes_a_salted_hash_with_mode_0600(synced: Mirror) -> None:
    users = synced.root / "users.toml"
    assert users.stat().st_mode & 0o777 == 0o600
    text = users.read_text()
    assert PASSWORD not in text and "scrypt:" in text
    assert _user_add(synced, "bob", PASSWORD).returncode == EXIT_OK
    bob, alice = (line for line in users.read_text().splitlines() if line.startswith(("alice", "bob")))
    assert bob.split(":")[-2] != alice.split(":")[-2], "every hash has its own salt"
    assert _user_add(synced, "../evil", "x").returncode == EXIT_CONFIG
    assert _user_add(synced, "carol", "").returncode == EXIT_CONFIG


# -- uploads ---------------------------------------------------------------------------------------


def test_twine_and_uv_publish_behind_nginx_then_install(synced: Mirror, dists: dict[str, Path], tmp_path: Path) -> None:
    port = free_port()
    server = synced.start_process("serve", "--port", str(port), stderr=subprocess.DEVNULL)
    (tmp_path / "nginx").mkdir()
    try:
        with Nginx(synced.web, tmp_path / "nginx", mirror_port=port) as nginx:
            _wait_http(f"http://127.0.0.1:{port}/simple/")
            result = _twine(nginx.url, dists["wheel"], dists["sdist"])
            assert result.returncode == 0, result.stdout + result.stderr
            uv_dist = tmp_path / "uvdist"
            uv_files = [
                _write(build_wheel("uvlib", "2.0", requires_dist=["teamlib"]), uv_dist),
                _write(build_sdist("uvlib", "2.0"), uv_dist),
            ]
            result = _uv_publish(nginx.url, *uv_files)
            assert result.returncode == 0, result.stdout + result.stderr
            check_tree(synced.web)
            assert set(page_files(synced.web, "teamlib")) == {dists["wheel"].name, dists["sdist"].name}
            assert set(page_files(synced.web, "uvlib")) == {f.name for f in uv_files}
            # Re-uploading a file name: 409 "File already exists". twine's skip_upload() takes a 409, or a
            # 400 saying "already exist", as "already there" (twine 7 allows --skip-existing only
            # towards PyPI, older ones towards any index); uv publish --check-url looks at the index.
            again = _twine(nginx.url, dists["wheel"])
            assert again.returncode != 0 and "409" in again.stdout + again.stderr
            raw = _post(nginx.url, dists["wheel"].name, dists["wheel"].read_bytes())
            assert raw.status_code == 409 and "already exist" in raw.reason_phrase.lower()
            # A wrong password: refused, nothing written.
            before = snapshot(synced.web)
            late = _write(build_wheel("teamlib", "1.1"), tmp_path / "late")
            wrong = _twine(nginx.url, late, password="wrong")
            assert wrong.returncode != 0 and "403" in wrong.stdout + wrong.stderr
            wrong_uv = _uv_publish(nginx.url, late, password="wrong")
            assert wrong_uv.returncode != 0
            assert snapshot(synced.web) == before
            index = nginx.url + "simple/"
            assert _pip_install(index, "uvlib", tmp_path / "pip") == {
                "uvlib-2.0.dist-info",
                "teamlib-1.0.dist-info",
                "dep-2.0.dist-info",
            }
            assert uv_install(index, "uvlib", tmp_path / "uv") == {
                "uvlib-2.0.dist-info",
                "teamlib-1.0.dist-info",
                "dep-2.0.dist-info",
            }
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert synced.run("verify", "--hashes") == EXIT_OK


def _wait_http(url: str) -> None:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_upload_refusals_write_nothing(served: Serve, synced: Mirror, tmp_path: Path) -> None:
    wheel = build_wheel("teamlib", "1.0")
    before = snapshot(synced.web)
    cases: list[tuple[httpx.Response, int, str]] = [
        (_post(served.url, wheel.filename, wheel.content, headers={}), 401, "credentials"),
        (_post(served.url, wheel.filename, wheel.content, headers=_auth(password="nope")), 403, "invalid"),
        (_post(served.url, wheel.filename, wheel.content, headers=_auth(user="mallory")), 403, "invalid"),
        (_post(served.url, wheel.filename, wheel.content, sha256_digest="0" * 64), 400, "sha256"),
        (_post(served.url, "notes.txt", b"hello"), 400, "not a distribution"),
        (_post(served.url, "../teamlib-1.0-py3-none-any.whl", wheel.content), 400, "path-like"),
        (_post(served.url, "teamlib-1.0-py3-none-any.whl", build_wheel("evil", "1.0").content), 400, "metadata says"),
        (_post(served.url, wheel.filename, wheel.content, name="other"), 400, "the form says project"),
        (_post(served.url, wheel.filename, wheel.content, action="remove_pkg"), 400, ":action"),
        (_post(served.url, "teamlib-1.0-py3-none-any.whl", b"PK\x03\x04 truncated"), 400, "not a wheel"),
        (
            _post(served.url, "dep-9.0-py3-none-any.whl", build_wheel("dep", "9.0").content),
            400,
            "mirrored from the upstream",
        ),
        (httpx.get(served.url + "legacy/", headers=_auth()), 405, "POST"),
    ]
    for response, status, phrase in cases:
        assert response.status_code == status, (response.status_code, response.text)
        assert phrase in response.text, response.text
    assert snapshot(synced.web) == before
    assert not list((synced.root / "m" / "state" / "uploads").glob("*")), "spooled uploads left behind"
    ok = _post(served.url, wheel.filename, wheel.content)
    assert ok.status_code == 200, ok.text
    assert _post(served.url, wheel.filename, wheel.content).status_code == 409
    check_tree(synced.web)


def test_an_oversized_upload_is_refused(upstream: FakePyPI, mirror: Mirror) -> None:
    from mirror._config import load

    upstream.add_release("dep", "1.0")
    _config(mirror, upstream, **{"max-upload-mb": 1})
    assert mirror.run("sync") == EXIT_OK
    assert _user_add(mirror, "alice", PASSWORD).returncode == EXIT_OK
    big = build_wheel("teamlib", "1.0", payload_size=3 << 20)
    before = snapshot(mirror.web)
    with Serve(mirror.web, handlers=handlers(load(mirror.config))) as server:
        response = _post(server.url, big.filename, big.content)
        assert response.status_code == 413, response.text
        # Without a Content-Length up front (chunked), the bound holds while it streams.
        chunks = iter([_multipart_body(big.filename, big.content)])
        response = httpx.post(
            server.url + "legacy/",
            content=chunks,
            headers={**_auth(), "Content-Type": f"multipart/form-data; boundary={_BOUNDARY}"},
            timeout=60,
        )
        assert response.status_code == 413, response.text
    assert snapshot(mirror.web) == before
    assert not list((mirror.root / "m" / "state" / "uploads").glob("*"))


_BOUNDARY = "mirror-test-boundary"


def _multipart_body(filename: str, content: bytes) -> bytes:
    fields = {":action": "file_upload", "sha256_digest": hashlib.sha256(content).hexdigest()}
    parts = [
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + f"\r\n--{_BOUNDARY}--\r\n".encode()
    )
    return b"".join(parts)


def test_read_auth_needs_a_user_for_reads(upstream: FakePyPI, mirror: Mirror, tmp_path: Path) -> None:
    from mirror._config import load

    upstream.add_release("dep", "2.0")
    _config(mirror, upstream, **{"read-auth": True})
    assert mirror.run("sync") == EXIT_OK
    assert _user_add(mirror, "alice", PASSWORD).returncode == EXIT_OK
    with Serve(mirror.web, handlers=handlers(load(mirror.config))) as server:
        assert httpx.get(server.url + "simple/").status_code == 401
        assert httpx.get(server.url + "simple/", headers=_auth(password="nope")).status_code == 401
        assert httpx.get(server.url + "simple/dep/", headers=_auth()).status_code == 200
        index = server.url.replace("http://", f"http://alice:{PASSWORD.replace(' ', '%20')}@") + "simple/"
        assert uv_install(index, "dep", tmp_path) == {"dep-2.0.dist-info"}


def test_a_full_disk_during_an_upload_publishes_nothing(upstream: FakePyPI, tmp_path: Path) -> None:
    from mirror._config import load
    from tests.integration.test_torture import mounted

    disk = tmp_path / "disk"
    disk.mkdir()
    with mounted("-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)):
        mirror = Mirror(disk, disk / "mirror.toml")
        upstream.add_release("dep", "1.0")
        _config(mirror, upstream)
        assert mirror.run("sync") == EXIT_OK
        assert _user_add(mirror, "alice", PASSWORD).returncode == EXIT_OK
        big = build_wheel("teamlib", "1.0", payload_size=2 << 20)
        before = snapshot(mirror.web)
        with Serve(mirror.web, handlers=handlers(load(mirror.config))) as server:
            response = _post(server.url, big.filename, big.content)
            assert response.status_code == 507, response.text
            assert "disk full" in response.text or "No space" in response.text
            assert snapshot(mirror.web) == before
            check_tree(mirror.web)
            subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
            assert _post(server.url, big.filename, big.content).status_code == 200
        check_tree(mirror.web)
        assert mirror.run("verify", "--hashes") == EXIT_OK


def test_serve_takes_host_and_port_from_the_config(upstream: FakePyPI, mirror: Mirror) -> None:
    upstream.add_release("dep", "1.0")
    port = free_port()
    _config(mirror, upstream, port=port)
    assert mirror.run("sync") == EXIT_OK
    server = mirror.start_process("serve", stderr=subprocess.DEVNULL)
    try:
        _wait_http(f"http://127.0.0.1:{port}/simple/")
        assert httpx.get(f"http://127.0.0.1:{port}/simple/dep/").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_verify_repair_rewrites_private_pages_and_never_links_a_lost_file(
    synced: Mirror, dists: dict[str, Path]
) -> None:
    assert synced.run("add", str(dists["wheel"]), str(dists["sdist"])) == EXIT_OK
    (synced.web / "simple" / "teamlib" / "index.html").unlink()
    assert synced.run("verify", "--repair") == EXIT_OK
    check_tree(synced.web)
    assert set(page_files(synced.web, "teamlib")) == {dists["wheel"].name, dists["sdist"].name}
    # A lost private file cannot come from the upstream: left out of the page, and said so.
    sdist = next(p for p in synced.web.rglob(dists["sdist"].name))
    sdist.unlink()
    result = synced.run_process("verify", "--repair")
    assert result.returncode == EXIT_PARTIAL, result.stderr
    assert "private files lost or damaged" in result.stderr and dists["sdist"].name in result.stderr
    check_tree(synced.web)
    assert set(page_files(synced.web, "teamlib")) == {dists["wheel"].name}
    assert synced.run("add", str(dists["sdist"])) == EXIT_OK
    assert set(page_files(synced.web, "teamlib")) == {dists["wheel"].name, dists["sdist"].name}
    assert synced.run("verify", "--hashes") == EXIT_OK


def test_a_rebuilt_state_keeps_private_names_reserved(
    synced: Mirror, upstream: FakePyPI, dists: dict[str, Path]
) -> None:
    assert synced.run("add", str(dists["wheel"]), str(dists["sdist"])) == EXIT_OK
    before = snapshot(synced.web)
    for path in (synced.root / "m" / "state").glob("mirror.sqlite3*"):
        path.unlink()
    assert synced.run("verify", "--rebuild-state") == EXIT_OK
    upstream.clear_requests()
    assert synced.run("sync", "--force-check") == EXIT_OK
    assert not [r for r in upstream.requests if "teamlib" in r.path], "the rebuilt state let the sync fetch teamlib"
    assert {k: v for k, v in snapshot(synced.web).items() if "teamlib" in k} == {
        k: v for k, v in before.items() if "teamlib" in k
    }
    assert synced.run("remove", "teamlib", "0.9") == EXIT_OK
    assert set(page_files(synced.web, "teamlib")) == {dists["wheel"].name}
    check_tree(synced.web)
    assert synced.run("verify", "--hashes") == EXIT_OK


def test_an_upload_waits_for_a_running_sync_then_answers_503(served: Serve, synced: Mirror) -> None:
    from mirror._state import Lock
    from mirror.serve.upload import Uploads

    uploads = next(h for h in served.server._handlers if isinstance(h, Uploads))
    uploads.lock_wait = 0.5
    wheel = build_wheel("teamlib", "1.0")
    before = snapshot(synced.web)
    with Lock(synced.root / "m" / "state" / "lock"):  # what a running sync holds
        response = _post(served.url, wheel.filename, wheel.content)
    assert response.status_code == 503 and "another mirror run holds" in response.text, response.text
    assert response.headers["Retry-After"]
    assert snapshot(synced.web) == before
    assert _post(served.url, wheel.filename, wheel.content).status_code == 200
    check_tree(synced.web)


@pytest.mark.parametrize("dependencies", [False, True])
def test_an_allowlist_naming_a_private_project_never_fetches_it(
    upstream: FakePyPI, mirror: Mirror, tmp_path: Path, dependencies: bool
) -> None:
    """Direct discovery (the allowlist's pages) and dependency closure rounds (app needs teamlib) skip it too."""
    upstream.add_release("app", "1.0", requires_dist=["teamlib>=1"])
    upstream.add_release("teamlib", "99.0")
    _config(mirror, upstream)
    with mirror.config.open("a") as handle:
        handle.write(
            f'[filters]\nenabled = ["allowlist"]\n[filters.allowlist]\nprojects = ["app", "teamlib"]\n'
            f"dependencies = {json.dumps(dependencies)}\n"
        )
    wheel = _write(build_wheel("teamlib", "1.0"), tmp_path / "dist")
    assert mirror.run("add", str(wheel)) == EXIT_OK
    upstream.clear_requests()
    assert mirror.run("sync") == EXIT_OK
    assert mirror.run("sync", "--force-check") == EXIT_OK
    assert not [r for r in upstream.requests if "teamlib" in r.path], "the sync asked the upstream for teamlib"
    assert set(page_files(mirror.web, "teamlib")) == {wheel.name}
    assert page_files(mirror.web, "app")
    check_tree(mirror.web)
