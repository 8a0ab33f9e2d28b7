"""Reading a plugin's own ``[filters.<name>]`` table with typed getters. Pure.

Every getter names the key it complains about; :meth:`Options.done` rejects keys nobody read,
so a typo in the config is an error, not a silently ignored setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class OptionError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key} {message}")
        self.key = key


class Options:
    def __init__(self, table: Mapping[str, object]) -> None:
        self._table, self._read = table, set[str]()

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any, what: str) -> Any:
        self._read.add(key)
        value = self._table.get(key, default)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, float))):
            raise OptionError(key, f"must be {what}, not {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        return bool(self._get(key, bool, default, "true or false"))

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        value = int(self._get(key, int, default, "an integer"))
        if value < minimum:
            raise OptionError(key, f"must be at least {minimum}, not {value}")
        return value

    def number(self, key: str, default: float, minimum: float = 0.0) -> float:
        value = float(self._get(key, (int, float), default, "a number"))
        if value < minimum:
            raise OptionError(key, f"must be at least {minimum}, not {value}")
        return value

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        value = str(self._get(key, str, default, "a string"))
        if value not in choices:
            raise OptionError(key, f"must be one of {', '.join(map(repr, choices))}, not {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        values = self._get(key, list, [], "a list of strings")
        if not all(isinstance(v, str) for v in values):
            raise OptionError(key, f"must be a list of strings, not {values!r}")
        return tuple(values)

    def tables(self, key: str) -> tuple[Mapping[str, object], ...]:
        values = self._get(key, list, [], "a list of tables")
        if not all(isinstance(v, dict) for v in values):
            raise OptionError(key, "must be a list of tables like { python = '3.12', platform = '...' }")
        return tuple(values)

    def done(self) -> None:
        for key in self._table:
            if key not in self._read:
                raise OptionError(key, "is not an option of this filter")
