"""The two syncers under test: their configs and command lines."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Family = Literal["mirror", "bandersnatch", "floor"]

#: bandersnatch refuses more than 10 download workers.
BANDERSNATCH_MAX_WORKERS = 10
#: floor.py's own default concurrency, as the issue measured it.
FLOOR_CONCURRENCY = 32


@dataclass(frozen=True)
class Tool:
    """One syncer at one worker count, e.g. ``mirror w=10``."""

    family: Family
    workers: int
    executable: str
    """``sys.executable`` for mirror (run as ``-m mirror``); the ``bandersnatch`` script; floor.py's path."""

    @property
    def label(self) -> str:
        if self.family == "floor":
            return f"floor c={self.workers}"
        return f"{self.family} w={self.workers}"

    @property
    def has_noop(self) -> bool:
        """The floor fetches everything every time: it has no no-op rerun to measure."""
        return self.family != "floor"

    def packages(self, target: Path) -> Path:
        """Where this tool puts the distribution files of a mirror in ``target``."""
        return target / "packages" if self.family == "floor" else target / "web" / "packages"

    @property
    def slug(self) -> str:
        return f"{self.family}-w{self.workers}"

    def write_config(self, target: Path, upstream_url: str, timeout: float) -> Path:
        """Write this tool's config for a mirror in ``target`` (beside it, not inside it)."""
        if self.family == "mirror":
            path, text = target.with_suffix(".toml"), _mirror_config(target, upstream_url, self.workers)
        elif self.family == "floor":  # no config: its arguments, one a line, for the record
            path, text = target.with_suffix(".args"), "\n".join(self._floor_args(target, upstream_url)) + "\n"
        else:
            path, text = target.with_suffix(".conf"), _bandersnatch_config(target, upstream_url, self.workers, timeout)
        path.write_text(text)
        return path

    def argv(self, config: Path) -> list[str]:
        if self.family == "mirror":
            return [self.executable, "-m", "mirror", "--config", str(config), "sync"]
        if self.family == "floor":
            return [sys.executable, self.executable, *config.read_text().split("\n")[:-1]]
        return [self.executable, "--config", str(config), "mirror"]

    def _floor_args(self, target: Path, upstream_url: str) -> list[str]:
        # --layout: the floor for a sync that publishes the same tree (nested dirs, temp + rename, 3 pages).
        options = ["--client", "aiohttp", "--concurrency", str(self.workers), "--layout"]
        return ["--base", upstream_url, "--out", str(target), *options]


def mirror_tool(workers: int) -> Tool:
    return Tool("mirror", workers, sys.executable)


def floor_tool(script: Path) -> Tool:
    return Tool("floor", FLOOR_CONCURRENCY, str(script))


def bandersnatch_tool(script: Path) -> Tool:
    return Tool("bandersnatch", BANDERSNATCH_MAX_WORKERS, str(script))


def _mirror_config(target: Path, upstream_url: str, workers: int) -> str:
    return (
        "[mirror]\n"
        f'directory = "{target}"\n'
        f'upstream = "{upstream_url}/simple/"\n'
        f"workers = {workers}\n"
    )  # fmt: skip


def _bandersnatch_config(target: Path, upstream_url: str, workers: int, timeout: float) -> str:
    # Every key of bandersnatch's example.conf, set so that it mirrors everything the simple
    # pages offer (files + PEP 658 core metadata), like mirror does, and nothing else.
    return f"""\
[mirror]
directory = {target}
master = {upstream_url}
allow-non-https = true
workers = {workers}
timeout = 30
global-timeout = {int(timeout)}
stop-on-error = false
hash-index = false
simple-format = ALL
json = false
release-files = true
core-metadata = true
cleanup = false
cleanup_todo = false
delete_missing_packages = false
storage-backend = filesystem
storage-filesystem-manage-permissions = true
verifiers = 3
compare-method = hash
"""
