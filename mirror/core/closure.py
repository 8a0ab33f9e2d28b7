"""Dependency closure: which projects (and which of their versions) an allowlist needs. Pure.

The engine syncs the wanted projects, reads the ``.metadata`` of the releases it kept and calls
:func:`dependencies`; :func:`grow` merges what it found until nothing changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.parser import BytesHeaderParser

from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from mirror.core.environments import TargetEnvironment


@dataclass(frozen=True, slots=True)
class Want:
    """What is asked of one project: any of ``specifiers`` (``""`` is any version), with ``extras``."""

    specifiers: frozenset[str] = frozenset({""})
    extras: frozenset[str] = frozenset()
    targets: frozenset[int] | None = None
    """Which target environments (by position) need it; None: all of them (what an allowlist asks)."""

    @classmethod
    def of(cls, requirement: Requirement, targets: frozenset[int] | None = None) -> Want:
        extras = frozenset(canonicalize_name(e) for e in requirement.extras)
        return cls(frozenset({str(requirement.specifier)}), extras, targets)

    def merge(self, other: Want) -> Want:
        specifiers = frozenset({""}) if "" in self.specifiers | other.specifiers else self.specifiers | other.specifiers
        targets = None if self.targets is None or other.targets is None else self.targets | other.targets
        return Want(specifiers, self.extras | other.extras, targets)

    def allows(self, version: str) -> bool:
        if "" in self.specifiers:
            return True
        try:
            parsed = Version(version)
        except InvalidVersion:
            return False
        return any(_contains(spec, parsed) for spec in self.specifiers)

    def describe(self) -> str:
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        specs = " or ".join(sorted(s for s in self.specifiers if s)) or "any version"
        return f"{extras} {specs}".strip()

    def key(self) -> str:
        """A stable text form, to store and to compare with the last run's."""
        targets = None if self.targets is None else sorted(self.targets)
        return json.dumps([sorted(self.specifiers), sorted(self.extras), targets])

    @classmethod
    def from_key(cls, text: str) -> Want:
        specifiers, extras, *rest = json.loads(text)
        targets = frozenset(rest[0]) if rest and rest[0] is not None else None
        return cls(frozenset(specifiers), frozenset(extras), targets)


def _contains(specifier: str, version: Version) -> bool:
    try:
        return SpecifierSet(specifier).contains(version, prereleases=True)
    except InvalidSpecifier:
        return True


def requires_dist(metadata: bytes) -> list[Requirement]:
    """The ``Requires-Dist`` of a core metadata document; unparseable lines are skipped."""
    headers = BytesHeaderParser().parsebytes(metadata)
    found = []
    for line in headers.get_all("Requires-Dist") or ():
        try:
            found.append(Requirement(str(line)))
        except InvalidRequirement:
            continue
    return found


def applies(marker: Marker | None, targets: Sequence[TargetEnvironment], extras: Iterable[str]) -> bool:
    """A requirement's marker holds for at least one target, without or with one requested extra."""
    if marker is None:
        return True
    for target in targets:
        env = target.markers()
        for extra in ("", *extras):
            try:
                if marker.evaluate({**env, "extra": extra}):
                    return True
            except (UndefinedComparison, UndefinedEnvironmentName):
                return True  # a marker we cannot judge keeps the dependency: better one too many
    return False


def dependencies(
    documents: Iterable[bytes], want: Want, targets: Sequence[TargetEnvironment]
) -> dict[NormalizedName, Want]:
    """What the kept releases of one project (their metadata ``documents``) need, merged by name.

    Markers are evaluated for each target the project is needed on; a dependency is needed on
    those where its marker holds, so a Windows-only dependency's own dependencies are judged
    for Windows alone.
    """
    found: dict[NormalizedName, Want] = {}
    active = [(i, t) for i, t in enumerate(targets) if want.targets is None or i in want.targets]
    for document in documents:
        for requirement in requires_dist(document):
            where = frozenset(i for i, t in active if applies(requirement.marker, (t,), want.extras))
            if not where:
                continue
            name = canonicalize_name(requirement.name)
            need = Want.of(requirement, where)
            found[name] = found[name].merge(need) if name in found else need
    return found


def grow(
    wants: Mapping[NormalizedName, Want],
    found: Mapping[NormalizedName, Want],
    roots: Mapping[NormalizedName, Want],
) -> dict[NormalizedName, Want]:
    """Merge newly found needs; a root keeps the versions the allowlist named (only extras grow)."""
    grown = dict(wants)
    for name, need in found.items():
        if name not in grown:
            grown[name] = need
        elif name in roots:
            grown[name] = replace(grown[name], extras=grown[name].extras | need.extras)
        else:
            grown[name] = grown[name].merge(need)
    return grown


def root_wants(requirements: Iterable[Requirement]) -> dict[NormalizedName, Want]:
    """The allowlist as wants, merged by name (its markers are ignored: an allowlist line is a choice)."""
    wants: dict[NormalizedName, Want] = {}
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        need = Want.of(requirement)
        wants[name] = wants[name].merge(need) if name in wants else need
    return wants
