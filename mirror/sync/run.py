"""What a sync run is asked to do (:class:`Options`) and what it did (:class:`RunReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunReport:
    started: float
    finished: float = 0.0
    serial: int | None = None
    planned: int = 0
    synced: int = 0
    unchanged: int = 0
    deleted: int = 0
    files_added: int = 0
    files_deleted: int = 0
    bytes_added: int = 0
    requests: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)
    # For --dry-run: what a real run would download and delete.
    would_download: int = 0
    would_download_bytes: int = 0
    would_delete: int = 0
    would_delete_bytes: int = 0
    # Projects of the dependency closure whose kept releases offer no metadata to read dependencies from.
    unresolved: list[str] = field(default_factory=list)

    @property
    def result(self) -> str:
        return "partial" if self.failed or self.deferred else "ok"


@dataclass(frozen=True, slots=True)
class Options:
    projects: tuple[str, ...] = ()
    """Restrict the run to these projects (names as typed; normalized here)."""
    dry_run: bool = False
    force_check: bool = False
