"""Publishing and removing private distributions, for ``mirror add``/``remove`` and uploads alike.

Everything goes through the :class:`~mirror.storage.base.Storage` protocol, in the publication
order of a sync (ARCHITECTURE.md): the file under a temporary name, its sha256 checked again
while it is written, renamed into place; then its ``.metadata``; then the project's pages; then
the root index; then the state commit. Removal goes the other way. The caller holds the run
lock, so a sync never runs at the same time; the temp-file journal is the sync's, so a killed
``add`` is cleaned up by the next ``add``, upload or sync.

A private name is reserved: the sync never takes it from the upstream (see
``Syncer.reserved``). Adding a name the mirror already holds from the upstream is refused unless
``replace_upstream`` says so; its upstream files then go after the new page is published.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version

from mirror._config import Config
from mirror._state import State
from mirror.core import layout, private
from mirror.core.plan import LocalFile
from mirror.core.private import Distribution, PrivateFile
from mirror.errors import AlreadyPublished, IntegrityError, Refused, UnsafeName
from mirror.private.archive import core_metadata
from mirror.private.names import write_names
from mirror.storage.base import Storage
from mirror.sync import diffs, recovery
from mirror.sync.engine import TEMP_JOURNAL, write_root
from mirror.sync.journal import TempJournal

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Added:
    dist: Distribution
    path: str
    size: int
    sha256: str
    replaced: int
    """Files of the upstream project it replaced, removed."""


@dataclass(frozen=True, slots=True)
class Removed:
    project: NormalizedName
    files: int
    whole: bool
    """The project is gone (not just some of its releases)."""


class PrivateIndex:
    def __init__(
        self, config: Config, state: State, storage: Storage, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config, self.state, self.storage, self._clock = config, state, storage, clock
        self._journal = TempJournal(config.state_dir / TEMP_JOURNAL, before_compact=state.commit)

    def recover(self) -> None:
        """Undo what a killed add, upload or sync left half-done (as a sync does first)."""
        dirs = self._journal.dirs()
        if dirs:
            recovery.recover(dirs, self.storage, self.state)
            self.state.commit()
            self._journal.clear()

    # -- adding --------------------------------------------------------------------------------

    async def add(
        self, source: Path, filename: str, *, sha256: str | None = None, replace_upstream: bool = False
    ) -> Added:
        """Publish the local file ``source`` as the private distribution ``filename``.

        ``sha256`` (an upload's form field) must match the bytes. Raises :class:`Refused`
        (nothing written) for anything that is not a consistent wheel or sdist, and
        :class:`AlreadyPublished` for a file name the project already has.
        """
        dist = private.parse_distribution(filename)
        self.recover()
        size, digest = _digest(source)
        if sha256 is not None and sha256.strip().lower() != digest:
            raise Refused(f"{filename}: sha256 {digest} of the bytes received does not match sha256_digest {sha256}")
        metadata = core_metadata(source, dist)
        requires_python = private.check_metadata(dist, metadata) if metadata is not None else None
        name = dist.name
        replaced = self._check_project(dist, digest, replace_upstream)
        path = private.file_path(filename, digest)
        owner = self.state.file_owner(path)
        if owner is not None and owner != name:
            raise Refused(f"{filename}: {path} already belongs to project {owner}")
        fresh = self.state.local_project(name) is None
        self.state.register_project(name)
        meta_path = layout.metadata_path(path) if metadata is not None and dist.kind == private.WHEEL else None
        # A content-addressed upstream may hold these very bytes at this very path: kept, not replaced.
        replaced = [p for p in replaced if p not in (path, meta_path)]
        self._journal.add(name, [path.rpartition("/")[0], layout.project_dir(name), layout.SIMPLE])
        try:
            await self._write(path, _chunks(source), size, digest)
            self.state.add_file(name, LocalFile(path, size, digest))
            if meta_path is not None and metadata is not None:
                meta_digest = hashlib.sha256(metadata).hexdigest()
                await self._write(meta_path, iter([metadata]), len(metadata), meta_digest)
                self.state.add_file(name, LocalFile(meta_path, len(metadata), meta_digest))
            self.state.mark_private(name)
            record = PrivateFile(path, filename, str(dist.version), requires_python, self._now(), meta_path)
            self.state.add_private_file(name, record)
            await self._publish_pages(name)
        except BaseException:
            self._undo(name, fresh, [path] if meta_path is None else [path, meta_path])
            raise
        finally:
            self._journal.done(name)
        self._delete_files(name, replaced)
        self._finish()
        return Added(dist, path, size, digest, len(replaced))

    def _undo(self, name: NormalizedName, fresh: bool, paths: list[str]) -> None:
        """A failed add (a full disk): its files go again, and a project it created is forgotten.

        No page links them yet (the pages are the last step that can fail), so removing them breaks nothing.
        """
        if any(f.path == paths[0] for f in self.state.private_files(name)) and self._page_links(name, paths[0]):
            return  # the page made it out: the add is done, only its bookkeeping failed
        for path in paths:
            self.storage.delete(path)
        self.state.remove_files(paths)
        self.state.remove_private_files(paths[:1])
        if fresh:
            self.state.forget_project(name)
            self.state.forget_private(name)
        self.state.commit()

    def _pages_current(self, name: NormalizedName) -> bool:
        """Whether all three pages are published with exactly what state says they hold."""
        known = self.state.local_project(name)
        if known is None or known.serial is None:
            return False
        page = private.private_page(name, self.state.private_files(name), self.state.project_files(name), known.serial)
        for path, body in private.page_bodies(page):
            if self.storage.size(path) != len(body) or b"".join(self.storage.read(path)) != body:
                return False
        return True

    def _page_links(self, name: NormalizedName, path: str) -> bool:
        page = layout.page_paths(name)[2]
        if self.storage.size(page) is None:
            return False
        return layout.relative_link(layout.project_dir(name), path).encode() in b"".join(self.storage.read(page))

    def _check_project(self, dist: Distribution, digest: str, replace_upstream: bool) -> list[str]:
        """Refuse what may not be added; returns the upstream files ``replace_upstream`` is to remove."""
        name = dist.name
        on_disk = self.state.project_files(name)
        for held in self.state.private_files(name):
            if held.filename != dist.filename:
                continue
            if held.path not in on_disk:
                self.state.remove_private_files([held.path])  # lost or damaged (verify said so): added again
                continue
            same = on_disk[held.path].sha256 == digest
            if same and not self._pages_current(name):
                continue  # an add killed before its pages were all out: this one finishes it
            raise AlreadyPublished(f"{dist.filename}: already published in private project {name}", same=same)
        if self.state.is_private(name) or self.state.local_project(name) is None:
            return []
        if not self.state.is_published(name):
            # Known but never published: a recovery adopted what a killed add (or sync) left. No
            # page of the upstream's is served; whatever it holds is not linked by the new page.
            return sorted(self.state.project_files(name))
        if not replace_upstream:
            raise Refused(
                f"{name} is mirrored from the upstream: adding a private {dist.filename} would hide it; "
                "use --replace-upstream to make it a private project (its upstream files go)"
            )
        return sorted(self.state.project_files(name))

    async def _write(self, path: str, chunks: Iterator[bytes], size: int, digest: str) -> None:
        writer = self.storage.open_async_writer(path)
        hasher, written = hashlib.sha256(), 0
        try:
            for chunk in chunks:
                hasher.update(chunk)
                written += len(chunk)
                await writer.write(chunk)
            if written != size or hasher.hexdigest() != digest:
                # The source changed after it was checked: publish nothing rather than unverified bytes.
                raise IntegrityError(f"{path}: the file changed while it was being published")
            await writer.commit()
        except BaseException:
            writer.abort()
            raise

    # -- removing ------------------------------------------------------------------------------

    async def remove(self, project: str, version: str | None = None) -> Removed:
        """Remove a private project, or one of its releases: pages first, then files; the root updated."""
        try:
            name = layout.project_name(project)
        except UnsafeName as exc:
            raise Refused(str(exc)) from None
        if not self.state.is_private(name):
            if self.state.local_project(name) is not None:
                raise Refused(f"{name} is not a private project: the sync manages it (use the filters to drop it)")
            raise Refused(f"{name}: no such private project")
        self.recover()
        self._journal.add(name, [layout.project_dir(name), layout.SIMPLE])
        files = self.state.private_files(name)
        going = files if version is None else [f for f in files if _same_version(f.version, version)]
        if not going:
            raise Refused(f"{name} has no release {version}")
        if len(going) == len(files):
            count = self._remove_project(name)
            self._finish()
            return Removed(name, count, True)
        paths = [f.path for f in going] + [f.metadata_path for f in going if f.metadata_path is not None]
        self.state.remove_private_files(f.path for f in going)
        await self._publish_pages(name)
        self._delete_files(name, paths)
        self._finish()
        return Removed(name, len(going), False)

    def _remove_project(self, name: NormalizedName) -> int:
        # The root stops listing it first, then its pages go, then its files (ARCHITECTURE.md).
        files = self.state.project_files(name)
        count = len(self.state.private_files(name))
        self.state.forget_project(name)
        write_root(self.state, self.storage)
        for path in layout.page_paths(name):
            self.storage.delete(path)
        for path in files:
            self.storage.delete(path)
        self.state.forget_private(name)
        return count

    async def republish(self, project: str) -> list[str]:
        """Write a private project's pages and the root again from state (``verify --repair``).

        Returns the file names state lists that are not held any more (lost or damaged): they
        cannot come from the upstream, so they are left out of the page until added again.
        """
        name = layout.project_name(project)
        held = self.state.project_files(name)
        lost = [f.filename for f in self.state.private_files(name) if f.path not in held]
        await self._publish_pages(name)
        self._finish()
        return lost

    # -- shared --------------------------------------------------------------------------------

    async def _publish_pages(self, name: NormalizedName) -> None:
        held = self.state.project_files(name)
        page = private.private_page(name, self.state.private_files(name), held, self._next_serial(name))
        await self.storage.write_pages(private.page_bodies(page))
        self.state.publish_project(name, page.last_serial, None, None, None)

    def _delete_files(self, name: str, paths: list[str]) -> None:
        """Files no page links any more (the page without them is already published)."""
        for path in paths:
            self.storage.delete(path)
        self.state.remove_files(paths)

    def _finish(self) -> None:
        write_root(self.state, self.storage)
        write_names(self.config.state_dir, self.state.private_names())
        diffs.write_run_diff(self.config, self.state)
        self.state.commit()
        self._journal.clear()

    def _next_serial(self, name: str) -> int:
        """A serial that grows with every change of the project: a downstream mirror's signal to fetch it again."""
        known = self.state.local_project(name)
        previous = known.serial if known is not None and known.serial is not None else 0
        return max(previous, self.state.get_int("serial") or 0) + 1

    def _now(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self._clock())) + ".000000Z"


def _same_version(held: str, asked: str) -> bool:
    try:
        return Version(held) == Version(asked)
    except InvalidVersion:
        return held == asked


def _digest(source: Path) -> tuple[int, str]:
    hasher, size = hashlib.sha256(), 0
    for chunk in _chunks(source):
        hasher.update(chunk)
        size += len(chunk)
    return size, hasher.hexdigest()


def _chunks(source: Path) -> Iterator[bytes]:
    with open(source, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk
