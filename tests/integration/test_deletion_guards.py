"""Deletions guarded per file and per byte, and upstream answers that are not project pages (issue 12, item 4)."""

from __future__ import annotations

import re

import pytest

from mirror.errors import EXIT_ENVIRONMENT, EXIT_OK, EXIT_PARTIAL
from tests.conftest import Mirror, check_tree, page_files, snapshot
from tests.fakepypi import FakePyPI

# A real simple-index page (PEP 629 marker) of a project without files: not a maintenance page.
EMPTY_PROJECT_PAGE = (
    b'<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.0"></head><body></body></html>\n'
)


def packages(mirror: Mirror) -> set[str]:
    return {path for path in snapshot(mirror.web) if path.startswith("packages/")}


def test_maintenance_pages_of_a_serialless_upstream_delete_nothing(
    mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reproduction: every project page turned into a 200 "Maintenance" page; the run deleted every file, exit 0."""
    with FakePyPI(html_only=True) as up:
        for i in range(10):
            up.add_release(f"p{i}", "1.0")
        mirror.write_config(up.simple_url)
        assert mirror.run("sync") == EXIT_OK
        before = snapshot(mirror.web)
        up.faults.replace("/simple/p*/", count=10)
        capsys.readouterr()
        assert mirror.run("sync") == EXIT_PARTIAL
        err = capsys.readouterr().err
        assert "p3: the upstream answered 200 with an HTML page that is not a project page" in err
        assert "10 failed" in err
        assert snapshot(mirror.web) == before
        up.faults.clear()
        assert mirror.run("sync") == EXIT_OK  # retried: the pages are back, nothing to do
        assert snapshot(mirror.web) == before


@pytest.mark.parametrize(
    ("body", "content_type", "why"),
    [
        (b"Service Unavailable\n", "text/plain", "unexpected Content-Type 'text/plain'"),
        # A missing meta is read liberally (api-version 1.0); a page that names no project is not a page.
        (b'{"files": []}', "application/vnd.pypi.simple.v1+json", "name must be a string"),
    ],
    ids=["text-plain", "json-without-name"],
)
def test_a_200_that_is_not_a_project_page_is_an_error(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str], body: bytes, content_type: str, why: str
) -> None:
    upstream.add_release("demo", "1.0")
    upstream.add_release("dep", "1.0")
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    before = snapshot(mirror.web)
    upstream.add_release("demo", "1.1")  # a new serial: the page is fetched
    upstream.faults.replace("/simple/demo/", body=body, content_type=content_type, count=10)
    capsys.readouterr()
    assert mirror.run("sync") == EXIT_PARTIAL
    assert why in capsys.readouterr().err
    assert snapshot(mirror.web) == before


def test_serialless_page_that_suddenly_lists_no_files_is_deferred(
    mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakePyPI(html_only=True) as up:
        up.add_release("demo", "1.0")
        up.add_release("demo", "1.1")
        up.add_release("dep", "1.0")
        mirror.write_config(up.simple_url)
        assert mirror.run("sync") == EXIT_OK
        before = snapshot(mirror.web)
        up.faults.replace("/simple/demo/", body=EMPTY_PROJECT_PAGE, count=10)
        capsys.readouterr()
        assert mirror.run("sync") == EXIT_PARTIAL
        err = capsys.readouterr().err
        assert "demo: the upstream page lists 0 files and would remove 4 of the 4 the mirror holds" in err
        assert "1 deferred (retried next run)" in err
        assert snapshot(mirror.web) == before
        check_tree(mirror.web)


def test_serialless_page_that_drops_most_files_is_deferred_until_allowed(
    mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakePyPI(html_only=True) as up:
        for version in ("1.0", "1.1", "1.2"):
            up.add_release("demo", version)
        mirror.write_config(up.simple_url)
        assert mirror.run("sync") == EXIT_OK
        before = snapshot(mirror.web)
        up.remove_release("demo", "1.0")
        up.remove_release("demo", "1.1")  # 4 of 6 files: more than half
        capsys.readouterr()
        assert mirror.run("sync") == EXIT_PARTIAL
        assert (
            "would remove 4 of the 6 the mirror holds (67% > max-project-delete-fraction 50%)"
            in capsys.readouterr().err
        )
        assert snapshot(mirror.web) == before
        mirror.write_config(up.simple_url, **{"max-project-delete-fraction": 1.0})
        assert mirror.run("sync") == EXIT_OK
        assert sorted(page_files(mirror.web, "demo")) == ["demo-1.2-py3-none-any.whl", "demo-1.2.tar.gz"]
        check_tree(mirror.web)


def test_files_dropped_across_many_projects_stop_at_the_fraction(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    """No project disappears, yet most files would: the guard counts files, and defers the rest."""
    for i in range(10):
        upstream.add_release(f"p{i}", "1.0", sdist=False)
        upstream.add_release(f"p{i}", "2.0", sdist=False)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    held = packages(mirror)  # 10 projects x 2 wheels, each with its .metadata: 40 files
    for i in range(10):
        upstream.remove_release(f"p{i}", "1.0")
    capsys.readouterr()
    assert mirror.run("sync") == EXIT_PARTIAL
    err = capsys.readouterr().err
    assert re.search(r"this run would delete \d+ of the mirror's (40 files|\d+ bytes)", err)
    assert "> max-delete-fraction 20%); retried next run" in err
    removed = held - packages(mirror)
    assert 0 < len(removed) <= 8 + 2  # the first project goes through; then no more than 20% of the files
    check_tree(mirror.web)
    mirror.write_config(upstream.simple_url, **{"max-delete-fraction": 1.0})
    assert mirror.run("sync") == EXIT_OK
    assert len(packages(mirror)) == 20
    check_tree(mirror.web)


def test_project_deletions_that_hold_most_bytes_are_refused(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two of ten projects (within the project fraction) that hold most of the mirror's bytes."""
    for i in range(8):
        upstream.add_release(f"small{i}", "1.0", sdist=False)
    upstream.add_release("big0", "1.0", sdist=False, payload_size=200_000)
    upstream.add_release("big1", "1.0", sdist=False, payload_size=200_000)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    before = snapshot(mirror.web)
    upstream.remove_project("big0")
    upstream.remove_project("big1")
    capsys.readouterr()
    assert mirror.run("sync") == EXIT_ENVIRONMENT
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("mirror: error: refusing to delete 2 projects: this run would delete ")
    assert "bytes" in last and "raise max-delete-fraction for one run" in last
    assert snapshot(mirror.web) == before
    mirror.write_config(upstream.simple_url, **{"max-delete-fraction": 1.0})
    assert mirror.run("sync") == EXIT_OK
    assert not (mirror.web / "simple" / "big0").exists()
