"""Typed, immutable models of the simple repository API (PEP 503, 691, 700, 714, 792).

The same models describe what the upstream offers (absolute URLs) and what the mirror
publishes (relative URLs): parsing produces them, rendering consumes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from packaging.utils import NormalizedName

Hashes = Mapping[str, str]
"""Hash algorithm name (lower case, e.g. ``sha256``) to lower-case hex digest."""

# The highest PEP 691 api-version whose fields we carry through correctly (1.4 = PEP 792).
API_VERSION = "1.4"


@dataclass(frozen=True, slots=True)
class Provenance:
    """PEP 740: where a file's provenance object is, and its hashes when the upstream gave any."""

    url: str
    """Absolute upstream URL when parsed; relative link (no fragment) when published."""
    hashes: Hashes


@dataclass(frozen=True, slots=True)
class DistFile:
    """One distribution file on a project page."""

    filename: str
    url: str
    """Absolute upstream URL when parsed; relative link (no fragment) when published."""
    hashes: Hashes
    requires_python: str | None = None
    size: int | None = None
    upload_time: str | None = None
    """ISO 8601 UTC as PEP 700 writes it (``2024-01-02T03:04:05.123456Z``), or unknown."""
    yanked: bool | str = False
    """False; True (yanked, no reason); or the non-empty reason."""
    core_metadata: bool | Hashes = False
    """PEP 658/714: False; True (available, hashes unknown); or the hashes of the ``.metadata`` file."""
    provenance: Provenance | None = None
    """PEP 740: the file's provenance object, when the upstream offers one."""

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    @property
    def metadata_hashes(self) -> Hashes | None:
        """Hashes of the ``.metadata`` file when it is offered, else None (offered without hashes: {})."""
        if self.core_metadata is False:
            return None
        if self.core_metadata is True:
            return {}
        return self.core_metadata


@dataclass(frozen=True, slots=True)
class ProjectStatus:
    """PEP 792 project status marker."""

    status: str
    """``active``, ``archived``, ``quarantined`` or ``deprecated`` (others are carried through)."""
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """A project's simple page: ``/simple/<name>/``."""

    name: NormalizedName
    files: tuple[DistFile, ...]
    versions: tuple[str, ...] | None = None
    """PEP 700 version list; None when the upstream did not send one (HTML, api 1.0)."""
    last_serial: int | None = None
    status: ProjectStatus | None = None
    dropped: tuple[str, ...] = field(default=(), compare=False)
    """Optional fields the parser could not use and left out, one ``what: why`` line each (for --verbose)."""


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One project on the root index, with its serial when the index provides one."""

    name: NormalizedName
    serial: int | None = None


@dataclass(frozen=True, slots=True)
class IndexMeta:
    """What the root index says about itself."""

    api_version: str = "1.0"
    last_serial: int | None = None
