"""Telling a lost state database from a healthy one, by reading what ``web/`` publishes.

Sync and verify trust state for what the mirror holds: a file state does not know is a stray
or an orphan, a project it does not know is not published. With the state database deleted,
emptied, or swapped for another mirror's, that trust deletes a healthy mirror. So before
anything that could delete or unpublish, the published tree is compared with state:

* **missing**: no database, yet ``web/`` publishes projects;
* **empty**: a database that never recorded a run (no projects, files, nor upstream listing);
* **foreign**: state has published projects, yet knows none of a sample of those the root
  index of ``web/`` lists (another mirror's database).

A state that knows most of what is published but is behind (a crash lost its last batch, an
old backup) is not lost: a sync re-derives it. What protects the tree then is that the root is
never rewritten without a project it lists that state neither publishes nor is deleting
(:func:`check_root`), and that verify never prunes what a published page links.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

from packaging.utils import NormalizedName

from mirror._state import STATE_DB, State
from mirror.core import layout, parse
from mirror.errors import MirrorError, StateLost
from mirror.storage.base import Storage, root_names

SAMPLE = 100
"""How many published projects the foreign check looks up."""
_ROOT_JSON = f"{layout.SIMPLE}/index.v1_json"
_RECOVER = (
    "rebuild it from the tree with `mirror verify --rebuild-state` (reads pages, hashes files, downloads nothing)"
)
ROOT_STAT = "root_stat"
"""State meta: the sha256 of the root index state last wrote (the root it wrote lists only what it knows)."""
ROOT_SIZE = "root_size"
"""State meta: the size of that root index (a cheap sign that the published root is still it)."""


def check_state(web: Storage, where: str, state_dir: Path, state: State | None) -> None:
    """Raise :class:`StateLost` when ``state`` (None: no database) cannot be the state of the tree in ``web``.

    ``where`` names the tree in messages (its directory, or ``s3://bucket/prefix``).
    """
    sample = published_sample(web)
    if not sample:
        return  # nothing is published: nothing to lose
    db = state_dir / STATE_DB
    example = f"e.g. project {sample[0]!r}"
    if state is None:
        raise StateLost(f"state database {db} is missing, but {where} publishes a mirror ({example}); {_refusal()}")
    if not state.has_history():
        raise StateLost(f"state database {db} is empty, but {where} publishes a mirror ({example}); {_refusal()}")
    if state.totals().projects and not any(state.project(name) is not None for name in sample):
        raise StateLost(
            f"state database {db} belongs to another mirror: it knows none of the {len(sample)} projects "
            f"{where} publishes that it looked up ({example}); {_refusal()}"
        )


def _refusal() -> str:
    return f"refusing to sync or verify, which would delete what state does not know; {_RECOVER}"


def published_sample(web: Storage, limit: int = SAMPLE) -> list[NormalizedName]:
    """Up to ``limit`` projects ``web`` publishes: the first the root index lists, else page directories."""
    names = list(itertools.islice(root_names(web, _ROOT_JSON, parse.IndexJsonParser()), limit))
    return names if names else _page_dirs(web, limit)


def _page_dirs(web: Storage, limit: int) -> list[NormalizedName]:
    found: list[NormalizedName] = []
    try:
        for entry in web.scan(layout.SIMPLE):
            if entry.is_dir and _has_page(web, entry.name):
                found.append(NormalizedName(entry.name))
                if len(found) >= limit:
                    break
    except (OSError, MirrorError):
        return []
    return sorted(found)


def check_root(state: State, storage: Storage) -> None:
    """Refuse to rewrite the root without a project it lists, whose page is there, and that state does not know.

    The root state last wrote (same sha256 as recorded) lists only what state knows, so the
    check reads the listing only when something else wrote it: a run killed before its state
    commit, an import, a lost or restored database.
    """
    signature = _root_signature(storage)
    if signature is None or state.get_meta(ROOT_STAT) == signature[0]:
        return
    unknown, first = 0, ""
    for name in root_names(storage, _ROOT_JSON, parse.IndexJsonParser()):
        # A listed name without a page is a broken listing: dropping it is a fix, not a loss.
        if state.project(name) is None and _has_page(storage, name):
            unknown += 1
            first = first or name
    if unknown:
        raise StateLost(
            f"the root index lists {unknown} projects the state database does not know (e.g. {first!r}); "
            f"refusing to rewrite it without them; {_RECOVER}"
        )


def _has_page(storage: Storage, name: str) -> bool:
    return any(storage.size(f"{layout.SIMPLE}/{name}/{page}") is not None for page in layout.PAGE_FILES)


def remember_root(state: State, storage: Storage) -> None:
    """Record which root state wrote (call right after writing it)."""
    signature = _root_signature(storage)
    state.set_meta(ROOT_STAT, None if signature is None else signature[0])
    state.set_meta(ROOT_SIZE, None if signature is None else signature[1])


def root_is_ours(state: State, storage: Storage) -> bool:
    """Whether the published JSON root looks like the one state last wrote (or neither exists), by its size.

    One stat, for a decision that only saves work: a root another writer left at the same size
    reads as ours (a restored state's root lists other projects or serials, nearly always another size).
    """
    return storage.size(_ROOT_JSON) == state.get_int(ROOT_SIZE)


def _root_signature(storage: Storage) -> tuple[str, int] | None:
    """The sha256 and size of the published JSON root, or None if there is none (or it cannot be read)."""
    if storage.size(_ROOT_JSON) is None:
        return None
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in storage.read(_ROOT_JSON):
            digest.update(chunk)
            size += len(chunk)
    except OSError:
        return None  # writing the new root will report it
    return digest.hexdigest(), size
