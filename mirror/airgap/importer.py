"""``mirror import``: verify bundles completely in a staging area, then apply them in the safe order.

Nothing becomes visible until every part and every file of every bundle given has been checked
against its manifest. Applying is renames from ``state/import/<bundle>/`` into ``web/``:
distribution files, then project pages, then the root index, then deleted pages, then deleted
files. A bundle is recorded as imported only at the end, so an interrupted import is resumed by
running it again (the verified staging area is reused).
"""

from __future__ import annotations

import calendar
import hashlib
import os
import shutil
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror._config import Config
from mirror._state import State
from mirror.airgap.bundle import Header, PartReader, check_parts, find_manifests, read_entries, read_header
from mirror.airgap.export import page_project
from mirror.core import layout
from mirror.core.plan import LocalFile
from mirror.errors import BundleRefused, EnvironmentFault
from mirror.storage.base import Storage
from mirror.sync import diffs

STAGING = "import"
_VERIFIED = "VERIFIED"
_MARK = "MARK"
_BAD_PARTS = frozenset({"", ".", ".."})
_ROOT = frozenset(layout.root_paths())


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
    found: dict[str, _Bundle] = {}
    for manifest in find_manifests(paths):
        header = read_header(manifest)
        found.setdefault(header.id, _Bundle(header, manifest))
    chain = _plan(state, sorted(found.values(), key=lambda b: (b.header.seq, b.header.created)), report)
    stages: list[Path] = []
    try:
        for bundle in chain:  # every bundle verified before any is applied
            stages.append(_stage(config, bundle))
    except BaseException:
        for stage in stages:  # a refused set keeps nothing staged
            shutil.rmtree(stage, ignore_errors=True)
        raise
    for bundle, stage in zip(chain, stages, strict=True):
        _Applier(state, storage, bundle, stage).run()
        report.applied.append(bundle.header)
    # Also when nothing was left to apply: an import killed after recording its bundle still owes its diff.
    diffs.write_run_diff(config, state)
    state.commit()
    return report


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


def _stage(config: Config, bundle: _Bundle) -> Path:
    stage = config.state_dir / STAGING / bundle.header.id
    if (stage / _VERIFIED).exists():
        return stage  # an interrupted import of this bundle already checked all of it
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.mkdir(parents=True)
        check_parts(bundle.directory, bundle.header)
        _extract(bundle, stage, config.fsync)
        (stage / _VERIFIED).touch()
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return stage


def _extract(bundle: _Bundle, stage: Path, fsync: bool) -> None:
    header = bundle.header
    reader = PartReader(bundle.directory, header)
    try:
        with tarfile.open(fileobj=reader, mode="r|gz" if header.compression == "gzip" else "r|") as tar:  # type: ignore[call-overload]
            count = 0
            for number, entry in enumerate(_files(bundle)):
                _extract_one(header, tar, entry, stage / str(number), fsync)
                count = number + 1
            if tar.next() is not None:
                raise BundleRefused(f"bundle {header.id} holds files its manifest does not list")
            if count != header.files:
                raise BundleRefused(f"bundle {header.id}: manifest lists {count} files, its header {header.files}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BundleRefused(f"bundle {header.id}: damaged tar stream ({exc})") from None
    finally:
        reader.close()


def _extract_one(header: Header, tar: tarfile.TarFile, entry: dict[str, Any], target: Path, fsync: bool) -> None:
    path = entry["path"]
    member = tar.next()
    if member is None:
        raise BundleRefused(f"bundle {header.id} ends before {path} (truncated)")
    if member.name != f"web/{path}" or not member.isreg() or member.size != entry["size"]:
        raise BundleRefused(f"bundle {header.id}: {member.name} is not the {path} its manifest lists")
    source = tar.extractfile(member)
    if source is None:
        raise BundleRefused(f"bundle {header.id}: {path} has no content")
    digest = hashlib.sha256()
    try:
        with open(target, "wb") as out:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            if fsync:
                os.fsync(out.fileno())
    except OSError as exc:
        raise EnvironmentFault(f"cannot stage {target}: {exc.strerror}") from None
    if digest.hexdigest() != entry["sha256"]:
        raise BundleRefused(f"bundle {header.id}: {path} does not match its sha256 (altered)")


def _files(bundle: _Bundle) -> Iterator[dict[str, Any]]:
    """The manifest's file entries, checked for shape and for paths that stay inside web/."""
    for entry in read_entries(bundle.manifest):
        if "path" not in entry:
            continue
        path, size, sha = entry.get("path"), entry.get("size"), entry.get("sha256")
        if not (isinstance(path, str) and isinstance(size, int) and isinstance(sha, str)):
            raise BundleRefused(f"bundle {bundle.header.id}: malformed manifest entry {entry!r}")
        yield {**entry, "path": _safe(path, bundle.header)}


def _safe(path: str, header: Header) -> str:
    parts = path.split("/")
    if (
        "\\" in path
        or "\x00" in path
        or parts[0] not in (layout.SIMPLE, layout.PACKAGES)
        or any(part in _BAD_PARTS for part in parts)
        or layout.is_temp_name(parts[-1])
    ):
        raise BundleRefused(f"bundle {header.id}: refusing path {path!r}")
    return path


class _Applier:
    """Moves one verified bundle into ``web/`` and brings the state along."""

    def __init__(self, state: State, storage: Storage, bundle: _Bundle, stage: Path) -> None:
        self.state, self.storage, self.bundle, self.stage = state, storage, bundle, stage

    def run(self) -> None:
        header = self.bundle.header
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
        self.state.add_import(header.id, header.seq, header_time(header))
        shutil.rmtree(self.stage, ignore_errors=True)

    def _mark(self) -> int:
        """Where the change log stood before this bundle: a full bundle removes what is older."""
        mark = self.stage / _MARK
        if not mark.exists():
            self.state.commit()
            mark.write_text(str(self.state.change_seq()))
        return int(mark.read_text())

    def _place(self, wanted: Callable[[str], bool]) -> None:
        for number, entry in enumerate(_files(self.bundle)):
            path = entry["path"]
            if not wanted(path):
                continue
            self._move(self.stage / str(number), path, entry)
            if entry.get("project"):
                self.state.add_file(str(entry["project"]), LocalFile(path, entry["size"], entry["sha256"]))

    def _move(self, staged: Path, path: str, entry: dict[str, Any]) -> None:
        """Publish a staged file (the storage's change hook records it)."""
        if self.storage.move_in(path, staged):
            return
        # Moved by an interrupted run of this import: it must be in place, whole.
        if _sha256(self.storage, path) != entry["sha256"]:
            shutil.rmtree(self.stage, ignore_errors=True)
            raise BundleRefused(f"bundle {self.bundle.header.id}: staging lost {path}; import the bundle again")
        self.state.record_change(path, False)  # its first record may have died with the interrupted run

    def _projects(self) -> None:
        for entry in read_entries(self.bundle.manifest):
            if "project" in entry and "path" not in entry:
                self.state.publish_project(str(entry["project"]), entry.get("serial"), None, None)
            elif "forget" in entry:
                self.state.forget_project(str(entry["forget"]))

    def _deletions(self, mark: int) -> Iterator[str]:
        for entry in read_entries(self.bundle.manifest):
            if "delete" in entry:
                yield _safe(str(entry["delete"]), self.bundle.header)
        if self.bundle.header.full:
            for change in self.state.iter_changes(0, mark):
                if not change.deleted:
                    yield change.path

    def _delete(self, path: str) -> None:
        self.storage.delete(path)
        self.state.remove_files([path])
        name = page_project(path)
        if name is not None:
            self.state.forget_project(name)


def header_time(header: Header) -> float:
    return float(calendar.timegm(time.strptime(header.created, "%Y-%m-%dT%H:%M:%SZ")))


def _sha256(storage: Storage, path: str) -> str | None:
    if storage.size(path) is None:
        return None
    digest = hashlib.sha256()
    for chunk in storage.read(path):
        digest.update(chunk)
    return digest.hexdigest()
