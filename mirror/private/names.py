"""The reserved names, also kept as a plain list beside the state database.

``verify --rebuild-state`` rebuilds a lost database from the published pages, which cannot say
which projects are private; without this list the rebuilt state would let the next sync take a
private name from the upstream (dependency confusion). One normalized name a line, written
atomically after every change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from packaging.utils import NormalizedName

from mirror.core import layout
from mirror.errors import UnsafeName
from mirror.storage.fs import fatal

NAMES_FILE = "private-names.txt"


def write_names(state_dir: Path, names: Iterable[str]) -> None:
    path = state_dir / NAMES_FILE
    temp = path.with_name(f".{NAMES_FILE}.tmp")
    body = "".join(f"{name}\n" for name in sorted(names))
    try:
        temp.write_text(body, encoding="utf-8")
        temp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise fatal(exc, path) from None


def read_names(state_dir: Path) -> frozenset[NormalizedName]:
    try:
        text = (state_dir / NAMES_FILE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return frozenset()
    except OSError as exc:
        raise fatal(exc, state_dir / NAMES_FILE) from None
    names = set()
    for line in text.splitlines():
        with contextlib.suppress(UnsafeName):
            if line.strip():
                names.add(layout.project_name(line.strip()))
    return frozenset(names)


__all__ = ["NAMES_FILE", "read_names", "write_names"]
