"""The two syncers under test: their configs and command lines."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Family = Literal["mirror", "bandersnatch"]

#: bandersnatch refuses more than 10 download workers.
BANDERSNATCH_MAX_WORKERS = 10


@dataclass(frozen=True)
class Tool:
    """One syncer at one worker count, e.g. ``mirror w=10``."""

    family: Family
    workers: int
    executable: str
    """``sys.executable`` for mirror (run as ``-m mirror``); the ``bandersnatch`` script otherwise."""

    @property
    def label(self) -> str:
        return f"{self.family} w={self.workers}"

    @property
    def slug(self) -> str:
        return f"{self.family}-w{self.workers}"

    def write_config(self, target: Path, upstream_url: str, timeout: float) -> Path:
        """Write this tool's config for a mirror in ``target`` (beside it, not inside it)."""
        if self.family == "mirror":
            path, text = target.with_suffix(".toml"), _mirror_config(target, upstream_url, self.workers)
        else:
            path, text = target.with_suffix(".conf"), _bandersnatch_config(target, upstream_url, self.workers, timeout)
        path.write_text(text)
        return path

    def argv(self, config: Path) -> list[str]:
        if self.family == "mirror":
            return [self.executable, "-m", "mirror", "--config", str(config), "sync"]
        return [self.executable, "--config", str(config), "mirror"]


def mirror_tool(workers: int) -> Tool:
    return Tool("mirror", workers, sys.executable)


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
