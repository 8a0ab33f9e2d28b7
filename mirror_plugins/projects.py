"""``allowlist`` and ``blocklist``: which projects, and which of their versions, the mirror holds."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name

from mirror.filter_api import Decision, OptionError, Options, PluginContext, Release, Want

from .requirements import read_requirements


@dataclass(frozen=True, slots=True)
class Allowlist:
    """Only the listed projects, only the versions their specifiers allow."""

    plugin: str
    wants: Mapping[NormalizedName, Want]
    why: str = "not in the allowlist"

    def filter_project(self, name: NormalizedName) -> Decision | None:
        return None if name in self.wants else Decision(False, self.plugin, self.why)

    def projects(self) -> Collection[NormalizedName]:
        return self.wants.keys()

    def fingerprint(self) -> str:
        return _fingerprint(self.plugin, self.wants)

    def filter_releases(self, project: NormalizedName, releases: Sequence[Release]) -> Mapping[str, Decision]:
        want = self.wants.get(project)
        if want is None or "" in want.specifiers:
            return {}
        return {
            r.version: Decision(False, self.plugin, f"version {r.version or '(unknown)'} is outside {want.describe()}")
            for r in releases
            if not want.allows(r.version)
        }


@dataclass(frozen=True, slots=True)
class ResolvingAllowlist(Allowlist):
    """The allowlist grown by the engine to its dependency closure (``dependencies = true``)."""

    root_wants: Mapping[NormalizedName, Want] = field(default_factory=dict)

    def roots(self) -> Mapping[NormalizedName, Want]:
        return self.root_wants

    def fingerprint(self) -> str:
        # The closure changes within a run; the roots are what the config (and its files) asked for.
        return _fingerprint(self.plugin, self.root_wants)

    def with_closure(self, closure: Mapping[NormalizedName, Want]) -> ResolvingAllowlist:
        return replace(self, wants=closure)


def _fingerprint(plugin: str, wants: Mapping[NormalizedName, Want]) -> str:
    return f"{plugin}: " + json.dumps(sorted((name, want.key()) for name, want in wants.items()))


def allowlist(options: Mapping[str, object], context: PluginContext) -> Allowlist:
    opts = Options(options)
    requirements = read_requirements(opts, context.config_dir, context.warn)
    follow = opts.boolean("dependencies", False)
    opts.done()
    if not requirements:
        raise OptionError("projects", "and requirements name no project: the mirror would hold nothing")
    wants: dict[NormalizedName, Want] = {}
    for requirement in requirements:
        name, need = canonicalize_name(requirement.name), Want.of(requirement)
        wants[name] = wants[name].merge(need) if name in wants else need
    if follow:
        why = "neither in the allowlist nor in its dependency closure"
        return ResolvingAllowlist(context.name, wants, why, root_wants=wants)
    return Allowlist(context.name, wants)


@dataclass(frozen=True, slots=True)
class Blocklist:
    """Never these projects; with a specifier, never those versions of them."""

    plugin: str
    whole: frozenset[NormalizedName]
    versions: Mapping[NormalizedName, tuple[SpecifierSet, ...]]

    def filter_project(self, name: NormalizedName) -> Decision | None:
        return Decision(False, self.plugin, "in the blocklist") if name in self.whole else None

    def fingerprint(self) -> str:
        specs = sorted((name, sorted(map(str, specs))) for name, specs in self.versions.items())
        return f"{self.plugin}: " + json.dumps([sorted(self.whole), specs])

    def filter_releases(self, project: NormalizedName, releases: Sequence[Release]) -> Mapping[str, Decision]:
        specs = self.versions.get(project, ())
        dropped = {}
        for release in releases:
            parsed = release.parsed
            hit = next((s for s in specs if parsed is not None and s.contains(parsed, prereleases=True)), None)
            if hit is not None:
                dropped[release.version] = Decision(False, self.plugin, f"version {release.version} blocked by {hit}")
        return dropped


def blocklist(options: Mapping[str, object], context: PluginContext) -> Blocklist:
    opts = Options(options)
    requirements = read_requirements(opts, context.config_dir, context.warn)
    opts.done()
    whole: set[NormalizedName] = set()
    versions: dict[NormalizedName, tuple[SpecifierSet, ...]] = {}
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if requirement.specifier:
            versions[name] = (*versions.get(name, ()), requirement.specifier)
        else:
            whole.add(name)
    return Blocklist(context.name, frozenset(whole), versions)
