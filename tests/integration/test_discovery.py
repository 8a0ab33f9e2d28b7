"""Discovery that costs what is mirrored: wanted pages fetched directly, rootless upstreams, 404 deletions.

The fake upstream here is a static-like index (HTML only, no serials, like pypiserver): its root
tells nothing that spares a page fetch, so an allowlisted or named run fetches the wanted pages
directly, and learns the root's nature once, from a GET whose body it does not read.
"""

from __future__ import annotations

import http.server
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from mirror.errors import EXIT_ENVIRONMENT, EXIT_OK, EXIT_PARTIAL
from tests.conftest import Mirror, check_tree
from tests.fakepypi import FakePyPI
from tests.servers import InThread


def _allow(mirror: Mirror, upstream: str, *projects: str) -> None:
    mirror.write_config(upstream)
    names = ", ".join(f'"{p}"' for p in projects)
    with open(mirror.config, "a") as config:
        config.write(f'[filters]\nenabled = ["allowlist"]\n[filters.allowlist]\nprojects = [{names}]\n')


def _gets(up: FakePyPI) -> list[str]:
    paths = [r.path for r in up.requests if r.method == "GET"]
    up.clear_requests()
    return paths


@pytest.fixture
def static_index() -> Iterator[FakePyPI]:
    with FakePyPI(html_only=True, file_url_style="flat") as up:
        for name in ("alpha", "beta", "gamma", "delta", "eps", "zeta"):
            up.add_release(name, "1.0", sdist=False)
        yield up


def test_an_allowlist_fetches_its_pages_and_never_the_root_again(static_index: FakePyPI, mirror: Mirror) -> None:
    _allow(mirror, static_index.simple_url, "alpha", "beta")
    assert mirror.run("sync") == EXIT_OK
    first = _gets(static_index)
    assert first.count("/simple/") == 1  # the one probe, its body unread
    assert {p for p in first if p.startswith("/simple/") and p != "/simple/"} == {"/simple/alpha/", "/simple/beta/"}
    assert sorted(p.name for p in (mirror.web / "simple").iterdir() if p.is_dir()) == ["alpha", "beta"]
    check_tree(mirror.web)

    assert mirror.run("sync") == EXIT_OK
    assert sorted(_gets(static_index)) == ["/simple/alpha/", "/simple/beta/"]
    assert mirror.run("sync", "alpha") == EXIT_OK  # a named project: its page alone
    assert _gets(static_index) == ["/simple/alpha/"]


def test_a_rootless_upstream_serves_named_and_allowlisted_projects(tmp_path: Path, mirror: Mirror) -> None:
    # A tree another mirror made, served without its root pages (like simpleindex, which has none).
    source = Mirror(tmp_path / "source", tmp_path / "source" / "mirror.toml")
    source.root.mkdir()
    with FakePyPI() as up:
        up.add_release("dep", "1.0")
        up.add_release("demo", "1.0", requires_dist=["dep"])
        source.write_config(up.simple_url)
        assert source.run("sync") == EXIT_OK
    for name in ("index.html", "index.v1_html", "index.v1_json"):
        (source.web / "simple" / name).unlink()
    with _Rootless(source.web) as static:
        mirror.write_config(static.simple_url)
        assert mirror.run("sync", "demo") == EXIT_OK
        assert (mirror.web / "simple" / "demo" / "index.html").exists()
        assert mirror.run("sync") == EXIT_ENVIRONMENT  # everything: only a root could say what that is
        _allow(mirror, static.simple_url, "demo", "dep")
        assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)
    assert sorted(p.name for p in (mirror.web / "simple").iterdir() if p.is_dir()) == ["demo", "dep"]


def test_a_page_gone_upstream_deletes_its_project_under_the_guard(
    static_index: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ("alpha", "beta", "gamma", "delta", "eps", "zeta")
    _allow(mirror, static_index.simple_url, *names)
    assert mirror.run("sync") == EXIT_OK

    static_index.remove_project("zeta")
    assert mirror.run("sync") == EXIT_OK
    assert not (mirror.web / "simple" / "zeta").exists()
    assert not list((mirror.web / "packages").rglob("zeta-*"))
    assert "zeta" not in (mirror.web / "simple" / "index.html").read_text()

    # Three of five at once looks like an upstream glitch: nothing goes, the rest still syncs.
    for name in ("alpha", "beta", "gamma"):
        static_index.remove_project(name)
    static_index.add_release("delta", "2.0", sdist=False)
    capsys.readouterr()
    assert mirror.run("sync") == EXIT_ENVIRONMENT
    assert "refusing to delete 3 of 5 projects" in capsys.readouterr().err
    for name in ("alpha", "beta", "gamma"):
        assert (mirror.web / "simple" / name / "index.html").exists()
    assert "delta-2.0-py3-none-any.whl" in (mirror.web / "simple" / "delta" / "index.html").read_text()
    check_tree(mirror.web)


def test_one_stray_404_deletes_nothing(static_index: FakePyPI, mirror: Mirror) -> None:
    _allow(mirror, static_index.simple_url, "alpha", "beta")
    assert mirror.run("sync") == EXIT_OK
    static_index.faults.fail("/simple/beta/", status=404, count=1)
    assert mirror.run("sync") == EXIT_OK
    assert (mirror.web / "simple" / "beta" / "index.html").exists()
    assert static_index.faults.pending() == 0


def test_a_named_project_the_upstream_lacks_fails_the_run(
    static_index: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    mirror.write_config(static_index.simple_url)
    assert mirror.run("sync", "alpha", "no-such-project") == EXIT_PARTIAL
    assert "no-such-project: not listed by the upstream index (its page is 404)" in capsys.readouterr().err
    assert (mirror.web / "simple" / "alpha" / "index.html").exists()


def test_an_unchanged_page_without_validators_is_not_published_again(tmp_path: Path, mirror: Mirror) -> None:
    # Served by a handler that sends neither ETag nor Last-Modified, and always the same bytes.
    source = Mirror(tmp_path / "source", tmp_path / "source" / "mirror.toml")
    source.root.mkdir()
    with FakePyPI(html_only=True, file_url_style="flat") as up:
        up.add_release("alpha", "1.0")
        source.write_config(up.simple_url)
        assert source.run("sync") == EXIT_OK
    with _NoValidators(source.web) as static:
        _allow(mirror, static.simple_url, "alpha")
        assert mirror.run("sync") == EXIT_OK
        pages = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (mirror.web / "simple").rglob("index.*")}
        diffs = sorted((mirror.root / "m" / "diffs").iterdir())
        assert mirror.run("sync") == EXIT_OK
        assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in pages} == pages
        assert sorted((mirror.root / "m" / "diffs").iterdir()) == diffs
        # A changed page is published (the yank shows), and only then.
        page = source.web / "simple" / "alpha" / "index.html"
        page.write_text(page.read_text().replace("<a ", '<a data-yanked="bad" ', 1))
        assert mirror.run("sync") == EXIT_OK
        assert "data-yanked" in (mirror.web / "simple" / "alpha" / "index.html").read_text()
        assert len(sorted((mirror.root / "m" / "diffs").iterdir())) == len(diffs) + 1


class _NoValidatorsHandler(http.server.SimpleHTTPRequestHandler):
    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() not in ("last-modified", "etag"):
            super().send_header(keyword, value)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _NoListingHandler(http.server.SimpleHTTPRequestHandler):
    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _NoValidators(InThread):
    """A static server that sends neither ETag nor Last-Modified (so no request can be conditional)."""

    handler: type[http.server.SimpleHTTPRequestHandler] = _NoValidatorsHandler

    def __init__(self, directory: Path) -> None:
        handler = partial(self.handler, directory=str(directory))
        super().__init__(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler))

    @property
    def simple_url(self) -> str:
        return f"{self.url}simple/"


class _Rootless(_NoValidators):
    """A static server that lists no directory: a directory without an index page is a 404."""

    handler = _NoListingHandler
