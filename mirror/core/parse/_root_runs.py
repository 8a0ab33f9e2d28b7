"""Runs of plain root index entries, read by regular expressions instead of one object at a time.

A root index lists about a million projects, nearly all written the same way: a JSON object with
a name and a serial, or an anchor whose href ends in ``/`` and whose text is the name. The root
parsers find the longest run of such entries at their position with one match, then read its
names (and serials) with one ``findall`` each: C loops, no Python objects per entry beyond the
strings themselves. Anything else (escapes, other keys, odd whitespace, invalid names, another
markup) ends the run, and the strict parser reads it exactly as before; so the patterns only
need to be a safe subset of what the strict path accepts, with the same result on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, cast

from packaging.utils import NormalizedName, canonicalize_name


@dataclass(slots=True)
class IndexBatch:
    """Projects of the root index as two parallel lists: normalized names, and serials (None when the
    index gives none). Two lists, not a tuple or an entry per project: a million small objects cost
    more to allocate, and to the garbage collector, than parsing them does."""

    names: list[NormalizedName] = field(default_factory=list)
    serials: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def add(self, name: NormalizedName, serial: int | None) -> None:
        self.names.append(name)
        self.serials.append(serial)


# The quantifiers are possessive (``*+``, ``{m,n}+``): what they stop at (a quote, a colon, a comma)
# can never be what they consume, so giving characters back could not help; not tracking it is a
# third faster.
# A valid project name (packaging's rule: ASCII letters and digits, inner ``.``, ``_``, ``-``), at
# most MAX_NAME (255) characters, so that its normalized form is within the bound too. Every use is
# followed by a character outside the class, so the last character is checked by a lookbehind.
_NAME: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}+(?<=[A-Za-z0-9])"

# -- JSON: {"name": "x", "_last-serial": 1} in either key order, or {"name": "x"} -----------------------
# Whitespace inside an object is bounded so that an entry the fast path takes can never reach the
# 1 MiB element bound (a longer one goes to the strict path, which reports it).
_W: Final = r"[ \t\n\r]{0,64}+"
# A JSON integer in 0..10**18-1, or a decimal string of at most 18 digits (as parse_serial reads them).
_SERIAL: Final = r'(?:0|[1-9][0-9]{0,17}+|"[0-9]{1,18}+")'
_NAME_KEY: Final = rf'"name"{_W}:{_W}"{_NAME}"'
_SERIAL_KEY: Final = rf'"_last-serial"{_W}:{_W}{_SERIAL}'
_WITH_SERIAL: Final = rf"\{{{_W}(?:{_NAME_KEY}{_W},{_W}{_SERIAL_KEY}|{_SERIAL_KEY}{_W},{_W}{_NAME_KEY}){_W}\}}"
_NAME_ONLY: Final = rf"\{{{_W}{_NAME_KEY}{_W}\}}"
_JSON_SEP: Final = r"[ \t\n\r]*+,[ \t\n\r]*+"
JSON_SERIAL_RUN_RE: Final = re.compile(rf"{_WITH_SERIAL}(?:{_JSON_SEP}{_WITH_SERIAL})*")
JSON_NAME_RUN_RE: Final = re.compile(rf"{_NAME_ONLY}(?:{_JSON_SEP}{_NAME_ONLY})*")
# Inside a run, each of these occurs exactly once per entry (a name cannot contain '"' or ':').
JSON_NAMES_RE: Final = re.compile(rf'"name"{_W}:{_W}"({_NAME})"')
JSON_SERIALS_RE: Final = re.compile(rf'"_last-serial"{_W}:{_W}"?+([0-9]++)')

# -- HTML: <a href="…/">name</a>, separated by whitespace or <br> -------------------------------------------
# The href must end in '/' (its last path segment is then empty: never a distribution file) and hold
# no query, fragment, character reference or non-ASCII character that could change how it splits.
_HREF: Final = r"[A-Za-z0-9._~/-]{1,1025}+(?<=/)"
_ANCHOR: Final = rf'<a href="{_HREF}">{_W}({_NAME}){_W}</a>'
HTML_ANCHOR_START: Final = '<a href="'
HTML_RUN_RE: Final = re.compile(rf"(?:{_ANCHOR}(?:[ \t\n\r]|<br ?/?>)*+)+")
HTML_NAMES_RE: Final = re.compile(_ANCHOR)


def normalize_names(names: list[str]) -> list[NormalizedName]:
    """Normalize valid project names (each matched ``_NAME``) in one pass over them all.

    canonicalize_name lower-cases and turns runs of ``-_.`` into one ``-``: applied to the names
    joined by newlines it normalizes each one (a valid name starts and ends with a letter or digit,
    so no run crosses a newline), without a Python call per name.
    """
    joined = "\n".join(names)
    # What canonicalize_name would change (upper case, '.', '_', '--'), found by C scans of the text.
    if joined.islower() and "." not in joined and "_" not in joined and "--" not in joined:
        return cast("list[NormalizedName]", names)  # already normalized: the common case
    return cast("list[NormalizedName]", canonicalize_name(joined).split("\n"))
