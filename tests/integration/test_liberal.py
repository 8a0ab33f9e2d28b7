"""Real upstreams as they are: liberal reading, refusing what is no index, filters lacking data, PEP 740.

Each test runs ``mirror sync`` against a real HTTP server on 127.0.0.1: the fake PyPI (with the
quirks of real servers switched on) or ``http.server`` over a directory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mirror.errors import EXIT_ENVIRONMENT, EXIT_OK, EXIT_PARTIAL
from tests.conftest import Mirror, StaticServer, check_tree, page_files
from tests.fakepypi import FakePyPI
from tests.fakepypi.builder import build_wheel
from tests.fakepypi.render import render_provenance


def add_filters(mirror: Mirror, toml: str) -> None:
    mirror.config.write_text(mirror.config.read_text() + toml)


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("mirror: error:")]


def test_serials_sent_as_decimal_strings(mirror: Mirror) -> None:
    """bandersnatch 8.2 and the PyPI these machines reach write ``"_last-serial": "123"``."""
    with FakePyPI(serials_as_text=True) as upstream:
        upstream.add_release("demo", "1.0")
        upstream.add_release("demo", "1.1")
        mirror.write_config(upstream.simple_url)
        assert mirror.run("sync") == EXIT_OK
        assert mirror.run("sync", "demo") == EXIT_OK
    check_tree(mirror.web)
    page = json.loads((mirror.web / "simple" / "demo" / "index.v1_json").read_text())
    assert page["meta"]["_last-serial"] == upstream.project_serial("demo")  # an integer again
    root = json.loads((mirror.web / "simple" / "index.v1_json").read_text())
    assert root["meta"]["_last-serial"] == upstream.serial


def test_a_field_we_cannot_use_is_dropped_and_said_with_verbose(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "static"
    wheel = build_wheel("demo", "1.0")
    (tree / "files").mkdir(parents=True)
    (tree / "files" / wheel.filename).write_bytes(wheel.content)
    (tree / "simple" / "demo").mkdir(parents=True)
    (tree / "simple" / "index.html").write_text('<html><body><a href="demo/">demo</a></body></html>')
    anchor = (
        f'<a href="../../files/{wheel.filename}#sha256={wheel.sha256}" data-core-metadata="sha256=nothex" '
        f'data-provenance="#sha256=abc">{wheel.filename}</a>'
    )
    (tree / "simple" / "demo" / "index.html").write_text(
        f'<html><head><meta name="pypi:repository-version" content="one"></head><body>{anchor}</body></html>'
    )
    with StaticServer(tree) as static:
        mirror.write_config(static.simple_url)
        assert mirror.run("sync") == EXIT_OK
        assert "left out" not in capsys.readouterr().err  # said only with --verbose
        assert mirror.run("--verbose", "sync", "--force-check") == EXIT_OK
    err = capsys.readouterr().err
    assert "demo: left out of the upstream page: pypi:repository-version is not a version number" in err
    assert "data-core-metadata: sha256 digest is not hex" in err and "(metadata not mirrored)" in err
    assert "data-provenance: sha256 digest has 3 hex digits" in err
    check_tree(mirror.web)
    assert page_files(mirror.web, "demo")[wheel.filename]["hashes"] == {"sha256": wheel.sha256}


def test_a_directory_listing_of_wheels_is_refused(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m http.server`` over a folder of wheels is not an index: exit 4, every time, nothing published."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    for name, version in (("alpha", "1.0"), ("alpha", "2.0"), ("beta", "0.1")):
        built = build_wheel(name, version)
        (folder / built.filename).write_bytes(built.content)
    with StaticServer(folder) as static:
        mirror.write_config(static.url)
        for _ in range(2):  # not "retried next run": the same refusal
            assert mirror.run("sync") == EXIT_ENVIRONMENT
            (line,) = error_lines(capsys.readouterr().err)
            assert "links distribution files, not projects" in line
            assert "a directory listing is not a simple index" in line
    assert not (mirror.web / "simple" / "index.html").exists()
    assert not list(mirror.web.rglob("*.whl"))


def test_an_upstream_without_project_pages_is_refused(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A web page whose links lead nowhere a project page is: exit 4 with one line, not exit 1 forever."""
    site = tmp_path / "site"
    site.mkdir()
    links = "".join(f'<a href="{name}/">{name}</a>' for name in ("about", "blog", "contact", "docs", "news"))
    (site / "index.html").write_text(f"<html><body>{links}</body></html>")
    with StaticServer(site) as static:
        mirror.write_config(static.url)
        assert mirror.run("sync") == EXIT_ENVIRONMENT
    (line,) = error_lines(capsys.readouterr().err)
    assert "is not a simple index: none of the first" in line and "its page is 404" in line
    assert not (mirror.web / "simple" / "index.html").exists()


def test_a_named_project_the_upstream_does_not_list_fails_the_run(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.add_release("demo", "1.0")
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync", "demo", "dmeo") == EXIT_PARTIAL
    err = capsys.readouterr().err
    assert "failed: dmeo: not listed by the upstream index (is the name right?)" in err
    assert "1 failed" in err
    assert list(page_files(mirror.web, "demo")) == ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]
    assert mirror.run("sync", "demo") == EXIT_OK


def test_latest_by_upload_time_without_upload_times_keeps_the_newest(
    mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    """An HTML-only upstream (pypiserver-like) gives no upload times: ranked by version, one warning per run."""
    with FakePyPI(html_only=True) as upstream:
        for version in ("1.0", "3.0", "2.0"):  # uploaded in this order
            upstream.add_release("demo", version)
            upstream.add_release("other", version)
        mirror.write_config(upstream.simple_url)
        add_filters(
            mirror,
            '[filters]\nenabled = ["cooldown", "latest"]\n'
            '[filters.latest]\ncount = 1\nby = "upload-time"\n[filters.cooldown]\ndays = 7\n',
        )
        assert mirror.run("sync") == EXIT_OK
    for name in ("demo", "other"):
        assert sorted(page_files(mirror.web, name)) == [f"{name}-3.0-py3-none-any.whl", f"{name}-3.0.tar.gz"]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mirror: warning:")]
    assert len(warnings) == 2, warnings  # one per filter, not one per project
    assert any('[filters.latest] by = "upload-time"' in w and "by version instead" in w for w in warnings)
    assert any("[filters.cooldown]" in w and "are kept" in w for w in warnings)


def test_cooldown_can_hold_releases_without_upload_times(mirror: Mirror) -> None:
    with FakePyPI(html_only=True) as upstream:
        upstream.add_release("demo", "1.0")
        mirror.write_config(upstream.simple_url)
        add_filters(mirror, '[filters]\nenabled = ["cooldown"]\n[filters.cooldown]\nwithout-upload-time = "hold"\n')
        assert mirror.run("sync") == EXIT_OK
    assert page_files(mirror.web, "demo") == {}


@pytest.mark.parametrize("mode", ["plain", "hashed"])
def test_provenance_is_mirrored_beside_its_file_and_linked(mirror: Mirror, tmp_path: Path, mode: str) -> None:
    with FakePyPI(provenance=mode) as upstream:  # type: ignore[arg-type]
        files = upstream.add_release("demo", "1.0")
        mirror.write_config(upstream.simple_url)
        assert mirror.run("sync") == EXIT_OK
        requested = [r.path for r in upstream.requests if r.path.startswith("/integrity/")]
    assert sorted(requested) == sorted(f"/integrity/{f.filename}/provenance" for f in files)
    check_tree(mirror.web)  # every provenance link resolves, beside its file, with its hash
    entries = page_files(mirror.web, "demo")
    html = (mirror.web / "simple" / "demo" / "index.html").read_text()
    for built in files:
        link = str(entries[built.filename]["provenance"])
        assert link.startswith("../../packages/")
        local = (mirror.web / "simple" / "demo" / link.partition("#")[0]).resolve()
        assert local.name == built.filename + ".provenance"
        stored = render_provenance_for(upstream, built.filename)
        assert local.read_bytes() == stored  # byte for byte what the upstream served
        assert link.endswith(f"#sha256={hashlib.sha256(stored).hexdigest()}")
        assert f'data-provenance="{link}"' in html
    # A mirror of this mirror (a plain static server over its tree) carries provenance on, verified.
    downstream = Mirror(tmp_path / "down", tmp_path / "down" / "mirror.toml")
    downstream.root.mkdir()
    with StaticServer(mirror.web) as static:
        downstream.write_config(static.simple_url)
        assert downstream.run("sync") == EXIT_OK
    check_tree(downstream.web)
    assert {f: e["provenance"] for f, e in page_files(downstream.web, "demo").items()} == {
        f: e["provenance"] for f, e in entries.items()
    }
    assert mirror.run("verify") == EXIT_OK


def render_provenance_for(upstream: FakePyPI, filename: str) -> bytes:
    entry = upstream._index.blob_by_filename(filename)
    assert entry is not None
    return render_provenance(entry)


def test_a_provenance_object_that_fails_its_hash_is_never_published(
    mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakePyPI(provenance="hashed") as upstream:
        upstream.add_release("demo", "1.0", sdist=False)
        upstream.faults.corrupt("/integrity/*", count=2)  # the first try and its one retry
        mirror.write_config(upstream.simple_url)
        assert mirror.run("sync") == EXIT_PARTIAL
        assert "sha256 mismatch" in capsys.readouterr().err
        assert not (mirror.web / "simple" / "demo").exists()
        assert not list(mirror.web.rglob("*.provenance"))
        assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)
    assert len(list(mirror.web.rglob("*.provenance"))) == 1
