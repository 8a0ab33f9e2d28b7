"""Fuzzing the config loader: whatever the file says, the only failure is a ConfigError (exit 2).

Three shapes of input, each with a fixed, derandomized budget: arbitrary text that may or may
not be TOML, TOML documents with arbitrary tables and values, and every known key of
``[mirror]`` and of the built-in filters' tables given values of arbitrary types. A loaded config
is also handed to what consumes it first (the HTTP client's TLS context and headers, the filter
plugins' factories), since a value the loader lets through must not fail there either.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from mirror import _config as config
from mirror import _plugins
from mirror._http import make_client
from mirror.errors import ConfigError

# Fixed-budget fuzzing takes seconds: left out of the fast loop (`-m "not slow"`), run by CI.
pytestmark = pytest.mark.slow


TEXT_EXAMPLES = 1000
DOCUMENT_EXAMPLES = 400
KEY_EXAMPLES = 600
FUZZ = settings(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_scalars = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(),
    st.dates(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)
# Strings a path or URL key might plausibly see: separators, dots, schemes, '@', ports, control characters.
_pathish = st.text(alphabet="/.~ab:@\x00\n\t%-_", max_size=20) | st.sampled_from(
    ["/", "//", "/.", "/..", "..", ".", "~", "/srv/..", "web", "m/web/x.prom", "http://u:p@h/", "http://h:99999/"]
)
_urlish = st.builds(
    "".join,
    st.lists(
        st.sampled_from(
            [
                "http://",
                "https://",
                "ftp://",
                "u:p@",
                "@",
                "[",
                "::1",
                "]",
                "h",
                ":",
                "99999",
                "0",
                "/",
                " ",
                "\x00",
                "?",
                "#",
            ]
        ),
        max_size=8,
    ),
)
_MIRROR_KEYS = [key.name for key in config.MIRROR_KEYS]
_FILTER_OPTIONS = {
    "allowlist": ["projects", "requirements", "dependencies"],
    "blocklist": ["projects", "requirements"],
    "environments": ["targets", "sdists"],
    "prerelease": ["keep", "keep-projects", "drop-projects"],
    "latest": ["count", "by", "exempt-projects"],
    "cooldown": ["days"],
    "regex": ["projects", "files"],
    "size": ["max-file-mb", "max-project-mb"],
    "yanked": [],
}


@contextmanager
def written(text: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mirror.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        yield path


def load_and_use(path: Path) -> None:
    """Load, then build what a command builds first from the config; ConfigError is the only way out."""
    try:
        loaded = config.load(path)
        _plugins.load_chain(loaded.filters, str(loaded.source))
        if loaded.upstream is not None:
            asyncio.run(_client(loaded))
        event("loaded")
    except ConfigError as exc:
        event("ConfigError")
        assert str(path) in str(exc) or "plugin" in str(exc), exc  # it names the file
        assert "\n" not in str(exc).strip()  # one line


async def _client(loaded: config.Config) -> None:
    client = make_client(loaded)
    await client.aclose()


def as_toml(document: dict[str, Any]) -> str | None:
    try:
        return tomli_w.dumps(document)
    except (TypeError, ValueError):  # a value TOML cannot hold (e.g. a NaN key)
        return None


@settings(FUZZ, max_examples=TEXT_EXAMPLES)
@given(
    text=st.text(
        alphabet=st.sampled_from("[]=\"'.,{}#\n \t-_0123456789abcdefmirortyuplsk\\") | st.characters(), max_size=120
    )
)
@example(text='[mirror]\ndirectory = "m\\u0000x"\n')
@example(text='[mirror]\ndirectory = "m"\nmetrics-file = "/"\n')
@example(text='[mirror]\ndirectory = "m"\nupstream = "http://user:pass@127.0.0.1/simple/"\n')
@example(text='[mirror]\ndirectory = "/"\n')
@example(text='[mirror]\ndirectory = "~:"\n')  # found by test_fuzz_every_key: expanduser's RuntimeError
@example(text='[mirror]\ndirectory = "m"\nupstream = "http://127.0.0.1:99999/simple/"\n')
@example(text='[mirror]\ndirectory = "m"\nupstream = "http://[::1/simple/"\n')
def test_fuzz_any_text(text: str) -> None:
    with written(text) as path:
        load_and_use(path)


@settings(FUZZ, max_examples=DOCUMENT_EXAMPLES)
@given(document=st.dictionaries(st.sampled_from(["mirror", "filters", "x"]) | st.text(max_size=8), _values, max_size=3))
def test_fuzz_any_document(document: dict[str, Any]) -> None:
    text = as_toml(document)
    if text is not None:
        with written(text) as path:
            load_and_use(path)


def _mirror_table() -> st.SearchStrategy[dict[str, Any]]:
    value_for = {name: _values | _pathish for name in _MIRROR_KEYS}
    value_for["upstream"] = _urlish | _values
    value_for["directory"] = _pathish | st.just("m")
    optional = {name: strategy for name, strategy in value_for.items() if name != "directory"}
    return st.fixed_dictionaries({"directory": value_for["directory"]}, optional=optional)


def _filters_table() -> st.SearchStrategy[dict[str, Any]]:
    enabled = st.lists(st.sampled_from(sorted(_FILTER_OPTIONS)), unique=True, max_size=4)

    def with_options(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
        tables = {
            name: st.fixed_dictionaries({}, optional={option: _values for option in _FILTER_OPTIONS[name]})
            for name in names
        }
        return st.fixed_dictionaries({"enabled": st.just(names), **tables})

    return enabled.flatmap(with_options)


@settings(FUZZ, max_examples=KEY_EXAMPLES)
@given(mirror=_mirror_table(), filters=_filters_table())
def test_fuzz_every_key(mirror: dict[str, Any], filters: dict[str, Any]) -> None:
    text = as_toml({"mirror": mirror, "filters": filters})
    if text is not None:
        with written(text) as path:
            load_and_use(path)
