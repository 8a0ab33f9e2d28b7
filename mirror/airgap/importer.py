"""``mirror import``: verify bundles completely in a staging area, then apply them in the safe order.

Nothing becomes visible until every part and every file of every bundle given has been checked
against its manifest, and the manifest itself line by line (:mod:`mirror.airgap.manifest`).
Staging is ``state/import/<id>/``: the checked copy of the manifest, and the files at their paths
under ``web/``, so a path listed twice or both a file and a directory fails there; then every path
is checked against the tree, so applying cannot stop halfway on the bundle's account. Applying is
renames into ``web/``: distribution files, then project pages, then the root index, then deleted
pages, then deleted files. A bundle is recorded as imported only at the end, so an interrupted
import is resumed by running it again (the verified staging area is reused).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mirror._config import Config
from mirror._state import State
from mirror.airgap.bundle import PartReader, check_parts, find_manifests, read_entries, read_header
from mirror.airgap.export import page_project
from mirror.airgap.manifest import Deletion, Entry, FileEntry, Forget, Header, ProjectSerial
from mirror.airgap.tarstream import Gunzip, TarStream
from mirror.core import layout
from mirror.core.plan import LocalFile
from mirror.errors import BundleRefused, EnvironmentFault
from mirror.storage.base import Storage
from mirror.sync import diffs

STAGING = "import"
_VERIFIED = "VERIFIED"
_MARK = "MARK"
_MANIFEST = "manifest.jsonl"
_TREE = "web"
_ROOT = frozenset(layout.root_paths())
# Staging a path fails with these when the bundle itself is at fault: a path listed twice, a path
# that is both a file and a directory, a path too long for this machine.
_CLASHES = frozenset({errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG})


@dataclass
class ImportReport:
    applied: list[Header] = field(default_factory=list)
    skipped: list[tuple[Header, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Bundle:
    header: Header
    manifest: Path

    @property
    def directory(self) -> Path:
        return self.manifest.parent


def import_bundles(config: Config, state: State, storage: Storage, paths: list[Path]) -> ImportReport:
    """Verify every bundle under ``paths`` in staging, then apply them in order to ``storage`` and ``state``."""
    report = ImportReport()
    _drop_applied_stages(config.state_dir / STAGING, state)
    found: dict[str, _Bundle] = {}
    for manifest in find_manifests(paths):
        header = read_header(manifest)
        found.setdefault(header.id, _Bundle(header, manifest))
    chain = _plan(state, sorted(found.values(), key=lambda b: (b.header.seq, b.header.created)), report)
    stages: list[Path] = []
    try:
        for bundle in chain:  # every bundle verified before any is applied
            stages.append(_stage(config, bundle, stages))
    except BaseException:
        for stage in stages:  # a refused set keeps nothing staged
            shutil.rmtree(stage, ignore_errors=True)
        raise
    for bundle, stage in zip(chain, stages, strict=True):
        _Applier(state, storage, bundle.header, stage).run()
        report.applied.append(bundle.header)
    # Also when nothing was left to apply: an import killed after recording its bundle still owes its diff.
    diffs.write_run_diff(config, state)
    state.commit()
    return report


def _drop_applied_stages(staging: Path, state: State) -> None:
    """Remove the staging left by a bundle that was recorded as imported just before a kill."""
    try:
        entries = list(os.scandir(staging))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and state.imported(entry.name):
            shutil.rmtree(entry.path, ignore_errors=True)


def _plan(state: State, bundles: list[_Bundle], report: ImportReport) -> list[_Bundle]:
    """The bundles to apply, in chain order; refuses the whole import if one cannot follow."""
    origin = state.get_meta("import_origin")
    position = state.imported_seq()
    known: set[str] = set()
    chain: list[_Bundle] = []
    for bundle in bundles:
        header = bundle.header
        if origin is not None and header.origin != origin:
            raise BundleRefused(f"bundle {header.id} comes from another mirror than the bundles this tree holds")
        if header.id in known or state.imported(header.id):
            report.skipped.append((header, "already imported"))
        elif header.seq <= position:
            report.skipped.append((header, "not newer than what this mirror already holds"))
        elif header.full or _follows(state, header.previous, known):
            chain.append(bundle)
            origin, position = header.origin, header.seq
        else:
            raise BundleRefused(f"bundle {header.id} needs bundle {header.previous} imported first; nothing applied")
        known.add(header.id)
    return chain


def _follows(state: State, previous: str | None, known: set[str]) -> bool:
    return previous is not None and (previous in known or state.imported(previous))


def _stage(config: Config, bundle: _Bundle, earlier: list[Path]) -> Path:
    """Check all of a bundle into ``state/import/<id>/``; its id is a plain name, so that is where it goes."""
    header = bundle.header
    stage = config.state_dir / STAGING / header.id
    if _read_marker(stage) == header.to_json():
        return stage  # an interrupted import of this bundle already checked all of it
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.mkdir(parents=True)
        _copy_manifest(bundle, stage / _MANIFEST)
        check_parts(bundle.directory, header)
        _extract(bundle, stage, config.fsync)
        _check_targets(header.id, stage, [config.web, *(s / _TREE for s in earlier)])
        (stage / _VERIFIED).write_text(header.to_json())
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return stage


def _read_marker(stage: Path) -> str | None:
    try:
        return (stage / _VERIFIED).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _copy_manifest(bundle: _Bundle, copy: Path) -> None:
    """Check every entry of the manifest and keep the checked copy that staging and applying read.

    Applying never reads the bundle's own manifest again: the copy is what was verified, whatever
    happens to the USB stick before an interrupted import is resumed.
    """
    header = bundle.header
    files = size = deletions = 0
    try:
        with open(copy, "w", encoding="utf-8") as out:
            out.write(header.to_json() + "\n")
            for entry in read_entries(bundle.manifest):
                out.write(entry.to_json() + "\n")
                if isinstance(entry, FileEntry):
                    files, size = files + 1, size + entry.size
                deletions += isinstance(entry, Deletion)
    except OSError as exc:
        raise EnvironmentFault(f"cannot write {copy}: {exc.strerror}") from None
    if (files, size, deletions) != (header.files, header.bytes, header.deletions):
        raise BundleRefused(
            f"bundle {header.id}: its manifest lists {files} files of {size} bytes and {deletions} deletions, "
            f"its header {header.files} files of {header.bytes} bytes and {header.deletions} deletions"
        )


def _entries(stage: Path) -> Iterator[Entry]:
    return read_entries(stage / _MANIFEST)


def _extract(bundle: _Bundle, stage: Path, fsync: bool) -> None:
    header = bundle.header
    reader = PartReader(bundle.directory, header)
    where = f"bundle {header.id}"
    try:
        source = Gunzip(reader, where) if header.compression == "gzip" else reader
        tar = TarStream(source, where)
        for entry in _entries(stage):
            if isinstance(entry, FileEntry):
                _extract_one(where, tar, entry, stage / _TREE, fsync)
        if tar.next() is not None:
            raise BundleRefused(f"{where} holds files its manifest does not list")
    except OSError as exc:  # reading a part failed after it was checked: a bad medium
        raise BundleRefused(f"{where}: cannot read its parts ({exc.strerror or exc})") from None
    finally:
        reader.close()


def _extract_one(where: str, tar: TarStream, entry: FileEntry, tree: Path, fsync: bool) -> None:
    path = entry.path
    member = tar.next()
    if member is None:
        raise BundleRefused(f"{where} ends before {path} (truncated)")
    if member.name != f"web/{path}" or member.size != entry.size:
        raise BundleRefused(f"{where}: {member.name[:200]!r} is not the {path} its manifest lists")
    target = tree / path
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = open(target, "xb")  # noqa: SIM115 - closed below; x: a path listed twice is refused
    except OSError as exc:
        if exc.errno in _CLASHES:
            raise BundleRefused(f"{where}: {path} is listed twice, or both a file and a directory") from None
        raise EnvironmentFault(f"cannot stage {target}: {exc.strerror}") from None
    digest = hashlib.sha256()
    try:
        with out:
            while chunk := tar.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            if fsync:
                os.fsync(out.fileno())
    except OSError as exc:
        raise EnvironmentFault(f"cannot stage {target}: {exc.strerror}") from None
    if digest.hexdigest() != entry.sha256:
        raise BundleRefused(f"{where}: {path} does not match its sha256 (altered)")


def _check_targets(bundle_id: str, stage: Path, trees: list[Path]) -> None:
    """Refuse, before anything is applied, a bundle that applying could not finish.

    Every path it publishes or deletes must be a regular file or nothing, under directories (never
    a file or a symlink), in ``web/`` and in the trees of the bundles applied before it; a deletion
    must not hit a directory this bundle itself creates either.
    """
    checker = _Clearance(f"bundle {bundle_id}")
    own = stage / _TREE
    for entry in _entries(stage):
        if isinstance(entry, FileEntry):
            checker.check(entry.path, trees)
        elif isinstance(entry, Deletion):
            checker.check(entry.path, [*trees, own])


class _Clearance:
    """Checks that a path could become or stop being a file; remembers a bounded set of good directories."""

    _REMEMBER = 4096

    def __init__(self, where: str) -> None:
        self._where = where
        self._good: set[Path] = set()

    def check(self, path: str, trees: list[Path]) -> None:
        segments = path.split("/")
        for tree in trees:
            for depth in range(1, len(segments)):
                directory = tree.joinpath(*segments[:depth])
                if directory in self._good:
                    continue
                mode = _lstat_mode(directory)
                if mode is None:
                    break  # created when the bundle is applied
                if not stat.S_ISDIR(mode):
                    parent = "/".join(segments[:depth])
                    raise BundleRefused(f"{self._where}: cannot apply {path}: {parent} is not a directory")
                if len(self._good) >= self._REMEMBER:
                    self._good.clear()
                self._good.add(directory)
            mode = _lstat_mode(tree / path)
            if mode is not None and not stat.S_ISREG(mode):
                raise BundleRefused(f"{self._where}: cannot apply {path}: it is a directory or another non-file")


def _lstat_mode(path: Path) -> int | None:
    try:
        return os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise EnvironmentFault(f"cannot check {path}: {exc.strerror}") from None


class _Applier:
    """Moves one verified bundle into ``web/`` and brings the state along."""

    def __init__(self, state: State, storage: Storage, header: Header, stage: Path) -> None:
        self.state, self.storage, self.header, self.stage = state, storage, header, stage

    def run(self) -> None:
        header = self.header
        mark = self._mark()
        self._place(lambda p: not p.startswith(layout.SIMPLE + "/"))
        self._place(lambda p: p.startswith(layout.SIMPLE + "/") and p not in _ROOT)
        self._place(lambda p: p in _ROOT)
        self._projects()
        for pages in (True, False):  # pages stop linking files before the files go
            for path in self._deletions(mark):
                if path.startswith(layout.SIMPLE + "/") == pages:
                    self._delete(path)
        self.state.set_meta("serial", header.to_serial)
        self.state.set_meta("import_origin", header.origin)
        self.state.add_import(header.id, header.seq, header.created_at)
        shutil.rmtree(self.stage, ignore_errors=True)

    def _mark(self) -> int:
        """Where the change log stood before this bundle: a full bundle removes what is older."""
        mark = self.stage / _MARK
        if not mark.exists():
            self.state.commit()
            mark.write_text(str(self.state.change_seq()))
        return int(mark.read_text())

    def _place(self, wanted: Callable[[str], bool]) -> None:
        for entry in _entries(self.stage):
            if not isinstance(entry, FileEntry) or not wanted(entry.path):
                continue
            self._move(self.stage / _TREE / entry.path, entry)
            if entry.project is not None:
                self.state.add_file(entry.project, LocalFile(entry.path, entry.size, entry.sha256))

    def _move(self, staged: Path, entry: FileEntry) -> None:
        """Publish a staged file (the storage's change hook records it)."""
        if self.storage.move_in(entry.path, staged):
            return
        # Moved by an interrupted run of this import: it must be in place, whole.
        if _sha256(self.storage, entry.path) != entry.sha256:
            shutil.rmtree(self.stage, ignore_errors=True)
            raise BundleRefused(f"bundle {self.header.id}: staging lost {entry.path}; import the bundle again")
        self.state.record_change(entry.path, False)  # its first record may have died with the interrupted run

    def _projects(self) -> None:
        for entry in _entries(self.stage):
            if isinstance(entry, ProjectSerial):
                self.state.publish_project(entry.project, entry.serial, None, None)
            elif isinstance(entry, Forget):
                self.state.forget_project(entry.project)

    def _deletions(self, mark: int) -> Iterator[str]:
        for entry in _entries(self.stage):
            if isinstance(entry, Deletion):
                yield entry.path
        if self.header.full:
            for change in self.state.iter_changes(0, mark):
                if not change.deleted:
                    yield change.path

    def _delete(self, path: str) -> None:
        self.storage.delete(path)
        self.state.remove_files([path])
        name = page_project(path)
        if name is not None:
            self.state.forget_project(name)


def _sha256(storage: Storage, path: str) -> str | None:
    if storage.size(path) is None:
        return None
    digest = hashlib.sha256()
    for chunk in storage.read(path):
        digest.update(chunk)
    return digest.hexdigest()
