"""Hostile bundles: every one is refused up front (exit 2, one line), and nothing anywhere changes.

Each test is a reproduction from issue 12 ("What was found", items 1 and 2): a real exported bundle
edited, or a bundle written by hand (``tests/bundles.py``) so that everything else about it checks
out. "Nothing changes" is checked on the whole test directory: the offline tree, its diff files,
its staging area, the bundle itself and a directory outside the mirror; then the state still
serves ``status`` and ``verify``, and the genuine bundle still imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mirror.errors import EXIT_CONFIG, EXIT_OK
from tests.bundles import BLOCK, file_entry, member, pax_bomb, raw_members, tar_of, write_bundle
from tests.conftest import ROOT, snapshot
from tests.fakepypi import FakePyPI
from tests.integration.test_airgap import Offline, connected, export, header
from tests.integration.test_airgap_split import measured

GOOD = "packages/ok/aa/good-1.0-py3-none-any.whl"
"""A harmless file forged bundles carry first, so an import that applied anything would show it."""
END = bytes(2 * BLOCK)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Once per module: an offline site that imported a full bundle, and the next (incremental) bundle."""
    base = tmp_path_factory.mktemp("hostile")
    with FakePyPI() as upstream:
        online = connected(base / "online", upstream)
        upstream.add_release("demo", "1.0")
        upstream.add_release("dep", "2.0")
        assert online.run("sync") == EXIT_OK
        first = export(online, base / "usb-first")
        upstream.add_release("demo", "1.1")
        upstream.remove_file("dep", "dep-2.0.tar.gz")
        assert online.run("sync") == EXIT_OK
        second = export(online, base / "site" / "usb")
        (base / "expected.json").write_text(json.dumps(snapshot(online.web)))
    assert Offline(base / "site" / "offline").import_(first) == EXIT_OK
    (base / "site" / "first.json").write_text(json.dumps(header(first)))
    shutil.copytree(second.parent, base / "site" / "pristine")
    victim = base / "site" / "outside" / "victim"
    victim.mkdir(parents=True)
    (victim / "keep.txt").write_text("not the bundle's to touch\n")
    return base


@dataclass
class Site:
    root: Path
    expected: dict[str, str]

    @property
    def offline(self) -> Offline:
        return Offline(self.root / "offline")

    @property
    def manifest(self) -> Path:
        """The genuine next bundle, on the USB stick (edit it at will)."""
        (found,) = (self.root / "usb").glob("*.manifest.jsonl")
        return found

    @property
    def first(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / "first.json").read_text())
        return data

    @property
    def outside(self) -> Path:
        return self.root / "outside"

    def edit(
        self, head: Callable[[dict[str, Any]], None] | None = None, lines: Callable[[list[str]], None] | None = None
    ) -> None:
        text = self.manifest.read_text().splitlines()
        data = json.loads(text[0])
        if head is not None:
            head(data)
        rest = text[1:]
        if lines is not None:
            lines(rest)
        self.manifest.write_text("".join(line + "\n" for line in [json.dumps(data), *rest]))

    def forge(
        self, name: str, entries: list[dict[str, Any]] | list[str], stream: Iterator[bytes] | list[bytes], **fields: Any
    ) -> Path:
        """A hand-made bundle that follows the imported one: same origin, next in the chain."""
        chain = {
            "origin": self.first["origin"],
            "previous": self.first["id"],
            "full": False,
            "seq": self.first["seq"] + 1,
        }
        return write_bundle(self.root / "forged", name, stream, entries, **{**chain, **fields})

    def refused(self, capsys: pytest.CaptureFixture[str], *paths: Path) -> str:
        """Import ``paths``: exit 2, one line, and not one byte changed anywhere; returns the line."""
        before = everything(self.root)
        capsys.readouterr()
        assert self.offline.import_(*paths) == EXIT_CONFIG
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("mirror: error: "), err
        assert everything(self.root) == before
        assert self.offline.run("status") == EXIT_OK
        assert self.offline.run("verify") == EXIT_OK
        return err

    def genuine_still_imports(self) -> None:
        shutil.rmtree(self.root / "usb")
        shutil.copytree(self.root / "pristine", self.root / "usb")
        assert self.offline.import_(self.manifest) == EXIT_OK
        assert self.offline.tree() == self.expected


@pytest.fixture
def site(template: Path, tmp_path: Path) -> Site:
    shutil.copytree(template / "site", tmp_path / "site", symlinks=True)
    return Site(tmp_path / "site", json.loads((template / "expected.json").read_text()))


def everything(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (the state database aside): its kind, and a regular file's sha256."""
    state = root / "offline" / "m" / "state"
    found: dict[str, str] = {}
    for directory, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(directory) / name
            if path.parent == state and name != "import":
                continue  # the database and the lock: opened (not changed) by a refused import
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[str(path.relative_to(root))] = f"mode {stat.S_IFMT(mode):o}"
    return found


def good() -> tuple[list[dict[str, Any]], list[tuple[str, bytes]]]:
    data = b"a file that must not be published by a refused bundle"
    return [file_entry(GOOD, data)], [(GOOD, data)]


def forged_with(site: Site, path: str, data: bytes = b"x", *more: dict[str, Any]) -> Path:
    """A consistent bundle (manifest and tar agree) carrying GOOD, then ``path``, then ``more`` lines."""
    entries, files = good()
    return site.forge("mirror-forged", [*entries, file_entry(path, data), *more], [tar_of([*files, (path, data)])])


# -- 1. the header's id is a path ------------------------------------------------------------------


@pytest.mark.parametrize("bundle_id", ["../../web", "ABSOLUTE", "a/b", "..", ".hidden", "", "-rf", "x" * 129])
def test_an_id_that_is_not_a_plain_name_is_refused_and_nothing_anywhere_changes(
    site: Site, capsys: pytest.CaptureFixture[str], bundle_id: str
) -> None:
    """Was: ``../../web`` deleted web/ though refused; an absolute id deleted and planted outside the mirror."""
    victim = str(site.outside / "victim")

    def to_hostile(head: dict[str, Any]) -> None:
        head["id"] = victim if bundle_id == "ABSOLUTE" else bundle_id

    site.edit(to_hostile)
    assert "header field id must be a plain name" in site.refused(capsys, site.manifest)
    # Also when the parts are renamed to match and everything else agrees.
    entries, files = good()
    hostile = site.forge("mirror-x", entries, [tar_of(files)], id=victim if bundle_id == "ABSOLUTE" else bundle_id)
    assert "header field id" in site.refused(capsys, hostile)
    assert (site.outside / "victim" / "keep.txt").is_file()
    site.genuine_still_imports()


# -- 2. part names ---------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["/dev/zero", "../../etc/passwd", "../usb/other.part-0001.tar", "OTHER"])
def test_a_part_name_other_than_the_bundles_own_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Was: a part named /dev/zero hung the import holding the lock; ../../etc/passwd was read."""

    def rename(head: dict[str, Any]) -> None:
        part = head["parts"][0]
        part["name"] = f"{head['id']}.part-0002.tar" if name == "OTHER" else name
        if name == "/dev/zero":  # as /dev/zero's stat says: the old reader then read it forever
            part["size"], part["sha256"] = 0, hashlib.sha256(b"").hexdigest()

    site.edit(rename)
    assert "must be named" in site.refused(capsys, site.manifest)
    site.genuine_still_imports()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["symlink to /dev/zero", "symlink to a good copy", "fifo", "directory"])
def test_a_part_that_is_not_a_regular_file_is_refused_without_reading_it(
    site: Site, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    part = site.manifest.with_name(header(site.manifest)["parts"][0]["name"])
    copy = site.outside / part.name
    shutil.move(part, copy)
    if kind == "symlink to /dev/zero":
        part.symlink_to("/dev/zero")
    elif kind == "symlink to a good copy":  # right size and sha256, but not in the bundle's directory
        part.symlink_to(copy)
    elif kind == "fifo":
        os.mkfifo(part)
    else:
        part.mkdir()
    err = site.refused(capsys, site.manifest)
    assert ("symbolic link" if kind.startswith("symlink") else "not a regular file") in err
    site.genuine_still_imports()


# -- 2. header fields of the wrong type ------------------------------------------------------------

WRONG_FIELDS: list[tuple[str, object, str]] = [
    ("seq", "5", "seq must be an integer"),
    ("seq", True, "seq must be an integer"),
    ("seq", -1, "seq is out of range"),
    ("seq", 2**63, "seq is out of range"),
    ("seq", 1.5, "seq must be an integer"),
    ("id", 7, "id must be a string"),
    ("origin", None, "origin must be a string"),
    ("previous", ["x"], "previous must be a string"),
    ("created", "yesterday", "created must be a UTC time"),
    ("created", "2026-02-30T00:00:00Z", "created must be a UTC time"),
    ("created", 1700000000, "created must be a UTC time"),
    ("to_serial", "12", "to_serial must be an integer"),
    ("from_serial", {"a": 1}, "from_serial must be an integer"),
    ("full", "yes", "full must be true or false"),
    ("compression", "bzip2", "compression must be one of"),
    ("parts", "x", "parts must be a list"),
    ("parts", [], "parts must be a list"),
    ("parts", [["x"]], "not an object"),
    ("files", 999, "its header 999 files"),
    ("bytes", 1, "of 1 bytes"),
    ("deletions", 0, "0 deletions"),
    ("format", "mirror-bundle/2", "not a mirror-bundle/1 manifest"),
    ("extra", 1, "unknown field 'extra'"),
]


@pytest.mark.parametrize(
    ("field", "value", "message"), WRONG_FIELDS, ids=[f"{f}={v!r}"[:40] for f, v, _ in WRONG_FIELDS]
)
def test_a_header_field_of_the_wrong_type_or_range_is_refused_before_anything_is_applied(
    site: Site, capsys: pytest.CaptureFixture[str], field: str, value: object, message: str
) -> None:
    """Was: tracebacks, some after files were published; a string to_serial broke status and verify for good."""

    def set_field(head: dict[str, Any]) -> None:
        head[field] = value

    site.edit(set_field)
    assert message in site.refused(capsys, site.manifest)
    site.genuine_still_imports()


def test_a_header_missing_a_field_is_refused(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    def drop(head: dict[str, Any]) -> None:
        del head["to_serial"]

    site.edit(drop)
    assert "header: missing to_serial" in site.refused(capsys, site.manifest)


MANGLED: dict[str, Callable[[bytes], bytes]] = {
    "header not UTF-8": lambda text: text.replace(b'"origin"', b'"orig\xffin"', 1),
    "entry not UTF-8": lambda text: text.replace(b'"project"', b'"proj\xc3(ect"', 1),
    "entry not JSON": lambda text: text + b"{not json\n",
    "entry a list": lambda text: text + b"[1, 2]\n",
    "entry of no kind": lambda text: text + b'{"serial": 3}\n',
    "blank line": lambda text: text + b"\n",
    "nested 100000 deep": lambda text: text + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "a 5000-digit number": lambda text: text + b'{"project": "demo", "serial": ' + b"9" * 5000 + b"}\n",
    "NaN": lambda text: text + b'{"project": "demo", "serial": NaN}\n',
    "a key twice": lambda text: text + b'{"forget": "demo", "forget": "../x"}\n',
    "a 2 MiB line": lambda text: text + b'{"forget": "' + b"a" * (2 << 20) + b'"}\n',
    "empty manifest": lambda text: b"",
}


@pytest.mark.parametrize("mangle", list(MANGLED))
def test_a_manifest_that_is_not_utf8_json_lines_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str], mangle: str
) -> None:
    site.manifest.write_bytes(MANGLED[mangle](site.manifest.read_bytes()))
    site.refused(capsys, site.manifest)
    site.genuine_still_imports()


# -- 2. control characters in paths ----------------------------------------------------------------


@pytest.mark.parametrize("char", ["\n", "\r", "\t", "\x1b", "\x7f", "\x00", "\x85", "\u2028"])
def test_a_control_character_in_a_path_never_reaches_the_diff_files(
    site: Site, capsys: pytest.CaptureFixture[str], char: str
) -> None:
    """Was: a newline in a path injected lines into the diff files, including rsync's ``.files`` list."""
    injected = f"packages/aa/evil{char}/etc/cron.d/x.whl"
    assert "refusing" in site.refused(capsys, forged_with(site, injected))
    site.genuine_still_imports()


@pytest.mark.parametrize(
    "line",
    [
        {"delete": "packages/aa/x\n/etc/passwd"},
        {"project": "demo\nevil", "serial": 1},
        {"forget": "de\rmo"},
        {"path": GOOD, "size": 1, "sha256": "0" * 64, "project": "Demo"},
    ],
    ids=["deletion", "project", "forget", "unnormalized project"],
)
def test_control_characters_and_odd_names_in_other_lines_are_refused(
    site: Site, capsys: pytest.CaptureFixture[str], line: dict[str, Any]
) -> None:
    site.edit(lines=lambda rest: rest.append(json.dumps(line)))
    assert "refusing" in site.refused(capsys, site.manifest)
    site.genuine_still_imports()


# -- 2. the tar stream: bombs and members that are not regular files ---------------------------


def test_a_pax_header_bomb_is_refused_with_flat_memory(site: Site) -> None:
    """Was: a 0.5 MB gzip bundle declaring a 512 MiB pax header cost 1.1 GB of memory."""
    entries, files = good()
    bomb = site.forge("mirror-bomb", entries, pax_bomb(512 << 20, tar_of(files)), compression="gzip")
    assert sum(p.stat().st_size for p in bomb.parent.iterdir()) < 1_000_000
    before = everything(site.root)
    code, peak_mib, _ = measured(site.offline.config, "import", str(bomb))
    assert code == EXIT_CONFIG
    assert peak_mib < 256, f"peak RSS {peak_mib} MiB"
    assert everything(site.root) == before


MEMBERS: dict[str, Callable[[str], bytes]] = {
    "a symbolic link": lambda name: member(name, tarfile.SYMTYPE, linkname="/etc/passwd"),
    "a hard link": lambda name: member(name, tarfile.LNKTYPE, linkname="web/simple/index.html"),
    "a directory": lambda name: member(name, tarfile.DIRTYPE),
    "a character device": lambda name: member(name, tarfile.CHRTYPE),
    "a block device": lambda name: member(name, tarfile.BLKTYPE),
    "a FIFO": lambda name: member(name, tarfile.FIFOTYPE),
    "a GNU long name": lambda name: member("././@LongLink", tarfile.GNUTYPE_LONGNAME, size=1 << 30),
    "a global pax header": lambda name: member("pax_global_header", tarfile.XGLTYPE, size=1 << 30),
    "a GNU sparse file": lambda name: member(name, tarfile.GNUTYPE_SPARSE),
    "a pax header of": lambda name: member("././@PaxHeader", tarfile.XHDTYPE, size=(16 << 10) + 1),
}


@pytest.mark.parametrize("kind", list(MEMBERS))
def test_a_tar_member_that_is_not_a_regular_file_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    entries, files = good()
    target = "packages/aa/bb/demo-9.0-py3-none-any.whl"
    stream = raw_members(files)  # GOOD, then the hostile member where the next file should be
    forged = site.forge(
        "mirror-links", [*entries, file_entry(target, b"")], [stream, MEMBERS[kind](f"web/{target}"), END]
    )
    assert kind in site.refused(capsys, forged)


def test_a_tar_stream_with_files_the_manifest_does_not_list_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    entries, files = good()
    forged = site.forge("mirror-more", entries, [tar_of([*files, ("packages/zz/extra.whl", b"e")])])
    assert "holds files its manifest does not list" in site.refused(capsys, forged)


# -- 2. paths that would fail halfway through applying ---------------------------------------------

BAD_PATHS = [
    "simple",
    "packages",
    "web/simple/index.html",
    "packages/" + "s" * 300 + "/x.whl",
    "packages/aa/" + "f" * 256,
    "simple/Demo/index.html",
    "simple/demo/other.html",
    "simple/demo/sub/index.html",
    "simple/index.json",
    "packages/a/../b.whl",
    "packages//b.whl",
    "packages/./b.whl",
    "packages/.hidden/b.whl",
    "packages/aa/.b.whl.x.mirror-tmp",
    "packages/a\\b.whl",
    "/packages/b.whl",
    "packages/c:/b.whl",
    "packages/" + "d/" * 17 + "b.whl",
    "packages/" + "ab/" * 700 + "b.whl",
]


@pytest.mark.parametrize("path", BAD_PATHS, ids=[p[:40] for p in BAD_PATHS])
def test_a_path_the_layout_cannot_hold_is_refused_before_anything_is_applied(
    site: Site, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    """Was: a path ``simple`` or a 300-byte segment: exit 4 after a partial apply, and every retry the same."""
    assert "refusing" in site.refused(capsys, forged_with(site, path))
    site.genuine_still_imports()


def existing_wheel(site: Site) -> str:
    """A wheel of the offline tree, as a path under web/."""
    web = site.offline.web
    return str(min((web / "packages").rglob("*.whl")).relative_to(web))


def test_deleting_a_directory_is_refused_before_anything_is_applied(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: exit 4 after a partial apply, and every retry failed the same way."""
    directory = existing_wheel(site).rpartition("/")[0]
    err = site.refused(capsys, forged_with(site, "packages/zz/new.whl", b"n", {"delete": directory}))
    assert f"cannot apply {directory}: it is a directory" in err
    # A directory this very bundle creates.
    err = site.refused(capsys, forged_with(site, "packages/zz/new.whl", b"n", {"delete": "packages/zz"}))
    assert "cannot apply packages/zz: it is a directory" in err
    site.genuine_still_imports()


CLASHES: dict[str, Callable[[str], list[tuple[str, bytes]]]] = {
    "the same path twice": lambda _: [("packages/zz/a.whl", b"1"), ("packages/zz/a.whl", b"2")],
    "a file and a directory": lambda _: [("packages/zz/a", b"1"), ("packages/zz/a/b.whl", b"2")],
    "a directory and then a file": lambda _: [("packages/zz/a/b.whl", b"1"), ("packages/zz/a", b"2")],
    "a file under a file of the tree": lambda wheel: [(wheel + "/x", b"1")],
    "a file over a directory of the tree": lambda wheel: [(wheel.rpartition("/")[0], b"1")],
}


@pytest.mark.parametrize("clash", list(CLASHES))
def test_paths_that_clash_with_each_other_or_the_tree_are_refused(
    site: Site, capsys: pytest.CaptureFixture[str], clash: str
) -> None:
    entries, files = good()
    more = CLASHES[clash](existing_wheel(site))
    forged = site.forge("mirror-clash", [*entries, *(file_entry(p, d) for p, d in more)], [tar_of([*files, *more])])
    site.refused(capsys, forged)
    site.genuine_still_imports()


def test_a_later_bundle_that_clashes_with_an_earlier_one_refuses_the_whole_set(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    entries, files = good()
    first = site.forge("mirror-one", entries, [tar_of(files)])
    one = "packages/ok/aa"  # a directory once the first is applied
    second = write_bundle(
        site.root / "forged",
        "mirror-two",
        [tar_of([(one, b"2")])],
        [file_entry(one, b"2")],
        origin=site.first["origin"],
        previous="mirror-one",
        full=False,
        seq=site.first["seq"] + 2,
    )
    assert f"cannot apply {one}: it is a directory" in site.refused(capsys, first, second)
    assert site.offline.import_(first) == EXIT_OK  # alone, the first is fine
    assert (site.offline.web / GOOD).is_file()


# -- resuming ----------------------------------------------------------------------------------------

RENAMES = "rename,renameat,renameat2"


def killed_import(site: Site, syscalls: str) -> None:
    """Run the import of the genuine bundle in a child that strace kills at its first call of ``syscalls``."""
    strace = shutil.which("strace")
    if strace is None:
        if os.environ.get("CI"):
            pytest.fail("strace is required in CI (tests/run installs it)")
        pytest.skip("strace is not installed")
    command = [strace, "-f", "-qq", "-o", os.devnull, "-e", f"trace={syscalls}"]
    command += ["-e", f"inject={syscalls}:signal=KILL:when=1", sys.executable, "-m", "mirror"]
    command += ["--config", str(site.offline.config), "import", str(site.manifest)]
    assert subprocess.run(command, cwd=ROOT, capture_output=True, timeout=120).returncode != 0


def test_a_resumed_import_applies_the_checked_copy_of_the_manifest_not_the_medium(site: Site) -> None:
    """Killed at its first publication (a rename), then rerun after the medium changed: what was checked is applied."""
    offline = site.offline
    before = offline.tree()
    killed_import(site, RENAMES)
    stage = offline.root / "m" / "state" / "import" / str(header(site.manifest)["id"])
    assert (stage / "VERIFIED").is_file() and offline.tree() == before
    site.edit(lines=lambda rest: rest.append(json.dumps({"delete": "simple/index.html"})))
    assert offline.import_(site.manifest) == EXIT_OK
    assert offline.tree() == site.expected
    assert not stage.exists()


def test_a_kill_after_the_bundle_is_recorded_leaves_no_staging_behind(site: Site) -> None:
    """Killed as the staging area is removed (its first unlinkat), after the bundle was recorded: a rerun cleans up."""
    offline = site.offline
    killed_import(site, "unlinkat")
    stage = offline.root / "m" / "state" / "import" / str(header(site.manifest)["id"])
    assert stage.exists() and offline.tree() == site.expected
    assert offline.import_(site.manifest) == EXIT_OK  # skipped: already imported
    assert not stage.exists()
