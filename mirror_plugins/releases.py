"""Release filters: ``prerelease``, ``latest`` (N releases per project) and ``cooldown`` (quarantine)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

from mirror.filter_api import Decision, Options, PluginContext, Release


@dataclass(frozen=True, slots=True)
class Prereleases:
    plugin: str
    keep: bool
    exceptions: frozenset[NormalizedName]
    """Projects that do the opposite of ``keep``."""

    def filter_releases(self, project: NormalizedName, releases: Sequence[Release]) -> Mapping[str, Decision]:
        if self.keep != (project in self.exceptions):
            return {}
        return {
            r.version: Decision(False, self.plugin, f"{r.version} is a pre-release")
            for r in releases
            if (parsed := r.parsed) is not None and parsed.is_prerelease
        }


def prerelease(options: Mapping[str, object], context: PluginContext) -> Prereleases:
    opts = Options(options)
    keep = opts.boolean("keep", False)
    keep_for = opts.strings("keep-projects")
    drop_for = opts.strings("drop-projects")
    opts.done()
    exceptions = drop_for if keep else keep_for
    return Prereleases(context.name, keep, frozenset(canonicalize_name(n) for n in exceptions))


@dataclass(frozen=True, slots=True)
class Latest:
    plugin: str
    count: int
    by: str
    exempt: frozenset[NormalizedName]

    def filter_releases(self, project: NormalizedName, releases: Sequence[Release]) -> Mapping[str, Decision]:
        if project in self.exempt or len(releases) <= self.count:
            return {}
        ranked = sorted(releases, key=self._rank, reverse=True)
        why = f"not among the latest {self.count} releases by {self.by}"
        return {r.version: Decision(False, self.plugin, why) for r in ranked[self.count :]}

    def _rank(self, release: Release) -> tuple[bool, Any]:
        # Releases with no version or no upload time rank below every known one.
        if self.by == "upload-time":
            return release.upload_time is not None, release.upload_time or ""
        parsed = release.parsed
        return parsed is not None, parsed if parsed is not None else release.version


def latest(options: Mapping[str, object], context: PluginContext) -> Latest:
    opts = Options(options)
    count = opts.integer("count", 3, minimum=1)
    by = opts.choice("by", "version", ("version", "upload-time"))
    exempt = opts.strings("exempt-projects")
    opts.done()
    return Latest(context.name, count, by, frozenset(canonicalize_name(n) for n in exempt))


@dataclass(frozen=True, slots=True)
class Cooldown:
    """A release is held back until its newest file is ``days`` old: time for a malicious upload to be caught."""

    plugin: str
    days: float
    cutoff: str
    """ISO 8601 UTC; files uploaded after it are too young (ISO text in UTC compares as time)."""

    def filter_releases(self, project: NormalizedName, releases: Sequence[Release]) -> Mapping[str, Decision]:
        dropped = {}
        for release in releases:
            newest = max((f.upload_time for f in release.files if f.upload_time), default=None)
            if newest is not None and _utc(newest) > self.cutoff:
                why = f"uploaded {newest}, less than {self.days:g} days ago (cooldown)"
                dropped[release.version] = Decision(False, self.plugin, why, until=self._expiry(newest))
        return dropped

    def _expiry(self, uploaded: str) -> str:
        when = datetime.fromisoformat(_utc(uploaded).replace("Z", "+00:00")) + timedelta(days=self.days)
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc(stamp: str) -> str:
    """The same instant as text comparable with the cutoff (upstreams differ in precision and zone)."""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cooldown(options: Mapping[str, object], context: PluginContext) -> Cooldown:
    opts = Options(options)
    days = opts.number("days", 7.0)
    opts.done()
    cutoff = (context.now - timedelta(days=days)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return Cooldown(context.name, days, cutoff)
