"""Release filters: ``prerelease``, ``latest`` (N releases per project) and ``cooldown`` (quarantine)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


def prerelease(options: Mapping[str, Any], context: PluginContext) -> Prereleases:
    opts = Options(options)
    keep = opts.boolean("keep", False)
    keep_for = opts.strings("keep-projects")
    drop_for = opts.strings("drop-projects")
    opts.done()
    exceptions = drop_for if keep else keep_for
    return Prereleases(context.name, keep, frozenset(canonicalize_name(n) for n in exceptions))


@dataclass(frozen=True, slots=True)
class Latest:
    """The newest ``count`` releases of each project, by version or by upload time.

    By upload time needs an upload time on every release; a project where one lacks it (upstreams
    without PEP 700: pypiserver, devpi, HTML-only indexes) is ranked by version instead, with one
    warning per run. Ranking it by time would keep its oldest releases.
    """

    plugin: str
    count: int
    by: str
    exempt: frozenset[NormalizedName]
    warn: Callable[[str], None] = lambda _message: None

    def filter_releases(self, project: NormalizedName, releases: Sequence[Release]) -> Mapping[str, Decision]:
        if project in self.exempt or len(releases) <= self.count:
            return {}
        by = self.by
        if by == "upload-time" and any(r.upload_time is None for r in releases if r.parsed is not None):
            by = "version"
            self.warn(
                f'[filters.{self.plugin}] by = "upload-time": the upstream gives no upload time for some '
                "releases; those projects keep their latest releases by version instead"
            )
        ranked = sorted(releases, key=_by_time if by == "upload-time" else _by_version, reverse=True)
        why = f"not among the latest {self.count} releases by {by}"
        return {r.version: Decision(False, self.plugin, why) for r in ranked[self.count :]}


def _by_version(release: Release) -> tuple[bool, Any]:
    # Releases with no parseable version rank below every known one.
    parsed = release.parsed
    return parsed is not None, parsed if parsed is not None else release.version


def _by_time(release: Release) -> tuple[bool, str]:
    return release.upload_time is not None, release.upload_time or ""


def latest(options: Mapping[str, Any], context: PluginContext) -> Latest:
    opts = Options(options)
    count = opts.integer("count", 3, minimum=1)
    by = opts.choice("by", "version", ("version", "upload-time"))
    exempt = opts.strings("exempt-projects")
    opts.done()
    return Latest(context.name, count, by, frozenset(canonicalize_name(n) for n in exempt), context.warn)


@dataclass(frozen=True, slots=True)
class Cooldown:
    """A release is held back until its newest file is ``days`` old: time for a malicious upload to be caught.

    A file without an upload time (upstreams without PEP 700) cannot be timed: by default
    (``without-upload-time = "keep"``) its release is kept, as if old enough; ``"hold"`` holds it back
    until the upstream gives a time. Either way the run warns once.
    """

    plugin: str
    days: float
    cutoff: str
    """ISO 8601 UTC; files uploaded after it are too young (ISO text in UTC compares as time)."""
    hold_untimed: bool = False
    warn: Callable[[str], None] = lambda _message: None

    def filter_releases(self, project: NormalizedName, releases: Sequence[Release]) -> Mapping[str, Decision]:
        dropped = {}
        for release in releases:
            if any(not f.upload_time for f in release.files):
                if self.hold_untimed:
                    why = "no upload time, so its age is unknown (cooldown holds such releases)"
                    dropped[release.version] = Decision(False, self.plugin, why)
                    self._warn_untimed("held back")
                    continue
                self._warn_untimed("kept")
            newest = max((f.upload_time for f in release.files if f.upload_time), default=None)
            if newest is not None and _utc(newest) > self.cutoff:
                why = f"uploaded {newest}, less than {self.days:g} days ago (cooldown)"
                dropped[release.version] = Decision(False, self.plugin, why, until=self._expiry(newest))
        return dropped

    def _warn_untimed(self, what: str) -> None:
        self.warn(
            f"[filters.{self.plugin}] the upstream gives no upload time for some files; their releases are "
            f'{what} (without-upload-time = "{"hold" if self.hold_untimed else "keep"}")'
        )

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


def cooldown(options: Mapping[str, Any], context: PluginContext) -> Cooldown:
    opts = Options(options)
    days = opts.number("days", 7.0)
    untimed = opts.choice("without-upload-time", "keep", ("keep", "hold"))
    opts.done()
    cutoff = (context.now - timedelta(days=days)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return Cooldown(context.name, days, cutoff, untimed == "hold", context.warn)
