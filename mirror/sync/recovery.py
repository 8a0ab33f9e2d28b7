"""Start-of-run recovery: undo what an interrupted run left half-done, never breaking what is served.

A run killed part way leaves, in the directories its journal names, temporary files (never
visible), and files and pages renamed into place whose state rows died with the uncommitted
batch. A client may be reading one of those pages right now, so at no instant may recovery
remove a file a published page links. The order is therefore:

1. remove temporary files;
2. read the pages in the journaled project directories; record every file they link that is
   on disk with the hash they advertise (it was verified before its rename), and register a
   project whose pages exist but whom state never knew, so the plan syncs it again or deletes
   it in the safe order (root, pages, files);
3. only then remove the files that state does not know and no page links: nothing can break.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from packaging.utils import NormalizedName

from mirror._state import State
from mirror.core import layout, parse, verify
from mirror.core.plan import LocalFile
from mirror.errors import UnsafeName, UpstreamError
from mirror.storage.base import Storage

Links = dict[str, str | None]
"""A web/ path a page links to the sha256 the page advertises for it (None: not given)."""


@dataclass(frozen=True, slots=True)
class Recovered:
    temps: int
    """Temporary files removed."""
    adopted: int
    """Files published pages link, recorded in state."""
    strays: int
    """Files no page links and state does not know, removed."""


def recover(dirs: list[str], storage: Storage, state: State) -> Recovered:
    """Clean the directories an interrupted run journaled; the caller commits, then clears the journal."""
    temps = sum(storage.remove_temps(d) for d in dirs)
    linked: Links = {}
    adopted = 0
    for name in _project_dirs(dirs):
        if all(storage.size(p) is None for p in layout.page_paths(name)):
            continue
        links = page_links(storage, name)
        adopted += _adopt(storage, state, name, links)
        linked.update(links)
    strays = sum(_remove_strays(storage, state, d, linked) for d in dirs)
    return Recovered(temps, adopted, strays)


def _project_dirs(dirs: list[str]) -> list[NormalizedName]:
    names = []
    for directory in dirs:
        head, _, rest = directory.partition("/")
        if head != layout.SIMPLE or not rest:
            continue
        try:
            name = layout.project_name(rest)
        except UnsafeName:
            continue
        if name == rest:  # the journal only ever names normalized project directories
            names.append(name)
    return names


def page_links(storage: Storage, name: NormalizedName) -> Links:
    """Every file the published pages of ``name`` link (all three: a kill may land between them)."""
    base = verify.page_base(name)
    links: Links = {}
    for path in layout.page_paths(name):
        if storage.size(path) is None:
            continue
        body = b"".join(storage.read(path))
        try:
            if path.endswith("json"):
                page = parse.parse_project_json(body, base)
            else:
                page = parse.parse_project_html(body, base, name)
        except UpstreamError:
            continue  # not a page we wrote: it links nothing a client could follow
        for dist in page.files:
            target = verify.linked_path(dist.url)
            if target is None:
                continue
            links[target] = dist.sha256
            meta = dist.metadata_hashes
            if meta is not None:
                links[layout.metadata_path(target)] = meta.get("sha256")
    return links


def _adopt(storage: Storage, state: State, name: str, links: Links) -> int:
    """Record the files ``name``'s pages link that state lost; returns how many."""
    if state.project(name) is None:
        state.register_project(name)  # unpublished: the plan syncs it again, or deletes it safely
    adopted = 0
    for path, expected in sorted(links.items()):
        if state.file_owner(path) is not None:
            continue
        held = _held(storage, path)
        if held is None or (expected is not None and held.sha256 != expected):
            continue  # linked but not what the page says: kept, and the resync replaces it
        state.add_file(name, held)
        state.record_change(path, False)  # its first record died with the crash
        adopted += 1
    return adopted


def _held(storage: Storage, path: str) -> LocalFile | None:
    size = storage.size(path)
    if size is None:
        return None
    digest = hashlib.sha256()
    for chunk in storage.read(path):
        digest.update(chunk)
    return LocalFile(path, size, digest.hexdigest())


def _remove_strays(storage: Storage, state: State, directory: str, linked: Links) -> int:
    """Files renamed into place by a run killed before its commit, that no published page links.

    Left alone they would outlive their project (its deletion finds files through state).
    A project still upstream fetches them again.
    """
    if directory.partition("/")[0] != layout.PACKAGES:
        return 0
    strays = [p for p in storage.files_in(directory) if p not in linked and state.file_owner(p) is None]
    for path in strays:
        storage.delete(path)
    return len(strays)
