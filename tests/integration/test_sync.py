"""The sync engine against a fake PyPI over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest

from mirror.errors import EXIT_ENVIRONMENT, EXIT_OK, EXIT_PARTIAL
from tests.conftest import Mirror, StaticServer, check_tree, page_files, snapshot
from tests.fakepypi import FakePyPI


def seed(up: FakePyPI) -> None:
    up.add_release("demo", "1.0", requires_dist=["dep>=1"])
    up.add_release("demo", "1.1", requires_python=">=3.8")
    up.add_release("dep", "2.0")
    up.add_release("Other_Pkg", "0.1")


def test_first_sync_publishes_a_complete_consistent_tree(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)
    root = json.loads((mirror.web / "simple" / "index.v1_json").read_text())
    assert root["meta"] == {"api-version": "1.4", "_last-serial": upstream.serial}
    assert [(p["name"], p["_last-serial"]) for p in root["projects"]] == [
        ("demo", upstream.project_serial("demo")),
        ("dep", upstream.project_serial("dep")),
        ("other-pkg", upstream.project_serial("other-pkg")),
    ]
    demo = json.loads((mirror.web / "simple" / "demo" / "index.v1_json").read_text())
    assert demo["versions"] == ["1.0", "1.1"]
    assert demo["meta"]["_last-serial"] == upstream.project_serial("demo")
    files = {f["filename"]: f for f in demo["files"]}
    assert files["demo-1.1-py3-none-any.whl"]["requires-python"] == ">=3.8"
    assert files["demo-1.0-py3-none-any.whl"]["upload-time"].endswith("Z")
    assert "core-metadata" not in files["demo-1.0.tar.gz"]
    html = (mirror.web / "simple" / "demo" / "index.html").read_text()
    assert 'data-requires-python="&gt;=3.8"' in html
    assert f"<!--SERIAL {upstream.project_serial('demo')}-->" in html


def test_fsync_writes_through_threads_give_the_same_tree(upstream: FakePyPI, mirror: Mirror, tmp_path: Path) -> None:
    """With fsync = true the writes run on worker threads; the tree must not change at all."""
    seed(upstream)
    upstream.add_release("big", "1.0", payload_size=600_000)  # past the in-memory buffer: written in pieces
    mirror.write_config(upstream.simple_url, fsync=True)
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)
    plain = Mirror(tmp_path / "plain", tmp_path / "plain" / "mirror.toml")
    plain.root.mkdir()
    plain.write_config(upstream.simple_url)
    assert plain.run("sync") == EXIT_OK
    assert snapshot(mirror.web) == snapshot(plain.web)


def test_noop_rerun_makes_one_request(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    before = snapshot(mirror.web)
    upstream.clear_requests()
    assert mirror.run("sync") == EXIT_OK
    assert [(r.path, r.status) for r in upstream.requests] == [("/simple/", 304)]
    assert snapshot(mirror.web) == before


def test_incremental_changes_follow_the_upstream(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK

    upstream.add_release("demo", "1.2")
    upstream.yank("demo", "1.0", "broken build")
    upstream.remove_file("dep", "dep-2.0.tar.gz")
    upstream.remove_project("other-pkg")
    upstream.clear_requests()
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)
    # Only what changed is fetched: the root, two project pages, the new files.
    paths = sorted(r.path for r in upstream.requests)
    assert "/simple/other-pkg/" not in paths
    assert sum(p.startswith("/packages/") for p in paths) == 3  # wheel, sdist, wheel metadata of 1.2

    demo = page_files(mirror.web, "demo")
    assert demo["demo-1.0-py3-none-any.whl"]["yanked"] == "broken build"
    assert demo["demo-1.2-py3-none-any.whl"]["yanked"] is False
    assert "dep-2.0.tar.gz" not in page_files(mirror.web, "dep")
    assert not list(mirror.web.rglob("dep-2.0.tar.gz"))
    assert not (mirror.web / "simple" / "other-pkg").exists()
    assert not list(mirror.web.rglob("other_pkg-*"))
    root = json.loads((mirror.web / "simple" / "index.v1_json").read_text())
    assert "other-pkg" not in {p["name"] for p in root["projects"]}

    upstream.unyank("demo", "1.0")
    assert mirror.run("sync") == EXIT_OK
    assert page_files(mirror.web, "demo")["demo-1.0-py3-none-any.whl"]["yanked"] is False
    check_tree(mirror.web)


def test_project_status_and_quarantine(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    upstream.set_status("dep", "quarantined", "malware report")
    upstream.set_status("demo", "archived")
    assert mirror.run("sync") == EXIT_OK
    dep = json.loads((mirror.web / "simple" / "dep" / "index.v1_json").read_text())
    assert dep["files"] == [] and dep["project-status"]["status"] == "quarantined"
    assert not list(mirror.web.rglob("dep-2.0*"))
    demo = json.loads((mirror.web / "simple" / "demo" / "index.v1_json").read_text())
    assert demo["project-status"] == {"status": "archived"} and demo["files"]
    check_tree(mirror.web)


def test_stale_page_is_retried_then_deferred(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url, **{"stale-retries": 1})
    assert mirror.run("sync") == EXIT_OK
    upstream.add_release("demo", "2.0")
    upstream.faults.stale("demo", count=1)  # one stale answer: the retry gets the fresh page
    assert mirror.run("sync") == EXIT_OK
    assert "demo-2.0.tar.gz" in page_files(mirror.web, "demo")

    upstream.add_release("demo", "3.0")
    upstream.add_release("dep", "3.0")
    upstream.faults.stale("demo", count=5)  # stale beyond the retries: deferred, others go on
    assert mirror.run("sync") == EXIT_PARTIAL
    assert "demo-3.0.tar.gz" not in page_files(mirror.web, "demo")
    assert "dep-3.0.tar.gz" in page_files(mirror.web, "dep")
    check_tree(mirror.web)
    upstream.faults.clear()
    upstream.clear_requests()
    assert mirror.run("sync") == EXIT_OK  # the root is unchanged (304) but the deferred project is retried
    assert "demo-3.0.tar.gz" in page_files(mirror.web, "demo")
    assert ("/simple/", 304) in [(r.path, r.status) for r in upstream.requests]


def test_transient_faults_are_retried(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    upstream.faults.fail("/simple/", status=503, count=1)
    upstream.faults.fail("/simple/demo/", status=429, count=1, retry_after=1)
    upstream.faults.reset("*demo-1.0-py3-none-any.whl", count=1)
    upstream.faults.truncate("*dep-2.0.tar.gz", count=1)
    upstream.faults.fail("*demo-1.1.tar.gz", status=502, count=2)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)
    assert upstream.faults.pending() == 0


def test_corrupt_body_never_becomes_visible(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    upstream.faults.corrupt("*demo-1.0-py3-none-any.whl", count=1)  # once: the retry repairs it
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)

    upstream.add_release("demo", "1.5")
    upstream.faults.corrupt("*demo-1.5-py3-none-any.whl", count=10)  # persistently corrupt
    upstream.faults.oversize("*demo-1.5.tar.gz", count=10)
    assert mirror.run("sync") == EXIT_PARTIAL
    assert not list(mirror.web.rglob("demo-1.5*")), "corrupt bytes became visible"
    assert "demo-1.5.tar.gz" not in page_files(mirror.web, "demo")
    check_tree(mirror.web)
    upstream.faults.clear()
    assert mirror.run("sync") == EXIT_OK
    assert "demo-1.5-py3-none-any.whl" in page_files(mirror.web, "demo")
    check_tree(mirror.web)


def test_missing_file_fails_only_its_project(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url, retries=1)
    upstream.faults.fail("*dep-2.0-py3-none-any.whl", status=404, count=1)
    assert mirror.run("sync") == EXIT_PARTIAL
    assert not (mirror.web / "simple" / "dep").exists()
    root = json.loads((mirror.web / "simple" / "index.v1_json").read_text())
    assert {p["name"] for p in root["projects"]} == {"demo", "other-pkg"}
    check_tree(mirror.web)
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)


def test_html_only_upstream_without_serials(mirror: Mirror) -> None:
    with FakePyPI(html_only=True, file_url_style="flat") as up:
        seed(up)
        mirror.write_config(up.simple_url)
        assert mirror.run("sync") == EXIT_OK
        check_tree(mirror.web)
        demo = json.loads((mirror.web / "simple" / "demo" / "index.v1_json").read_text())
        assert demo["versions"] == ["1.0", "1.1"]  # derived from the file names
        assert all(f["url"].startswith("../../packages/") for f in demo["files"])
        # Walking without serials: every page is asked for, conditionally, and nothing is rewritten.
        before = snapshot(mirror.web)
        up.clear_requests()
        assert mirror.run("sync") == EXIT_OK
        statuses = sorted((r.path, r.status) for r in up.requests)
        assert statuses == [
            ("/simple/", 304),
            ("/simple/demo/", 304),
            ("/simple/dep/", 304),
            ("/simple/other-pkg/", 304),
        ]
        assert snapshot(mirror.web) == before
        up.add_release("dep", "2.1")
        assert mirror.run("sync") == EXIT_OK
        assert "dep-2.1.tar.gz" in page_files(mirror.web, "dep")
        check_tree(mirror.web)


def test_relative_file_urls_upstream(mirror: Mirror) -> None:
    with FakePyPI(file_url_style="relative") as up:
        seed(up)
        mirror.write_config(up.simple_url)
        assert mirror.run("sync") == EXIT_OK
        check_tree(mirror.web)


def test_chaining_from_our_own_output_served_statically(upstream: FakePyPI, mirror: Mirror, tmp_path: Path) -> None:
    seed(upstream)
    upstream.yank("demo", "1.0", "reason <b>")
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    downstream = Mirror(tmp_path / "down", tmp_path / "down.toml")
    downstream.root.mkdir()
    downstream.config = downstream.root / "mirror.toml"
    with StaticServer(mirror.web) as static:
        downstream.write_config(static.simple_url)
        assert downstream.run("sync") == EXIT_OK
    check_tree(downstream.web)
    for name in ("demo", "dep", "other-pkg"):
        ours, theirs = page_files(mirror.web, name), page_files(downstream.web, name)
        assert ours.keys() == theirs.keys()
        for filename, entry in ours.items():
            assert theirs[filename]["hashes"]["sha256"] == entry["hashes"]["sha256"]
            assert theirs[filename]["yanked"] == entry["yanked"]
            assert bool(theirs[filename].get("core-metadata")) == bool(entry.get("core-metadata"))
    assert {p for p in snapshot(downstream.web) if p.startswith("packages/")} == {
        p for p in snapshot(mirror.web) if p.startswith("packages/")
    }


def test_sync_named_projects_only(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync", "Demo") == EXIT_OK
    root = json.loads((mirror.web / "simple" / "index.v1_json").read_text())
    assert [p["name"] for p in root["projects"]] == ["demo"]
    assert mirror.run("sync") == EXIT_OK
    root = json.loads((mirror.web / "simple" / "index.v1_json").read_text())
    assert [p["name"] for p in root["projects"]] == ["demo", "dep", "other-pkg"]


def test_dry_run_writes_nothing(upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync", "--dry-run") == EXIT_OK
    assert not any(p.is_file() for p in mirror.web.rglob("*"))
    err = capsys.readouterr().err
    assert "dry run: 3 projects to check, would download 12 files" in err
    assert mirror.run("sync") == EXIT_OK
    assert mirror.run("sync", "--dry-run") == EXIT_OK


def test_deletion_guard_refuses_a_wiped_upstream(
    upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(10):
        upstream.add_release(f"p{i}", "1.0", sdist=False)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    before = snapshot(mirror.web)
    for i in range(1, 10):
        upstream.remove_project(f"p{i}")
    capsys.readouterr()
    assert mirror.run("sync") == EXIT_ENVIRONMENT
    err = capsys.readouterr().err.strip().splitlines()
    # The torture case of issue 4: the upstream suddenly lists a tenth of its projects.
    assert err[-1].startswith("mirror: error: refusing to delete 9 of 10 projects (90% > max-delete-fraction 20%)")
    assert "raise max-delete-fraction for one run" in err[-1]
    assert snapshot(mirror.web) == before
    assert mirror.run("verify", "--hashes") == EXIT_OK  # the tree and its state are untouched
    mirror.write_config(upstream.simple_url, **{"max-delete-fraction": 1.0})
    assert mirror.run("sync") == EXIT_OK
    assert sorted(p.name for p in (mirror.web / "simple").iterdir() if p.is_dir()) == ["p0"]


def test_status_reports_the_mirror(upstream: FakePyPI, mirror: Mirror, capsys: pytest.CaptureFixture[str]) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    capsys.readouterr()
    assert mirror.run("status", "--json") == EXIT_OK
    facts = json.loads(capsys.readouterr().out)
    assert facts["serial"] == upstream.serial
    assert facts["projects"] == 3 and facts["files"] == 12
    assert facts["bytes"] == sum(p.stat().st_size for p in mirror.web.joinpath("packages").rglob("*") if p.is_file())
    assert facts["last_run"]["result"] == "ok"
    assert mirror.run("status") == EXIT_OK
    assert "projects   3" in capsys.readouterr().out


def test_state_records_every_published_file(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    db = sqlite3.connect(mirror.root / "m" / "state" / "mirror.sqlite3")
    recorded = {path: sha for path, sha in db.execute("SELECT path, sha256 FROM files")}
    on_disk = {k: v for k, v in snapshot(mirror.web).items() if k.startswith("packages/")}
    assert recorded == on_disk


@pytest.mark.parametrize("hostile", ["../../../../etc/evil.whl", "..\\evil.whl", "/abs/evil.whl"])
def test_hostile_file_names_are_refused(mirror: Mirror, hostile: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.fakepypi import BuiltFile

    with FakePyPI() as up:
        seed(up)
        up.add_file("evil", "1.0", BuiltFile(filename=hostile, content=b"x", metadata=None))
        mirror.write_config(up.simple_url)
        assert mirror.run("sync") == EXIT_PARTIAL
        assert "evil" in capsys.readouterr().err
    check_tree(mirror.web)
    assert not (mirror.web / "simple" / "evil").exists()
    assert not list(mirror.root.parent.rglob("evil.whl"))


def test_http2_setting_uses_httpx_own_transport(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url, http2=True, contact="ops@example.org")
    assert mirror.run("sync") == EXIT_OK
    check_tree(mirror.web)


def test_files_of_a_never_published_project_go_when_upstream_drops_it(upstream: FakePyPI, mirror: Mirror) -> None:
    seed(upstream)
    mirror.write_config(upstream.simple_url, retries=0)
    upstream.faults.fail("*dep-2.0.tar.gz", status=404, count=1)  # the wheel lands, the sdist does not
    assert mirror.run("sync") == EXIT_PARTIAL
    assert list(mirror.web.rglob("dep-2.0-py3-none-any.whl"))  # verified, unlinked, kept for the next run
    upstream.remove_project("dep")
    assert mirror.run("sync") == EXIT_OK
    assert not list(mirror.web.rglob("dep-*"))
    check_tree(mirror.web)


def test_two_projects_never_share_a_path(mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A hostile index whose page for b links a's file: whichever comes second is refused."""
    with FakePyPI() as up:
        up.add_release("a", "1.0", sdist=False)
        up.add_release("b", "1.0", sdist=False)
        source = Mirror(tmp_path / "src", tmp_path / "src" / "mirror.toml")
        source.root.mkdir()
        source.write_config(up.simple_url)
        assert source.run("sync") == EXIT_OK
    page_b = source.web / "simple" / "b" / "index.html"
    page_b.write_text((source.web / "simple" / "a" / "index.html").read_text().replace("Links for a", "Links for b"))
    with StaticServer(source.web) as static:
        mirror.write_config(static.simple_url)
        assert mirror.run("sync") == EXIT_PARTIAL
    published = {p.name for p in (mirror.web / "simple").iterdir() if p.is_dir()}
    assert len(published) == 1, published
    (winner,) = published
    loser = "b" if winner == "a" else "a"
    err = capsys.readouterr().err
    assert f"failed: {loser}: packages/" in err
    assert f"already belongs to project {winner}" in err
    assert "a-1.0-py3-none-any.whl" in page_files(mirror.web, winner)
    check_tree(mirror.web)


def test_unusable_names_in_the_root_are_skipped_not_fatal(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakePyPI() as up:
        up.add_release("ok", "1.0")
        source = Mirror(tmp_path / "src", tmp_path / "src" / "mirror.toml")
        source.root.mkdir()
        source.write_config(up.simple_url)
        assert source.run("sync") == EXIT_OK
    root = source.web / "simple" / "index.html"
    root.write_text(root.read_text().replace("</body>", '<a href="../../etc/">../../etc</a></body>'))
    with StaticServer(source.web) as static:
        mirror.write_config(static.simple_url)
        assert mirror.run("sync") == EXIT_OK
    assert "skipped 1 unusable entries of the upstream index" in capsys.readouterr().err
    check_tree(mirror.web)
    assert (mirror.web / "simple" / "ok" / "index.html").exists()


def test_a_large_project_downloads_its_files_side_by_side(upstream: FakePyPI, mirror: Mirror) -> None:
    """Alone in a run, a project's downloads fill every request slot (workers = 4), not one at a time.

    Each file answers after 0.5 s: 24 files take 12 s one by one, about 3 s four at a time.
    """
    for minor in range(12):
        upstream.add_release("big", f"1.{minor}")
    upstream.faults.slow(re.compile(r".*\.(whl|tar\.gz)$"), 0.5, count=24)
    mirror.write_config(upstream.simple_url)
    started = time.monotonic()
    assert mirror.run("sync") == EXIT_OK
    assert time.monotonic() - started < 8
    assert upstream.faults.pending() == 0  # every file was slowed
    check_tree(mirror.web)
    assert len(page_files(mirror.web, "big")) == 24
