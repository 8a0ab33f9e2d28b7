"""Reading allowlist and blocklist entries: inline requirement strings and pip requirements files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from mirror.filter_api import OptionError, Options


def parse_inline(lines: tuple[str, ...], key: str) -> list[Requirement]:
    found = []
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise OptionError(key, f"has an entry that is not a requirement: {line!r} ({exc})") from None
        if requirement.url:
            raise OptionError(key, f"has a URL entry {line!r}: name projects, not files")
        found.append(requirement)
    return found


def parse_file(text: str, source: str, warn: Callable[[str], None]) -> list[Requirement]:
    """pip's format, reduced to what names projects: options, URLs and paths are skipped with a warning."""
    found = []
    for number, raw in _logical_lines(text):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}: {line!r}"
        if line.startswith("-") or "://" in line or line.startswith((".", "/")):
            warn(f"{where} skipped: options, URLs and paths name no project on the index")
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            warn(f"{where} skipped: not a requirement")
            continue
        if requirement.url:
            warn(f"{where} skipped: a direct URL reference names no project on the index")
            continue
        found.append(requirement)
    return found


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, each with the number of its first physical line."""
    lines: list[tuple[int, str]] = []
    pending, first = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        first = first or number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        lines.append((first, pending + raw))
        pending, first = "", 0
    if pending:
        lines.append((first, pending))
    return lines


def read_requirements(options: Options, config_dir: Path, warn: Callable[[str], None]) -> list[Requirement]:
    """The ``projects`` and ``requirements`` options of a plugin, as requirements."""
    found = parse_inline(options.strings("projects"), "projects")
    for name in options.strings("requirements"):
        path = config_dir / Path(name).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise OptionError("requirements", f"names {str(path)!r}, which cannot be read: {exc}") from None
        found += parse_file(text, str(path), warn)
    return found
