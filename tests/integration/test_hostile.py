"""A hostile upstream: every trick is refused for its own project, nothing lands outside the tree, the rest syncs."""

from __future__ import annotations

import hashlib
import http.server
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirror.errors import EXIT_OK, EXIT_PARTIAL
from tests.conftest import Mirror, check_tree
from tests.servers import InThread

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
Route = tuple[int, str, bytes]


class HostileServer(InThread):
    """Serves fixed bytes with fixed content types on 127.0.0.1: whatever a test wants an upstream to say."""

    def __init__(self, routes: dict[str, Route]) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, content_type, body = routes.get(self.path, (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler))

    @property
    def simple_url(self) -> str:
        return self.url + "simple/"


def page(name: str, files: list[dict[str, object]]) -> Route:
    body = {"meta": {"api-version": "1.1", "_last-serial": 5}, "name": name, "files": files}
    return 200, JSON_TYPE, json.dumps(body).encode()


def dist(filename: str, url: str, content: bytes, size: int | None = None) -> dict[str, object]:
    declared = len(content) if size is None else size
    return {
        "filename": filename,
        "url": url,
        "hashes": {"sha256": hashlib.sha256(content).hexdigest()},
        "size": declared,
    }


GOOD = b"good sdist bytes"
OVERSIZE = b"ten bytes!"


def hostile_routes() -> dict[str, Route]:
    projects = {
        "good": page("good", [dist("good-1.0.tar.gz", "/files/good-1.0.tar.gz", GOOD)]),
        "twin-s": page("twin-s", [dist("twin_s-1.0.tar.gz", "/files/twin_s-1.0.tar.gz", GOOD + b"t")]),
        "nul": page("nul", [dist("nul-1.0\x00.tar.gz", "/files/nul-1.0%00.tar.gz", GOOD)]),
        "long": page("long", [dist(f"long-1.0-{'a' * 300}.tar.gz", f"/files/long-1.0-{'a' * 300}.tar.gz", GOOD)]),
        "dotdot": page("dotdot", [dist("dotdot-1.0.tar.gz", "/packages/..%2F..%2Fescape/dotdot-1.0.tar.gz", GOOD)]),
        "absolute": page("absolute", [dist("/tmp/absolute-1.0.tar.gz", "/files/absolute-1.0.tar.gz", GOOD)]),
        "backslash": page("backslash", [dist("..\\..\\backslash-1.0.tar.gz", "/files/b-1.0.tar.gz", GOOD)]),
        "huge": (
            200,
            JSON_TYPE,
            b'{"meta": {"api-version": "1.1"}, "name": "huge", "files": []' + b" " * (2 << 20) + b"}",
        ),
        "badjson": (200, JSON_TYPE, b'{"meta": {"api-version": "1.1"}, "name": "badjson", "files": [{'),
        "wrongtype": (200, "image/png", b"\x89PNG\r\n\x1a\n"),
        "oversize": page("oversize", [dist("oversize-1.0.tar.gz", "/files/oversize-1.0.tar.gz", OVERSIZE)]),
        "impostor": page("good", [dist("good-1.0.tar.gz", "/files/good-1.0.tar.gz", GOOD)]),
    }
    # Three spellings of one project, and a name no directory can hold.
    listed = [*projects, "Twin_S", "twin.s", "x" * 300]
    root = {
        "meta": {"api-version": "1.1", "_last-serial": 9},
        "projects": [{"name": n, "_last-serial": 5} for n in listed],
    }
    routes: dict[str, Route] = {"/simple/": (200, JSON_TYPE, json.dumps(root).encode())}
    routes.update({f"/simple/{name}/": route for name, route in projects.items()})
    routes["/files/good-1.0.tar.gz"] = (200, "application/octet-stream", GOOD)
    routes["/files/twin_s-1.0.tar.gz"] = (200, "application/octet-stream", GOOD + b"t")
    routes["/files/oversize-1.0.tar.gz"] = (200, "application/octet-stream", OVERSIZE + b"x" * 5000)
    return routes


REFUSED = {
    "nul": "control character",
    "long": "longer than",
    "dotdot": "separator",
    "absolute": "",
    "backslash": "",
    "huge": "exceeds the 1 MB limit",
    "badjson": "",
    "wrongtype": "unexpected Content-Type 'image/png'",
    "oversize": "more bytes than the declared 10",
    "impostor": "another project",
}


def everything_outside(root: Path, mirror_dir: Path) -> Iterator[str]:
    for path in root.rglob("*"):
        if mirror_dir not in path.parents and path != mirror_dir:
            yield str(path.relative_to(root))


def test_every_trick_is_refused_for_its_project_and_the_rest_syncs(
    mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    with HostileServer(hostile_routes()) as server:
        mirror.write_config(server.simple_url, **{"max-page-mb": 1, "retries": 1})
        outside_before = sorted(everything_outside(mirror.root, mirror.root / "m"))
        assert mirror.run("sync") == EXIT_PARTIAL
    err = capsys.readouterr().err
    failures = {line.split(": ", 2)[1]: line for line in err.splitlines() if line.startswith("failed: ")}
    assert sorted(failures) == sorted(REFUSED), err
    for name, words in REFUSED.items():
        assert words in failures[name], failures[name]
        assert "Traceback" not in failures[name]
    assert "skipped 1 unusable entries of the upstream index" in err
    published = sorted(p.name for p in (mirror.web / "simple").iterdir() if p.is_dir())
    assert published == ["good", "twin-s"]
    check_tree(mirror.web)
    packages = sorted(p.name for p in (mirror.web / "packages").rglob("*") if p.is_file())
    assert packages == ["good-1.0.tar.gz", "twin_s-1.0.tar.gz"]
    assert sorted(everything_outside(mirror.root, mirror.root / "m")) == outside_before
    assert sorted(p.name for p in (mirror.root / "m").iterdir()) == ["diffs", "state", "web"]
    assert not [p for p in Path("/tmp").glob("absolute-1.0.tar.gz")]
    assert mirror.run("verify", "--hashes") == EXIT_OK
