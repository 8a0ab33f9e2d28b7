"""Populate a :class:`FakePyPI` with synthetic projects or wheels from disk."""

from __future__ import annotations

from pathlib import Path

from packaging.utils import parse_sdist_filename, parse_wheel_filename

from .builder import BuiltFile, build_wheel, metadata_field
from .server import FakePyPI

__all__ = ["load_directory", "populate_synthetic", "synthetic_name"]


def synthetic_name(index: int) -> str:
    """Name of the ``index``-th synthetic project: ``proj-00000`` ..."""
    return f"proj-{index:05d}"


def populate_synthetic(
    up: FakePyPI,
    projects: int,
    files_per_project: int,
    *,
    payload_size: int = 0,
) -> int:
    """Add ``projects`` projects, each with ``files_per_project`` releases.

    Release ``k`` is version ``1.0.k`` with a single ``py3-none-any`` wheel,
    so the index is fully deterministic.  Returns the number of files added.
    """
    for i in range(projects):
        name = synthetic_name(i)
        for k in range(files_per_project):
            version = f"1.0.{k}"
            wheel = build_wheel(name, version, payload_size=payload_size)
            up.add_release(name, version, files=[wheel])
    return projects * files_per_project


def load_directory(up: FakePyPI, directory: Path) -> int:
    """Add every ``*.whl`` and ``*.tar.gz`` in ``directory`` (sorted by name).

    Each file is one mutation.  Returns the number of files added.
    """
    count = 0
    for path in sorted(directory.iterdir()):
        if path.name.endswith((".whl", ".tar.gz")):
            built = BuiltFile.from_path(path)
            name, version = _name_and_version(built)
            up.add_file(name, version, built)
            count += 1
    return count


def _name_and_version(built: BuiltFile) -> tuple[str, str]:
    """Project name (as in METADATA when available) and version of a file."""
    if built.is_wheel:
        name, version, _, _ = parse_wheel_filename(built.filename)
    else:
        name, version = parse_sdist_filename(built.filename)
    display = metadata_field(built.metadata, "Name") or str(name)
    return display, str(version)
