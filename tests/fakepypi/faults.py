"""Deterministic, thread-safe fault injection for the fake index.

Patterns are matched against the decoded request path (no query string):

* a ``str`` is a shell-style :func:`fnmatch.fnmatchcase` pattern, where ``*``
  also matches ``/``; e.g. ``"*.whl"``, ``"/simple/foo/"``, ``"/packages/*"``;
* a compiled :class:`re.Pattern` is applied with ``search``.

Counted faults ("the next N matching requests") are consumed in the order
they were registered.  At most one ``slow``, one ``fail`` (or ``replace``) and one body fault
(``reset``/``truncate``/``corrupt``/``oversize``) apply to a request; body
faults are only consumed by responses that have a body (status 200).

A ``replace`` fault answers a matching request with a body of the test's choosing (by default a
200 "Maintenance" HTML page, as a misconfigured proxy or CDN serves in place of the real one).

Random faults (:meth:`Faults.rates`) only hit file downloads and use their
own seeded :class:`random.Random`, so a given request order always yields the
same faults.
"""

from __future__ import annotations

import fnmatch
import random
import re
import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from packaging.utils import canonicalize_name

__all__ = ["MAINTENANCE_PAGE", "BodyFault", "Faults", "Pattern", "Plan"]

Pattern = str | re.Pattern[str]
BodyFault = Literal["reset", "truncate", "corrupt", "oversize"]
_Kind = Literal["fail", "slow", "reset", "truncate", "corrupt", "oversize", "replace"]
MAINTENANCE_PAGE = (
    b"<!DOCTYPE html><html><head><title>Maintenance</title></head>"
    b"<body><h1>Down for maintenance</h1><p>Back soon.</p></body></html>\n"
)
_BODY_KINDS: dict[str, BodyFault] = {
    "reset": "reset",
    "truncate": "truncate",
    "corrupt": "corrupt",
    "oversize": "oversize",
}
_5XX = (500, 502, 503, 504)


@dataclass
class _Rule:
    """A counted fault: applies to the next ``remaining`` matching requests."""

    kind: _Kind
    pattern: Pattern
    remaining: int
    status: int = 503
    retry_after: int | None = None
    delay: float = 0.0
    body: bytes = b""
    content_type: str = ""

    def matches(self, path: str) -> bool:
        if isinstance(self.pattern, re.Pattern):
            return self.pattern.search(path) is not None
        return fnmatch.fnmatchcase(path, self.pattern)


@dataclass(frozen=True)
class _Rates:
    error_5xx: float
    reset: float
    corrupt: float
    truncate: float
    slow: float
    slow_delay: float


@dataclass(frozen=True)
class Plan:
    """Faults decided for one request before it is handled."""

    delay: float = 0.0
    fail_status: int | None = None
    retry_after: int | None = None
    body: BodyFault | None = None
    replacement: tuple[int, bytes, str] | None = None
    """(status, body, Content-Type) to answer with instead of the real reply."""

    @property
    def label(self) -> str | None:
        """Short description for the request log."""
        parts = [f"slow:{self.delay:g}"] if self.delay else []
        if self.fail_status is not None:
            parts.append(f"fail:{self.fail_status}")
        if self.replacement is not None:
            parts.append(f"replace:{self.replacement[0]}")
        return ",".join(parts) or None


class Faults:
    """Registry of faults to inject; safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._stale: dict[str, int] = {}
        self._rates: _Rates | None = None
        self._rng = random.Random(0)

    # -- registration ------------------------------------------------------

    def fail(
        self,
        pattern: Pattern,
        status: int = 503,
        count: int = 1,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status``."""
        self._add(_Rule("fail", pattern, count, status=status, retry_after=retry_after))

    def reset(self, pattern: Pattern, count: int = 1) -> None:
        """Send headers and half the body, then reset the TCP connection."""
        self._add(_Rule("reset", pattern, count))

    def truncate(self, pattern: Pattern, count: int = 1) -> None:
        """Declare the full Content-Length, send half the body, close cleanly."""
        self._add(_Rule("truncate", pattern, count))

    def corrupt(self, pattern: Pattern, count: int = 1) -> None:
        """Send a same-size body with some bytes flipped."""
        self._add(_Rule("corrupt", pattern, count))

    def oversize(self, pattern: Pattern, count: int = 1) -> None:
        """Send the body plus extra bytes (with a matching Content-Length)."""
        self._add(_Rule("oversize", pattern, count))

    def replace(
        self,
        pattern: Pattern,
        body: bytes = MAINTENANCE_PAGE,
        content_type: str = "text/html; charset=utf-8",
        status: int = 200,
        count: int = 1,
    ) -> None:
        """Answer the next ``count`` matching requests with ``body`` (default: a 200 maintenance page)."""
        self._add(_Rule("replace", pattern, count, status=status, body=body, content_type=content_type))

    def slow(self, pattern: Pattern, delay: float, count: int = 1) -> None:
        """Wait ``delay`` seconds before answering matching requests."""
        self._add(_Rule("slow", pattern, count, delay=delay))

    def stale(self, name: str, count: int = 1) -> None:
        """Serve the project's previous page for its next ``count`` requests.

        Counts requests to ``/simple/<name>/`` and ``/pypi/<name>/json``.
        """
        key = canonicalize_name(name)
        with self._lock:
            self._stale[key] = self._stale.get(key, 0) + count

    def rates(
        self,
        error_5xx: float = 0.0,
        reset: float = 0.0,
        corrupt: float = 0.0,
        truncate: float = 0.0,
        slow: float = 0.0,
        seed: int = 0,
        slow_delay: float = 0.2,
    ) -> None:
        """Inject random faults into file downloads at the given rates.

        ``error_5xx``, ``reset``, ``corrupt`` and ``truncate`` are exclusive
        (their sum must be <= 1); ``slow`` is drawn independently.
        """
        if error_5xx + reset + corrupt + truncate > 1.0:
            raise ValueError("exclusive fault rates must sum to at most 1")
        with self._lock:
            self._rates = _Rates(error_5xx, reset, corrupt, truncate, slow, slow_delay)
            self._rng = random.Random(seed)

    def clear(self) -> None:
        """Drop every registered fault, stale counter and rate."""
        with self._lock:
            self._rules.clear()
            self._stale.clear()
            self._rates = None

    def pending(self) -> int:
        """How many counted faults (incl. stale) are still unconsumed."""
        with self._lock:
            return sum(r.remaining for r in self._rules) + sum(self._stale.values())

    # -- consumption (called by the server) --------------------------------

    def plan(self, path: str, *, is_download: bool) -> Plan:
        """Consume the pre-handling faults (slow, fail, random) for a request."""
        with self._lock:
            slow = self._take(path, ("slow",))
            fail = self._take(path, ("fail",))
            swap = None if fail else self._take(path, ("replace",))
            plan = Plan(
                delay=slow.delay if slow else 0.0,
                fail_status=fail.status if fail else None,
                retry_after=fail.retry_after if fail else None,
                replacement=(swap.status, swap.body, swap.content_type) if swap else None,
            )
            if is_download and fail is None and swap is None and self._rates is not None:
                plan = self._random_plan(plan, self._rates)
            return plan

    def take_body_fault(self, path: str) -> BodyFault | None:
        """Consume the first counted body fault matching ``path``."""
        with self._lock:
            rule = self._take(path, _BODY_KINDS.keys())
            return _BODY_KINDS[rule.kind] if rule else None

    def take_stale(self, name: str) -> bool:
        """Consume one stale serving for a project, if any is pending."""
        key = canonicalize_name(name)
        with self._lock:
            left = self._stale.get(key, 0)
            if left <= 0:
                return False
            self._stale[key] = left - 1
            return True

    # -- internals ---------------------------------------------------------

    def _add(self, rule: _Rule) -> None:
        if rule.remaining < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._rules.append(rule)

    def _take(self, path: str, kinds: Collection[str]) -> _Rule | None:
        """Decrement and return the first live rule of ``kinds`` matching."""
        for rule in self._rules:
            if rule.kind in kinds and rule.remaining > 0 and rule.matches(path):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self._rules.remove(rule)
                return rule
        return None

    def _random_plan(self, plan: Plan, rates: _Rates) -> Plan:
        """Add random faults to ``plan`` (lock held)."""
        delay = plan.delay
        if self._rng.random() < rates.slow:
            delay = max(delay, rates.slow_delay)
        roll = self._rng.random()
        status = self._rng.choice(_5XX)  # drawn every time: keeps the stream aligned
        if roll < rates.error_5xx:
            return Plan(delay=delay, fail_status=status)
        roll -= rates.error_5xx
        exclusive: tuple[tuple[BodyFault, float], ...] = (
            ("reset", rates.reset),
            ("corrupt", rates.corrupt),
            ("truncate", rates.truncate),
        )
        for kind, rate in exclusive:
            if roll < rate:
                return Plan(delay=delay, body=kind)
            roll -= rate
        return Plan(delay=delay)
