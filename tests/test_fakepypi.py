"""Tests for the fake PyPI upstream in ``tests/fakepypi``."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from packaging.utils import parse_wheel_filename

from tests.fakepypi import BuiltFile, FakePyPI, build_sdist, build_wheel
from tests.fakepypi.faults import MAINTENANCE_PAGE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
DEV_PYTHON = Path(sys.executable)
UV = DEV_PYTHON.parent / "uv"
BANDERSNATCH = Path("/work/bsvenv/bin/bandersnatch")
REPO_ROOT = Path(__file__).resolve().parent.parent


# -- helpers & fixtures ---------------------------------------------------------


class PageParser(HTMLParser):
    """Collects anchors, meta tags and comments of a simple-index page."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.metas: dict[str, str | None] = {}
        self.comments: list[str] = []
        self._open: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = dict(attrs)
        elif tag == "meta":
            d = dict(attrs)
            self.metas[str(d.get("name"))] = d.get("content")

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.anchors.append((self._open, data))
            self._open = None

    def handle_comment(self, data: str) -> None:
        self.comments.append(data.strip())


def parse_page(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    parser.close()
    return parser


@pytest.fixture
def up() -> Iterator[FakePyPI]:
    with FakePyPI() as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False, timeout=30) as c:
        yield c


def get_json(client: httpx.Client, url: str) -> Any:
    response = client.get(url, headers={"Accept": JSON_V1})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JSON_V1
    return response.json()


# -- builder --------------------------------------------------------------------


def test_wheel_is_deterministic_and_well_formed() -> None:
    kwargs: dict[str, Any] = {"requires_dist": ["dep>=1"], "requires_python": ">=3.8"}
    wheel = build_wheel("My.Pkg", "1.0", payload_size=1000, **kwargs)
    assert wheel == build_wheel("My.Pkg", "1.0", payload_size=1000, **kwargs)
    assert wheel.filename == "my_pkg-1.0-py3-none-any.whl"
    assert wheel.sha256 == hashlib.sha256(wheel.content).hexdigest()
    assert wheel.size == len(wheel.content) > 1000
    with zipfile.ZipFile(io.BytesIO(wheel.content)) as zf:
        names = zf.namelist()
        assert "my_pkg/__init__.py" in names
        assert len(zf.read("my_pkg/_payload.bin")) == 1000
        assert b'__version__ = "1.0"' in zf.read("my_pkg/__init__.py")
        metadata = zf.read("my_pkg-1.0.dist-info/METADATA")
        record = zf.read("my_pkg-1.0.dist-info/RECORD").decode()
        wheel_file = zf.read("my_pkg-1.0.dist-info/WHEEL").decode()
        assert {i.date_time for i in zf.infolist()} == {(2024, 1, 1, 0, 0, 0)}
        _check_record(zf, record)
    assert metadata == wheel.metadata
    assert b"Requires-Dist: dep>=1\n" in metadata
    assert b"Requires-Python: >=3.8\n" in metadata
    assert "Root-Is-Purelib: true" in wheel_file
    assert "Tag: py3-none-any" in wheel_file


def _check_record(zf: zipfile.ZipFile, record: str) -> None:
    """Every RECORD row matches the archive member's hash and size."""
    rows = [line.split(",") for line in record.splitlines()]
    assert sorted(r[0] for r in rows) == sorted(zf.namelist())
    for path, digest, size in rows:
        if path.endswith("RECORD"):
            assert digest == size == ""
            continue
        data = zf.read(path)
        expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        assert digest == f"sha256={expected.decode()}"
        assert int(size) == len(data)


def test_wheel_compressed_and_platform_tags() -> None:
    wheel = build_wheel("demo", "2.0", tag="py2.py3-none-any")
    platform = build_wheel("demo", "2.0", tag="cp311-cp311-manylinux_2_28_x86_64")
    assert platform.filename == "demo-2.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert platform.python_version == "cp311"
    tags = _wheel_file(wheel)
    assert "Tag: py2-none-any" in tags and "Tag: py3-none-any" in tags
    assert "Root-Is-Purelib: false" in _wheel_file(platform)
    assert "Tag: cp311-cp311-manylinux_2_28_x86_64" in _wheel_file(platform)


def _wheel_file(wheel: BuiltFile) -> str:
    with zipfile.ZipFile(io.BytesIO(wheel.content)) as zf:
        [path] = [n for n in zf.namelist() if n.endswith(".dist-info/WHEEL")]
        return zf.read(path).decode()


def test_payload_is_seeded_by_name_and_version() -> None:
    a = build_wheel("demo", "1.0", payload_size=64)
    b = build_wheel("demo", "1.1", payload_size=64)
    assert a.sha256 != b.sha256
    assert a == build_wheel("demo", "1.0", payload_size=64)


def test_sdist_is_deterministic_and_real(tmp_path: Path) -> None:
    sdist = build_sdist("My.Pkg", "1.0", requires_dist=["dep"], requires_python=">=3.8")
    assert sdist == build_sdist("My.Pkg", "1.0", requires_dist=["dep"], requires_python=">=3.8")
    assert sdist.filename == "my_pkg-1.0.tar.gz"
    assert sdist.metadata is None
    with tarfile.open(fileobj=io.BytesIO(sdist.content), mode="r:gz") as tf:
        members = {m.name: m for m in tf.getmembers()}
        assert {m.mtime for m in members.values()} == {1704067200}
        pkg_info = tf.extractfile(members["my_pkg-1.0/PKG-INFO"])
        assert pkg_info is not None and b"Requires-Python: >=3.8" in pkg_info.read()
        assert "my_pkg-1.0/pyproject.toml" in members
        assert "my_pkg-1.0/my_pkg/__init__.py" in members
    # The sdist really builds (setuptools from the dev venv, no network).
    path = tmp_path / sdist.filename
    path.write_bytes(sdist.content)
    _run(
        [
            DEV_PYTHON,
            "-m",
            "pip",
            "wheel",
            "--no-build-isolation",
            "--no-deps",
            "--no-index",
            "-w",
            tmp_path / "out",
            path,
        ]
    )
    [built] = (tmp_path / "out").iterdir()
    name, version, _, _ = parse_wheel_filename(built.name)  # old setuptools: "My.Pkg-1.0-..."
    assert (name, str(version)) == ("my-pkg", "1.0")


def test_builtfile_from_path(tmp_path: Path) -> None:
    wheel = build_wheel("demo", "1.0")
    (tmp_path / wheel.filename).write_bytes(wheel.content)
    loaded = BuiltFile.from_path(tmp_path / wheel.filename)
    assert loaded == wheel


# -- simple API pages -------------------------------------------------------------


def test_serials(up: FakePyPI) -> None:
    assert up.serial == 0
    up.add_release("alpha", "1.0")
    up.add_release("beta", "1.0")
    up.add_release("alpha", "2.0")
    assert up.serial == 3
    assert up.project_serial("alpha") == 3
    assert up.project_serial("Beta") == 2
    with pytest.raises(KeyError):
        up.project_serial("nope")


def test_lifecycle_and_restart() -> None:
    up = FakePyPI()
    with pytest.raises(RuntimeError):
        _ = up.url
    up.add_release("demo", "1.0")  # the model can be filled before starting
    for _ in range(2):
        with up:
            assert up.simple_url == f"{up.url}/simple/"
            assert httpx.get(f"{up.simple_url}demo/").status_code == 200
            with pytest.raises(RuntimeError):
                up.start()
    up.stop()  # idempotent


def test_root_json_and_html(up: FakePyPI, client: httpx.Client) -> None:
    up.add_release("Zeta_Pkg", "1.0")
    up.add_release("alpha", "1.0")
    doc = get_json(client, up.simple_url)
    assert doc["meta"] == {"api-version": "1.4", "_last-serial": 2}
    assert doc["projects"] == [
        {"name": "alpha", "_last-serial": 2},
        {"name": "zeta-pkg", "_last-serial": 1},
    ]
    response = client.get(up.simple_url)
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-pypi-last-serial"] == "2"
    assert response.headers["vary"] == "Accept"
    page = parse_page(response.text)
    assert [(a["href"], text) for a, text in page.anchors] == [
        ("/simple/alpha/", "alpha"),
        ("/simple/zeta-pkg/", "zeta-pkg"),
    ]
    assert page.metas["pypi:repository-version"] == "1.4"
    assert page.comments == ["SERIAL 2"]


def test_project_json(up: FakePyPI, client: httpx.Client) -> None:
    wheel, sdist = up.add_release("demo", "1.0", requires_python=">=3.8")
    up.add_release("demo", "1.10", sdist=False)
    up.add_release("demo", "1.9", sdist=False)
    up.yank("demo", "1.9", "broken")
    response = client.get(f"{up.simple_url}demo/", headers={"Accept": JSON_V1})
    assert response.headers["x-pypi-last-serial"] == "4"
    doc = response.json()
    assert doc["meta"] == {"api-version": "1.4", "_last-serial": 4}
    assert doc["name"] == "demo"
    assert doc["versions"] == ["1.0", "1.9", "1.10"]
    assert "project-status" not in doc
    files = {f["filename"]: f for f in doc["files"]}
    w = files[wheel.filename]
    assert w["hashes"] == {"sha256": wheel.sha256}
    assert w["size"] == wheel.size
    assert w["requires-python"] == ">=3.8"
    assert w["upload-time"] == "2024-01-01T00:01:00.000000Z"
    assert w["yanked"] is False
    assert w["core-metadata"] == {"sha256": hashlib.sha256(wheel.metadata or b"").hexdigest()}
    assert w["data-dist-info-metadata"] == w["core-metadata"]
    assert re.fullmatch(
        rf"{up.url}/packages/[0-9a-f]{{2}}/[0-9a-f]{{2}}/[0-9a-f]{{60}}/{wheel.filename}",
        w["url"],
    )
    assert files[sdist.filename]["core-metadata"] is False
    assert files["demo-1.9-py3-none-any.whl"]["yanked"] == "broken"
    assert files["demo-1.10-py3-none-any.whl"]["requires-python"] is None


def test_project_html(up: FakePyPI, client: httpx.Client) -> None:
    wheel, sdist = up.add_release("demo", "1.0", requires_python=">=3.8")
    up.yank("demo", "1.0")
    response = client.get(f"{up.simple_url}demo/", headers={"Accept": HTML_V1})
    assert response.headers["content-type"] == f"{HTML_V1}; charset=utf-8"
    assert 'data-requires-python="&gt;=3.8"' in response.text
    page = parse_page(response.text)
    anchors = {text: attrs for attrs, text in page.anchors}
    w = anchors[wheel.filename]
    assert w["href"] == f"{up.file_url(wheel.filename)}#sha256={wheel.sha256}"
    assert w["data-requires-python"] == ">=3.8"
    assert w["data-yanked"] == ""
    metadata_hash = hashlib.sha256(wheel.metadata or b"").hexdigest()
    assert w["data-core-metadata"] == f"sha256={metadata_hash}"
    assert w["data-dist-info-metadata"] == f"sha256={metadata_hash}"
    assert "data-core-metadata" not in anchors[sdist.filename]
    assert page.metas["pypi:repository-version"] == "1.4"
    assert page.comments == ["SERIAL 2"]


def test_html_attributes_are_escaped(up: FakePyPI, client: httpx.Client) -> None:
    up.add_release("demo", "1.0", sdist=False)
    up.yank("demo", "1.0", 'bad "quote" & <tag>')
    text = client.get(f"{up.simple_url}demo/").text
    assert 'data-yanked="bad &quot;quote&quot; &amp; &lt;tag&gt;"' in text
    [(attrs, _)] = parse_page(text).anchors
    assert attrs["data-yanked"] == 'bad "quote" & <tag>'


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (f"{JSON_V1}, {HTML_V1};q=0.2, text/html;q=0.01", JSON_V1),
        ("text/html", "text/html; charset=utf-8"),
        (f"{JSON_V1};q=0.1, text/html", "text/html; charset=utf-8"),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        (HTML_V1, f"{HTML_V1}; charset=utf-8"),
        ("*/*", "text/html; charset=utf-8"),
        (f"text/html;q=0, {JSON_V1};q=0.5", JSON_V1),
    ],
)
def test_content_negotiation(up: FakePyPI, client: httpx.Client, accept: str, content_type: str) -> None:
    up.add_release("demo", "1.0")
    for url in (up.simple_url, f"{up.simple_url}demo/"):
        response = client.get(url, headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"] == content_type
        if content_type == JSON_V1:
            assert response.json()["meta"]["api-version"] == "1.4"
        else:
            assert response.text.startswith("<!DOCTYPE html>")


def test_no_accept_header_gets_html_and_unacceptable_gets_406(up: FakePyPI) -> None:
    up.add_release("demo", "1.0")
    with httpx.Client() as c:
        request = c.build_request("GET", up.simple_url)
        del request.headers["Accept"]
        assert c.send(request).headers["content-type"] == "text/html; charset=utf-8"
        assert c.get(up.simple_url, headers={"Accept": "application/json"}).status_code == 406


def test_etag_and_304(up: FakePyPI, client: httpx.Client) -> None:
    up.add_release("demo", "1.0")
    url = f"{up.simple_url}demo/"
    first = client.get(url, headers={"Accept": JSON_V1})
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[^"]+"', etag)
    cached = client.get(url, headers={"Accept": JSON_V1, "If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    html_etag = client.get(url).headers["etag"]
    assert html_etag != etag
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 200
    up.add_release("demo", "2.0")
    changed = client.get(url, headers={"Accept": JSON_V1, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    root = client.get(up.simple_url)
    again = client.get(up.simple_url, headers={"If-None-Match": f"W/{root.headers['etag']}"})
    assert again.status_code == 304


def test_redirects_and_404(up: FakePyPI, client: httpx.Client) -> None:
    up.add_release("my-pkg", "1.0")
    for path in ("/simple/My_Pkg/", "/simple/my.pkg/", "/simple/My_Pkg", "/simple/my-pkg"):
        response = client.get(up.url + path)
        assert response.status_code == 301, path
        assert response.headers["location"] == "/simple/my-pkg/"
    assert client.get(f"{up.url}/simple").headers["location"] == "/simple/"
    assert client.get(f"{up.simple_url}nope/").status_code == 404
    assert client.get(f"{up.url}/nothing/here").status_code == 404
    followed = httpx.get(f"{up.url}/simple/My_Pkg", follow_redirects=True)
    assert followed.status_code == 200 and "my_pkg-1.0.tar.gz" in followed.text


def test_project_status(up: FakePyPI, client: httpx.Client) -> None:
    up.add_release("demo", "1.0")
    up.set_status("demo", "archived", "moved on")
    doc = get_json(client, f"{up.simple_url}demo/")
    assert doc["project-status"] == {"status": "archived", "reason": "moved on"}
    assert doc["files"]
    up.set_status("demo", "quarantined")
    doc = get_json(client, f"{up.simple_url}demo/")
    assert doc["project-status"] == {"status": "quarantined", "reason": None}
    assert doc["files"] == [] and doc["versions"] == []
    page = parse_page(client.get(f"{up.simple_url}demo/").text)
    assert page.anchors == []
    assert page.metas["pypi:project-status"] == "quarantined"
    up.set_status("demo", None)
    assert "project-status" not in get_json(client, f"{up.simple_url}demo/")


def test_removals(up: FakePyPI, client: httpx.Client) -> None:
    wheel, sdist = up.add_release("demo", "1.0")
    up.add_release("demo", "2.0")
    wheel_url = up.file_url(wheel.filename)
    up.remove_file("demo", sdist.filename)
    doc = get_json(client, f"{up.simple_url}demo/")
    assert sdist.filename not in {f["filename"] for f in doc["files"]}
    up.remove_release("demo", "1.0")
    doc = get_json(client, f"{up.simple_url}demo/")
    assert doc["versions"] == ["2.0"]
    assert client.get(wheel_url).status_code == 404
    up.remove_project("demo")
    assert up.serial == 5
    assert client.get(f"{up.simple_url}demo/").status_code == 404
    assert get_json(client, up.simple_url)["projects"] == []
    with pytest.raises(KeyError):
        up.remove_release("demo", "2.0")


def test_duplicate_filename_is_rejected(up: FakePyPI) -> None:
    wheel = build_wheel("demo", "1.0")
    up.add_file("demo", "1.0", wheel)
    with pytest.raises(ValueError):
        up.add_file("demo", "1.0", wheel)
    assert up.serial == 1


def test_explicit_upload_time(up: FakePyPI, client: httpx.Client) -> None:
    up.add_release("demo", "1.0", sdist=False, upload_time="2020-02-03T04:05:06Z")
    [f] = get_json(client, f"{up.simple_url}demo/")["files"]
    assert f["upload-time"] == "2020-02-03T04:05:06.000000Z"


# -- files ------------------------------------------------------------------------


def test_file_and_metadata_download(up: FakePyPI, client: httpx.Client) -> None:
    wheel, sdist = up.add_release("demo", "1.0", payload_size=5000)
    response = client.get(up.file_url(wheel.filename))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == str(wheel.size)
    assert response.content == wheel.content
    metadata = client.get(up.file_url(wheel.filename) + ".metadata")
    assert metadata.content == wheel.metadata
    assert client.get(up.file_url(sdist.filename) + ".metadata").status_code == 404
    assert client.get(f"{up.url}/packages/aa/bb/cc/nope.whl").status_code == 404
    head = client.head(up.file_url(wheel.filename))
    assert head.status_code == 200 and head.content == b""


def test_flat_and_relative_url_styles(client: httpx.Client) -> None:
    with FakePyPI(file_url_style="flat") as up:
        [wheel] = up.add_release("demo", "1.0", sdist=False)
        [f] = get_json(client, f"{up.simple_url}demo/")["files"]
        assert f["url"] == f"{up.url}/files/{wheel.filename}"
        assert client.get(f["url"]).content == wheel.content
        assert client.get(f["url"] + ".metadata").content == wheel.metadata
    with FakePyPI(file_url_style="relative") as up:
        [wheel] = up.add_release("demo", "1.0", sdist=False)
        page_url = f"{up.simple_url}demo/"
        [(attrs, _)] = parse_page(client.get(page_url).text).anchors
        href = attrs["href"] or ""
        assert href.startswith("../../packages/")
        assert client.get(urljoin(page_url, href)).content == wheel.content


def test_without_hashes(client: httpx.Client) -> None:
    with FakePyPI(hashes=False) as up:
        [wheel] = up.add_release("demo", "1.0", sdist=False)
        [f] = get_json(client, f"{up.simple_url}demo/")["files"]
        assert f["hashes"] == {}
        assert f["core-metadata"] is True
        [(attrs, _)] = parse_page(client.get(f"{up.simple_url}demo/").text).anchors
        assert "#" not in (attrs["href"] or "")
        assert attrs["data-core-metadata"] == "true"
        assert client.get(up.file_url(wheel.filename)).content == wheel.content


def test_html_only_mode(client: httpx.Client) -> None:
    with FakePyPI(html_only=True) as up:
        up.add_release("demo", "1.0")
        for url in (up.simple_url, f"{up.simple_url}demo/"):
            response = client.get(url, headers={"Accept": JSON_V1})
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            assert "x-pypi-last-serial" not in response.headers
            assert "SERIAL" not in response.text
            again = client.get(url, headers={"If-None-Match": response.headers["etag"]})
            assert again.status_code == 304
        assert client.get(f"{up.url}/pypi/demo/json").status_code == 404


# -- legacy JSON ------------------------------------------------------------------


def test_legacy_json(up: FakePyPI, client: httpx.Client) -> None:
    up.add_release("My_Pkg", "1.0", requires_python=">=3.8")
    wheel, _ = up.add_release("My_Pkg", "2.0")
    up.add_release("My_Pkg", "3.0a1")
    up.yank("my-pkg", "1.0", "bad")
    response = client.get(f"{up.url}/pypi/my-pkg/json")
    assert response.status_code == 200
    assert response.headers["x-pypi-last-serial"] == "4"
    doc = response.json()
    assert doc["info"]["name"] == "My_Pkg"
    assert doc["info"]["version"] == "2.0"
    assert doc["last_serial"] == 4
    assert list(doc["releases"]) == ["1.0", "2.0", "3.0a1"]
    assert [f["filename"] for f in doc["urls"]] == [f["filename"] for f in doc["releases"]["2.0"]]
    [w] = [f for f in doc["releases"]["2.0"] if f["packagetype"] == "bdist_wheel"]
    assert w["digests"] == {
        "sha256": wheel.sha256,
        "md5": hashlib.md5(wheel.content).hexdigest(),
        "blake2b_256": hashlib.blake2b(wheel.content, digest_size=32).hexdigest(),
    }
    assert w["md5_digest"] == w["digests"]["md5"]
    assert w["url"] == up.file_url(wheel.filename)
    assert w["size"] == wheel.size
    assert w["python_version"] == "py3"
    assert w["upload_time"] == "2024-01-01T00:02:00"
    assert w["upload_time_iso_8601"] == "2024-01-01T00:02:00.000000Z"
    assert w["has_sig"] is False and w["comment_text"] == ""
    assert w["yanked"] is False and w["yanked_reason"] is None
    yanked = doc["releases"]["1.0"][0]
    assert yanked["yanked"] is True and yanked["yanked_reason"] == "bad"
    assert yanked["requires_python"] == ">=3.8"
    sdists = [f for f in doc["releases"]["2.0"] if f["packagetype"] == "sdist"]
    assert sdists[0]["python_version"] == "source"
    assert client.get(f"{up.url}/pypi/My_Pkg/json").status_code == 301
    assert client.get(f"{up.url}/pypi/nope/json").status_code == 404


# -- faults ---------------------------------------------------------------------


def test_fail_with_retry_after(up: FakePyPI, client: httpx.Client) -> None:
    [wheel] = up.add_release("demo", "1.0", sdist=False)
    url = up.file_url(wheel.filename)
    up.faults.fail("*.whl", status=429, count=2, retry_after=7)
    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "7"
    assert client.get(url).content == wheel.content
    up.faults.fail(re.compile(r"^/simple/demo/$"))
    assert client.get(f"{up.simple_url}demo/").status_code == 503
    assert client.get(f"{up.simple_url}demo/").status_code == 200
    assert [r.fault for r in up.requests] == ["fail:429", "fail:429", None, "fail:503", None]
    assert up.faults.pending() == 0


def test_reset_mid_body(up: FakePyPI) -> None:
    [wheel] = up.add_release("demo", "1.0", sdist=False, payload_size=100_000)
    up.faults.reset("*.whl")
    received = 0
    url = up.file_url(wheel.filename)
    with pytest.raises(httpx.ReadError), httpx.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(wheel.size)
        for chunk in response.iter_raw():
            received += len(chunk)
    assert 0 < received < wheel.size
    assert httpx.get(up.file_url(wheel.filename)).content == wheel.content


def test_truncate(up: FakePyPI) -> None:
    [wheel] = up.add_release("demo", "1.0", sdist=False, payload_size=10_000)
    up.faults.truncate("*.whl")
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        httpx.get(up.file_url(wheel.filename))
    assert httpx.get(up.file_url(wheel.filename)).content == wheel.content


def test_corrupt_keeps_size(up: FakePyPI) -> None:
    [wheel] = up.add_release("demo", "1.0", sdist=False)
    up.faults.corrupt("*.whl")
    response = httpx.get(up.file_url(wheel.filename))
    assert response.status_code == 200
    assert len(response.content) == wheel.size
    assert response.content != wheel.content
    assert httpx.get(up.file_url(wheel.filename)).content == wheel.content


def test_oversize(up: FakePyPI) -> None:
    [wheel] = up.add_release("demo", "1.0", sdist=False)
    up.faults.oversize("*.whl")
    response = httpx.get(up.file_url(wheel.filename))
    assert len(response.content) > wheel.size
    assert response.content.startswith(wheel.content)


def test_slow(up: FakePyPI) -> None:
    [wheel] = up.add_release("demo", "1.0", sdist=False)
    up.faults.slow("*.whl", delay=0.3)
    started = time.monotonic()
    assert httpx.get(up.file_url(wheel.filename)).content == wheel.content
    assert time.monotonic() - started >= 0.3
    assert up.requests[-1].fault == "slow:0.3"


def test_body_faults_skip_bodiless_responses(up: FakePyPI, client: httpx.Client) -> None:
    [wheel] = up.add_release("demo", "1.0", sdist=False)
    up.faults.corrupt("*")
    assert client.get(f"{up.url}/packages/x/nope.whl").status_code == 404
    assert client.get(f"{up.simple_url}Demo/").status_code == 301
    assert up.faults.pending() == 1
    assert client.get(up.file_url(wheel.filename)).content != wheel.content


def test_stale_serves_previous_page(up: FakePyPI, client: httpx.Client) -> None:
    up.add_release("demo", "1.0")
    up.add_release("other", "1.0")
    up.add_release("demo", "2.0")
    up.faults.stale("Demo", count=2)
    stale = client.get(f"{up.simple_url}demo/", headers={"Accept": JSON_V1})
    assert stale.headers["x-pypi-last-serial"] == "1"
    assert stale.json()["meta"]["_last-serial"] == 1
    assert stale.json()["versions"] == ["1.0"]
    legacy = client.get(f"{up.url}/pypi/demo/json")
    assert legacy.headers["x-pypi-last-serial"] == "1"
    assert list(legacy.json()["releases"]) == ["1.0"]
    fresh = client.get(f"{up.simple_url}demo/", headers={"Accept": JSON_V1})
    assert fresh.headers["x-pypi-last-serial"] == "3"
    assert fresh.json()["versions"] == ["1.0", "2.0"]
    assert [r.fault for r in up.requests] == ["stale", "stale", None]
    up.add_release("new", "1.0")
    up.faults.stale("new")
    assert client.get(f"{up.simple_url}new/").status_code == 404  # did not exist before


def test_random_rates_are_deterministic(client: httpx.Client) -> None:
    def run() -> list[str | None]:
        with FakePyPI() as up:
            [wheel] = up.add_release("demo", "1.0", sdist=False)
            up.faults.rates(error_5xx=0.3, corrupt=0.3, seed=42)
            for _ in range(30):
                client.get(up.file_url(wheel.filename))
            client.get(f"{up.simple_url}demo/")  # pages are never hit by rates
            return [r.fault for r in up.requests]

    first = run()
    assert first == run()
    assert first[-1] is None
    assert any(f and f.startswith("fail:5") for f in first)
    assert "corrupt" in first and None in first


def test_faults_clear(up: FakePyPI, client: httpx.Client) -> None:
    [wheel] = up.add_release("demo", "1.0", sdist=False)
    up.faults.fail("*")
    up.faults.stale("demo")
    up.faults.rates(error_5xx=1.0)
    up.faults.clear()
    assert up.faults.pending() == 0
    assert client.get(up.file_url(wheel.filename)).status_code == 200


# -- concurrency ------------------------------------------------------------------


def test_concurrent_mutation_and_reads(up: FakePyPI) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(50):
                up.add_release(f"p{i % 5}", f"1.{i}", sdist=False)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    serials: list[int] = []
    with httpx.Client() as c:
        while thread.is_alive() or not serials:
            serials.append(int(c.get(up.simple_url).headers["x-pypi-last-serial"]))
    thread.join()
    assert not errors
    assert serials == sorted(serials)
    assert up.serial == 50


# -- real installers ----------------------------------------------------------------


def _run(cmd: list[Any], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=180, **kwargs)
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result


def _fresh_venv(path: Path) -> Path:
    _run([DEV_PYTHON, "-m", "venv", "--without-pip", path])
    return path / "bin" / "python"


def _populate_installable(up: FakePyPI) -> None:
    up.add_release("Dep.Lib", "1.0")
    up.add_release("app-pkg", "1.0", requires_dist=["dep.lib>=1.0"])
    up.add_release("app-pkg", "2.0", requires_dist=["dep.lib>=1.0"])
    up.yank("app-pkg", "2.0", "do not use")
    up.add_release("app-pkg", "3.0", requires_python=">=99")


SERVER_MODES = [
    pytest.param({}, id="pypi"),
    pytest.param({"html_only": True, "file_url_style": "relative"}, id="static-relative"),
    pytest.param({"file_url_style": "flat", "hashes": False}, id="flat-nohash"),
]


@pytest.mark.parametrize("mode", SERVER_MODES)
def test_pip_installs_from_fake_index(mode: dict[str, Any], tmp_path: Path) -> None:
    with FakePyPI(**mode) as up:
        _populate_installable(up)
        python = _fresh_venv(tmp_path / "venv")
        pip = [DEV_PYTHON, "-m", "pip", "--python", python, "install", "--no-cache-dir"]
        _run([*pip, "--disable-pip-version-check", "--index-url", up.simple_url, "app-pkg"])
        out = _run([python, "-c", "import app_pkg, dep_lib; print(app_pkg.__version__)"])
        assert out.stdout.strip() == "1.0"  # 2.0 is yanked, 3.0 needs Python >= 99
        downloads = [r.path for r in up.requests if r.path.endswith(".whl")]
        assert len(downloads) == 2


@pytest.mark.skipif(not UV.exists(), reason="uv is not installed next to the test interpreter")
@pytest.mark.parametrize("mode", SERVER_MODES)
def test_uv_installs_from_fake_index(mode: dict[str, Any], tmp_path: Path) -> None:
    with FakePyPI(**mode) as up:
        _populate_installable(up)
        python = _fresh_venv(tmp_path / "venv")
        uv = [UV, "pip", "install", "--no-cache", "--python", python]
        _run([*uv, "--index-url", up.simple_url, "app-pkg"])
        out = _run([python, "-c", "import app_pkg, dep_lib; print(app_pkg.__version__)"])
        assert out.stdout.strip() == "1.0"
        pages = [r for r in up.requests if r.path == "/simple/app-pkg/"]
        assert pages and JSON_V1 in (pages[0].accept or "")


# -- command line ------------------------------------------------------------------


def test_cli_serves_synthetic_index(tmp_path: Path) -> None:
    wheel = build_wheel("extra-pkg", "0.5")
    (tmp_path / wheel.filename).write_bytes(wheel.content)
    cmd = [
        sys.executable,
        "-m",
        "tests.fakepypi",
        "serve",
        "--synthetic-projects",
        "20",
        "--files-per-project",
        "3",
        "--payload-size",
        "100",
        "--wheels-dir",
        str(tmp_path),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split()[1]
        with httpx.Client() as c:
            doc = get_json(c, f"{url}/simple/")
            assert doc["meta"]["_last-serial"] == 61
            names = [p["name"] for p in doc["projects"]]
            assert names[0] == "extra-pkg" and names[1] == "proj-00000" and len(names) == 21
            project = get_json(c, f"{url}/simple/proj-00007/")
            assert project["versions"] == ["1.0.0", "1.0.1", "1.0.2"]
            assert c.get(f"{url}/pypi/extra-pkg/json").json()["info"]["version"] == "0.5"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)  # also closes its stdout pipe
        assert proc.returncode == 0


# -- bandersnatch ------------------------------------------------------------------


@pytest.mark.skipif(not BANDERSNATCH.exists(), reason="bandersnatch 8.2 not installed")
def test_bandersnatch_mirrors_fake_index(up: FakePyPI, tmp_path: Path) -> None:
    built = up.add_release("alpha", "1.0")
    built += up.add_release("Beta_Pkg", "2.0", wheel_tags=("py2.py3-none-any",))
    built += up.add_release("gamma", "0.1", sdist=False, requires_python=">=3.8")
    up.yank("gamma", "0.1", "oops")
    mirror = tmp_path / "mirror"
    conf = tmp_path / "bandersnatch.conf"
    conf.write_text(
        "[mirror]\n"
        f"directory = {mirror}\n"
        f"master = {up.url}\n"
        "workers = 3\ntimeout = 10\nglobal-timeout = 120\nstop-on-error = true\n"
        "hash-index = false\njson = false\nrelease-files = true\ncleanup = false\n"
        "allow-non-https = true\nsimple-format = ALL\nverifiers = 1\n"
    )
    _run([BANDERSNATCH, "-c", conf, "mirror"], cwd=tmp_path)
    web = mirror / "web"
    for f in built:
        local = web / up.file_url(f.filename).removeprefix(up.url + "/")
        assert local.read_bytes() == f.content
        if f.metadata is not None:
            assert Path(f"{local}.metadata").read_bytes() == f.metadata
    for name in ("alpha", "beta-pkg", "gamma"):
        assert (web / "simple" / name / "index.html").exists()
    assert (mirror / "status").read_text().strip() == str(up.serial)


def test_replace_serves_a_maintenance_page_in_place_of_the_real_one(up: FakePyPI, client: httpx.Client) -> None:
    up.add_release("demo", "1.0", sdist=False)
    up.faults.replace("/simple/demo/", count=2)
    for accept in ("application/vnd.pypi.simple.v1+json", "text/html"):
        response = client.get(f"{up.simple_url}demo/", headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.content == MAINTENANCE_PAGE
    assert up.requests[-1].fault == "replace:200"
    assert up.faults.pending() == 0
    assert b"demo-1.0" in client.get(f"{up.simple_url}demo/").content
    up.faults.replace("/simple/demo/", body=b'{"files": []}', content_type="application/json")
    assert client.get(f"{up.simple_url}demo/").json() == {"files": []}
