"""The starter config documents every built-in filter, and its documented defaults are the real ones."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from mirror._config import FiltersConfig
from mirror._plugins import available, load_chain

STARTER = Path(__file__).parents[2] / "mirror" / "starter.toml"


def documented_tables() -> dict[str, dict[str, object]]:
    """The commented ``[filters.<name>]`` blocks, uncommented and parsed (trailing comments dropped)."""
    lines = []
    for line in STARTER.read_text().splitlines():
        match = re.match(r"^# (\[[a-z.]+\]|[a-z-]+ = .*)$", line)
        if match and not line.startswith("# enabled"):
            lines.append(re.sub(r"\s+#.*$", "", match[1]))
    tables: dict[str, dict[str, object]] = tomllib.loads("\n".join(lines))["filters"]
    return tables


def test_every_builtin_is_documented_with_its_defaults() -> None:
    tables = documented_tables()
    builtins = {n for n, target in available().items() if target.startswith("mirror_plugins.")}
    assert set(tables) == builtins
    # Defaults as documented are accepted by the real factories (an unknown key would fail).
    needs: dict[str, dict[str, object]] = {
        "allowlist": {"projects": ["x"]},
        "environments": {"targets": [{"python": "3.12", "platform": "win_amd64"}]},
    }
    options = {name: {**table, **needs.get(name, {})} for name, table in tables.items()}
    chain = load_chain(FiltersConfig(tuple(sorted(options)), options), str(STARTER))
    assert len(chain.plugins) == len(builtins)
