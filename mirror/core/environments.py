"""Target environments: which wheels can install on them and how their markers evaluate. Pure.

A target is a CPython version and one wheel platform tag, as ``pip download --python-version
--platform`` takes them. Platform tags expand the way installers expand them: a glibc 2.28
machine also runs ``manylinux_2_17``/``manylinux2014`` wheels, macOS 14 runs wheels built for 11.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

_PYTHON = re.compile(r"^3\.(\d+)(?:\.(\d+))?$")
_MANYLINUX = re.compile(r"^manylinux_2_(\d+)_(\w+)$")
_LEGACY_MANYLINUX = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}
_MUSLLINUX = re.compile(r"^musllinux_1_(\d+)_(\w+)$")
_MACOS = re.compile(r"^macosx_(\d+)_(\d+)_(\w+)$")
_WINDOWS_MACHINE = {"win_amd64": "AMD64", "win32": "x86", "win_arm64": "ARM64"}


@dataclass(frozen=True, slots=True)
class TargetEnvironment:
    python: str
    """``3.11`` or ``3.11.4``."""
    platform: str
    """One wheel platform tag, e.g. ``manylinux_2_28_x86_64``, ``macosx_11_0_arm64``, ``win_amd64``."""
    _tags: frozenset[Tag] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def parse(cls, python: str, platform: str) -> TargetEnvironment:
        """Raises ValueError with a message fit for a person."""
        if not _PYTHON.match(python):
            raise ValueError(f"python must look like '3.12' or '3.12.1', not {python!r}")
        platforms = expand_platform(platform)
        minor = int(python.split(".")[1])
        version = (3, minor)
        tags = [*cpython_tags(version, abis=[f"cp3{minor}"], platforms=platforms)]
        tags += compatible_tags(version, f"cp3{minor}", platforms)
        return cls(python, platform, frozenset(tags))

    @property
    def full_version(self) -> str:
        return self.python if self.python.count(".") == 2 else f"{self.python}.0"

    def supports_wheel(self, filename: str) -> bool:
        try:
            tags = parse_wheel_filename(filename)[3]
        except InvalidWheelFilename:
            return False
        return not tags.isdisjoint(self._tags)

    def allows_python(self, requires_python: str | None) -> bool:
        """``Requires-Python`` admits this interpreter (an unreadable one does not exclude it)."""
        if not requires_python:
            return True
        try:
            return SpecifierSet(requires_python).contains(self.full_version, prereleases=True)
        except InvalidSpecifier:
            return True

    def markers(self) -> dict[str, str]:
        """The PEP 508 marker environment of this target (``extra`` is added per evaluation)."""
        system, machine = _system_and_machine(self.platform)
        sys_platform = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(system, system.lower())
        return {
            "implementation_name": "cpython",
            "implementation_version": self.full_version,
            "os_name": "nt" if system == "Windows" else "posix",
            "platform_machine": machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": system,
            "platform_version": "",
            "python_full_version": self.full_version,
            "python_version": ".".join(self.python.split(".")[:2]),
            "sys_platform": sys_platform,
        }


def expand_platform(platform: str) -> list[str]:
    """The platform tags a machine with ``platform`` installs, most specific first."""
    for legacy, glibc in _LEGACY_MANYLINUX.items():
        if platform.startswith(legacy + "_"):
            platform = f"manylinux_2_{glibc}_{platform.removeprefix(legacy + '_')}"
    if match := _MANYLINUX.match(platform):
        glibc, arch = int(match[1]), match[2]
        found = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc, 4, -1)]
        found += [f"{name}_{arch}" for name, minor in _LEGACY_MANYLINUX.items() if glibc >= minor]
        return found
    if match := _MUSLLINUX.match(platform):
        return [f"musllinux_1_{minor}_{match[2]}" for minor in range(int(match[1]), -1, -1)]
    if match := _MACOS.match(platform):
        return list(mac_platforms((int(match[1]), int(match[2])), match[3]))
    if platform in _WINDOWS_MACHINE or platform.startswith("linux_"):
        return [platform]
    raise ValueError(
        f"platform {platform!r} is not a wheel platform tag "
        "(e.g. manylinux_2_28_x86_64, musllinux_1_2_aarch64, macosx_11_0_arm64, win_amd64)"
    )


def _system_and_machine(platform: str) -> tuple[str, str]:
    if platform in _WINDOWS_MACHINE:
        return "Windows", _WINDOWS_MACHINE[platform]
    if match := _MACOS.match(platform):
        return "Darwin", "arm64" if match[3] in {"arm64", "universal2"} else match[3]
    arch = re.sub(r"^(many|musl)?linux(_\d+)*_", "", platform)
    for legacy in _LEGACY_MANYLINUX:
        arch = arch.removeprefix(legacy + "_")
    return "Linux", arch


def default_targets() -> tuple[TargetEnvironment, ...]:
    """Used to evaluate markers when no filter names targets: today's common CPython installs."""
    platforms = ("manylinux_2_28_x86_64", "manylinux_2_28_aarch64", "macosx_14_0_arm64", "win_amd64")
    return tuple(TargetEnvironment.parse(f"3.{minor}", p) for minor in range(10, 15) for p in platforms)


def parse_targets(tables: Iterable[Mapping[str, object]]) -> tuple[TargetEnvironment, ...]:
    targets = []
    for table in tables:
        unknown = set(table) - {"python", "platform"}
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r} in a target (use python and platform)")
        python, platform = table.get("python"), table.get("platform")
        if not isinstance(python, str) or not isinstance(platform, str):
            raise ValueError("each target needs python (e.g. '3.12') and platform (e.g. 'manylinux_2_28_x86_64')")
        targets.append(TargetEnvironment.parse(python, platform))
    return tuple(targets)
