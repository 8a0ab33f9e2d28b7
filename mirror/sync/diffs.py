"""Diff files: what one run (sync or import) changed under ``web/``, for rsync scripts and auditors.

Each file is named ``<UTC time>_serial-<from>-<to>_<seq>.diff`` and lists, one per line, a marker
(``A`` added, ``M`` changed, ``D`` deleted), a tab and the path relative to ``web/``. The
bandersnatch format (``.files``) lists the absolute paths of added and changed files only.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from mirror._config import Config
from mirror._state import State
from mirror.errors import EnvironmentFault

_NAME = re.compile(r"^\d{8}T\d{6}Z_serial-\d+-\d+_\d+\.(diff|files)$")


def write_run_diff(config: Config, state: State, now: float | None = None) -> list[Path]:
    """Write the diff of every change since the last diff file (none if nothing changed)."""
    _remove_temps(config.diffs)
    after, upto = state.get_int("diff_seq") or 0, state.change_seq()
    if upto <= after or config.diff_keep == 0:
        state.set_meta("diff_seq", upto)
        return []
    first, last = state.get_int("diff_serial") or 0, state.get_int("serial") or 0
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    stem = f"{stamp}_serial-{first}-{last}_{upto}"
    written = []
    if config.diff_format in ("mirror", "both"):
        written.append(_write(config.diffs / f"{stem}.diff", _mirror_lines(state, after, upto)))
    if config.diff_format in ("bandersnatch", "both"):
        written.append(_write(config.diffs / f"{stem}.files", _bandersnatch_lines(state, config.web, after, upto)))
    state.set_meta("diff_seq", upto)
    state.set_meta("diff_serial", last)
    prune(config.diffs, config.diff_keep)
    return written


def _mirror_lines(state: State, after: int, upto: int) -> Iterator[str]:
    for change in state.iter_changes(after, upto):
        marker = "D" if change.deleted else "A" if change.added else "M"
        yield f"{marker}\t{change.path}\n"


def _bandersnatch_lines(state: State, web: Path, after: int, upto: int) -> Iterator[str]:
    for change in state.iter_changes(after, upto):
        if not change.deleted:
            yield f"{web / change.path}\n"


def _write(path: Path, lines: Iterator[str]) -> Path:
    temp = path.with_name(f".{path.name}.mirror-tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temp, "w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line)
        temp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise EnvironmentFault(f"cannot write diff file {path}: {exc.strerror or exc}") from None
    return path


def _remove_temps(directory: Path) -> None:
    """A run killed while writing a diff file left its temporary file: only runs holding the lock write here."""
    try:
        with os.scandir(directory) as entries:
            temps = [e.path for e in entries if e.name.startswith(".") and e.name.endswith(".mirror-tmp")]
    except FileNotFoundError:
        return
    for temp in temps:
        with contextlib.suppress(FileNotFoundError):
            Path(temp).unlink()


def prune(directory: Path, keep: int) -> None:
    """Keep the newest ``keep`` runs' diff files (a run may have written two formats)."""
    try:
        names = sorted(entry.name for entry in os.scandir(directory) if _NAME.match(entry.name))
    except FileNotFoundError:
        return
    stems = sorted({name.rsplit(".", 1)[0] for name in names})
    old = set(stems[: max(0, len(stems) - keep)])
    for name in names:
        if name.rsplit(".", 1)[0] in old:
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
