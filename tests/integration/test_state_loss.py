"""A lost, empty or foreign state database never costs the mirror a file (issue 12, item 3).

Sync and verify refuse with one line and exit 4; ``verify --rebuild-state`` rebuilds state from
the published pages and the files on disk, and the next sync converges without downloading.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from packaging.utils import NormalizedName

from mirror.core import render
from mirror.core.models import IndexEntry, IndexMeta
from mirror.errors import EXIT_CONFIG, EXIT_ENVIRONMENT, EXIT_OK, EXIT_PARTIAL
from tests.conftest import Mirror, check_tree, snapshot
from tests.fakepypi import FakePyPI

PROJECTS = 20


def seed(up: FakePyPI) -> None:
    for i in range(PROJECTS):
        up.add_release(f"proj-{i}", "1.0")
        up.add_release(f"proj-{i}", "1.1")


def db_of(mirror: Mirror) -> Path:
    return mirror.root / "m" / "state" / "mirror.sqlite3"


def remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def copy_db(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (its WAL included)."""
    remove_db(target)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    dst.close()
    src.close()


def root_names(mirror: Mirror) -> list[str]:
    return [p["name"] for p in json.loads((mirror.web / "simple" / "index.v1_json").read_text())["projects"]]


def last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.fixture
def synced(upstream: FakePyPI, mirror: Mirror) -> Mirror:
    seed(upstream)
    mirror.write_config(upstream.simple_url)
    assert mirror.run("sync") == EXIT_OK
    return mirror


@pytest.mark.parametrize("how", ["missing", "empty-file", "fresh-database"])
def test_lost_state_refuses_every_destructive_step(
    synced: Mirror, upstream: FakePyPI, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    """The reproductions: `verify --delete-orphans` removed 140 of 183 files; `sync proj-1` listed 1 of 20 projects."""
    before = snapshot(synced.web)
    assert len(before) == 183
    db = db_of(synced)
    remove_db(db)
    if how == "empty-file":
        db.write_bytes(b"")
    elif how == "fresh-database":
        sqlite3.connect(db).close()
    upstream.remove_project("proj-5")  # an upstream change that a sync would act on
    capsys.readouterr()
    for args in (("sync", "proj-1"), ("sync",), ("verify", "--delete-orphans"), ("verify", "--repair"), ("verify",)):
        assert synced.run(*args) == EXIT_ENVIRONMENT, args
        line = last_line(capsys)
        state = "missing" if how == "missing" and args == ("sync", "proj-1") else r"(missing|empty)"
        assert re.match(rf"mirror: error: state database .*mirror\.sqlite3 is {state}, but .* publishes a mirror", line)
        assert "`mirror verify --rebuild-state`" in line
    assert snapshot(synced.web) == before
    assert len(root_names(synced)) == PROJECTS


def test_damaged_state_database_names_the_recovery(
    synced: Mirror, upstream: FakePyPI, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(synced.web)
    db = db_of(synced)
    remove_db(db)
    db.write_bytes(b"not a database, " * 512)
    capsys.readouterr()
    assert synced.run("sync") == EXIT_ENVIRONMENT
    line = last_line(capsys)
    assert line.startswith("mirror: error: cannot open state database") and "`mirror verify --rebuild-state`" in line
    assert synced.run("verify", "--rebuild-state") == EXIT_OK
    assert list(db.parent.glob("mirror.sqlite3.replaced-*"))  # the damaged one is kept, for whoever wants it
    assert synced.run("sync") == EXIT_OK
    assert snapshot(synced.web) == before


def test_foreign_state_database_is_refused(
    synced: Mirror, upstream: FakePyPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = Mirror(tmp_path / "other", tmp_path / "other" / "mirror.toml")
    other.root.mkdir()
    with FakePyPI() as up2:
        up2.add_release("elsewhere", "1.0")
        other.write_config(up2.simple_url)
        assert other.run("sync") == EXIT_OK
    before = snapshot(synced.web)
    copy_db(db_of(other), db_of(synced))
    capsys.readouterr()
    for args in (("sync",), ("verify", "--delete-orphans")):
        assert synced.run(*args) == EXIT_ENVIRONMENT
        line = last_line(capsys)
        assert "belongs to another mirror: it knows none of the 20 projects" in line
        assert "`mirror verify --rebuild-state`" in line
    assert snapshot(synced.web) == before
    # Recovery keeps the foreign database aside, never deletes it.
    assert synced.run("verify", "--rebuild-state") == EXIT_OK
    kept = list(db_of(synced).parent.glob("mirror.sqlite3.replaced-*"))
    assert len(kept) == 1 and sqlite3.connect(kept[0]).execute("SELECT name FROM projects").fetchall() == [
        ("elsewhere",)
    ]
    assert synced.run("sync") == EXIT_OK
    assert snapshot(synced.web) == before


def test_rebuilt_state_converges_without_downloading(
    synced: Mirror, upstream: FakePyPI, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(synced.web)
    remove_db(db_of(synced))
    capsys.readouterr()
    assert synced.run("verify", "--rebuild-state") == EXIT_OK
    line = last_line(capsys)
    assert re.match(
        r"rebuilt state: 20 projects, 120 files \(.* hashed\) from .* in \d+\.\ds; nothing downloaded", line
    )
    assert snapshot(synced.web) == before  # servable and identical throughout
    check_tree(synced.web)
    assert synced.run("verify", "--hashes") == EXIT_OK
    assert "verify ok: 20 projects, 120 files" in last_line(capsys)
    upstream.clear_requests()
    assert synced.run("sync") == EXIT_OK
    downloads = [r.path for r in upstream.requests if r.path.startswith("/packages/")]
    assert downloads == []  # every page is looked at once (which filters made the tree is unknown), no file
    assert snapshot(synced.web) == before
    upstream.clear_requests()
    assert synced.run("sync") == EXIT_OK  # and from then on as if state had never been lost
    assert [(r.path, r.status) for r in upstream.requests] == [("/simple/", 304)]
    assert synced.run("verify", "--hashes") == EXIT_OK
    # The upstream moves on: the rebuilt state follows it like any other.
    upstream.add_release("proj-3", "2.0")
    upstream.remove_project("proj-7")
    assert synced.run("sync") == EXIT_OK
    assert "proj-7" not in root_names(synced) and not list(synced.web.rglob("proj_7-*"))
    check_tree(synced.web)
    assert synced.run("verify", "--hashes") == EXIT_OK


def test_rebuild_reports_files_that_do_not_match_their_page(
    synced: Mirror, upstream: FakePyPI, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = next(synced.web.rglob("proj_2-1.0-py3-none-any.whl"))
    data = bytearray(wheel.read_bytes())
    data[10] ^= 0xFF
    wheel.write_bytes(bytes(data))  # same size, other bytes
    sdist = next(synced.web.rglob("proj_4-1.1.tar.gz"))
    sdist.unlink()
    remove_db(db_of(synced))
    capsys.readouterr()
    assert synced.run("verify", "--rebuild-state", "--dry-run") == EXIT_PARTIAL
    assert not db_of(synced).exists()  # a dry run records nothing
    assert synced.run("verify", "--rebuild-state") == EXIT_PARTIAL
    err = capsys.readouterr().err
    assert re.search(r"proj_2-1\.0-py3-none-any\.whl: \d+ bytes, sha256 .* not what proj-2's page says", err)
    assert "proj_4-1.1.tar.gz: linked by proj-4, missing on disk" in err
    assert "rebuilt state: 20 projects, 118 files" in err and "2 problems not recorded" in err
    upstream.clear_requests()
    assert synced.run("sync") == EXIT_OK  # fetches exactly what was not recorded
    downloads = sorted(r.path.rsplit("/", 1)[1] for r in upstream.requests if r.path.startswith("/packages/"))
    assert downloads == ["proj_2-1.0-py3-none-any.whl", "proj_4-1.1.tar.gz"]
    check_tree(synced.web)
    assert synced.run("verify", "--hashes") == EXIT_OK


def test_an_old_backup_of_state_never_shrinks_the_root(
    synced: Mirror, upstream: FakePyPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "backup.sqlite3"
    copy_db(db_of(synced), backup)
    upstream.add_release("newer", "1.0")
    assert synced.run("sync") == EXIT_OK
    before = snapshot(synced.web)
    copy_db(backup, db_of(synced))  # restored from last night's backup: it does not know "newer"
    upstream.add_release("proj-1", "2.0")
    capsys.readouterr()
    assert synced.run("sync", "proj-1") == EXIT_ENVIRONMENT  # proj-1 changed: the root would be rewritten
    line = last_line(capsys)
    assert "the root index lists 1 projects the state database does not know (e.g. 'newer')" in line
    assert "refusing to rewrite it without them" in line
    assert "newer" in root_names(synced)
    assert {p: h for p, h in snapshot(synced.web).items() if "proj" not in p} == {
        p: h for p, h in before.items() if "proj" not in p
    }
    check_tree(synced.web)
    upstream.clear_requests()
    assert synced.run("sync") == EXIT_OK  # a full sync re-learns it from the tree, without downloading it
    assert not [r for r in upstream.requests if r.path.startswith("/packages/") and "/newer-" in r.path]
    assert "newer" in root_names(synced)
    assert synced.run("verify", "--hashes") == EXIT_OK


def test_a_file_a_served_page_links_is_never_an_orphan(synced: Mirror, capsys: pytest.CaptureFixture[str]) -> None:
    """State forgot two projects (a crash lost their batch); one is still on the root, one is not."""
    with sqlite3.connect(db_of(synced)) as db:
        db.execute("DELETE FROM files WHERE project IN ('proj-3', 'proj-4')")
        db.execute("DELETE FROM projects WHERE name IN ('proj-3', 'proj-4')")
    db.close()
    entries = [IndexEntry(NormalizedName(name)) for name in root_names(synced) if name != "proj-4"]
    root = synced.web / "simple"
    (root / "index.v1_json").write_bytes(b"".join(render.render_index_json(entries, IndexMeta())))
    html = b"".join(render.render_index_html(entries, None))
    (root / "index.html").write_bytes(html)
    (root / "index.v1_html").write_bytes(html)
    proj3 = {p for p in snapshot(synced.web) if "proj_3-" in p or p.startswith("simple/proj-3/")}
    proj4_files = {p for p in snapshot(synced.web) if "proj_4-" in p}
    capsys.readouterr()
    assert synced.run("verify", "--delete-orphans") == EXIT_PARTIAL  # the root lists proj-3, state does not
    err = capsys.readouterr().err
    assert "kept 13 that a served page links or the root lists" in err  # proj-3: page + 6 files; proj-4: 6 files
    after = set(snapshot(synced.web))
    assert proj3 <= after  # listed by the root: its page and its files stay
    assert proj4_files <= after  # its page went first (the root does not list it); its files wait a pass
    assert not (root / "proj-4").exists()
    check_tree(synced.web)
    assert synced.run("verify", "--delete-orphans") == EXIT_PARTIAL
    assert not proj4_files & set(snapshot(synced.web))  # no page links them any more: now they are orphans
    assert proj3 <= set(snapshot(synced.web))
    check_tree(synced.web)


def test_rebuild_needs_no_upstream_and_goes_alone(synced: Mirror, capsys: pytest.CaptureFixture[str]) -> None:
    offline = synced.root / "offline.toml"  # beside the other, so `directory = "m"` names the same mirror
    offline.write_text(re.sub(r'upstream = ".*"\n', "", synced.config.read_text()))
    remove_db(db_of(synced))
    offline_mirror = Mirror(synced.root, offline)
    assert offline_mirror.run("verify", "--rebuild-state") == EXIT_OK
    assert offline_mirror.run("verify", "--rebuild-state", "--repair") == EXIT_CONFIG
    assert "--rebuild-state goes alone" in last_line(capsys)
    assert offline_mirror.run("verify") == EXIT_OK
