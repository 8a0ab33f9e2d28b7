"""The root parsers' fast path (runs of plain entries, ``mirror/core/parse/_root_runs.py``) reads
exactly what the strict path reads.

Fed a byte at a time, no chunk ever holds a whole entry, so every entry goes through the strict
path; fed whole, runs of plain entries go through the fast one. Documents mixing entries on both
sides of every rule of the fast path (names to normalize or refuse, serial forms, whitespace, key
orders, other markup) must give the same projects, the same notes and the same error either way.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from mirror.core.parse import IndexHtmlParser, IndexJsonParser
from mirror.errors import UpstreamError

Parser = IndexJsonParser | IndexHtmlParser
Outcome = tuple[list[tuple[str, int | None]], str, int, tuple[str, ...], int, tuple[str, ...]]

NAMES = [
    "demo",
    "a-b-c",
    "0",
    "Demo_Pkg",
    "zope.interface",
    "A--B",
    "a__b",
    "a-._-b",
    "x" * 255,
    "X" * 255,
    "x" * 256,
    "-demo",
    "demo-",
    "",
    " demo ",
    "dé",
    "\u017f",  # long s: lower-cases to itself, not a valid name
    "\u212a",  # Kelvin sign
    "a b",
    "a/b",
]
JSON_NAMES = [*(f'"{n}"' for n in NAMES), '"d\\u0065mo"', '"de\\"mo"', "null", "7", '"' + "y" * 300 + '"']
SERIALS = ["0", "7", "123456789012345678", "999999999999999999", "1000000000000000000", "-1", "01", "1.5", "1e3"]
SERIALS += ['"7"', '"0123"', '" 7"', '""', "null", "true", "[1]"]
SPACES = ["", " ", "\n  ", "\t", " " * 70]


def usually(common: st.SearchStrategy[str], rare: list[str]) -> st.SearchStrategy[str]:
    """Mostly what the fast path takes, so that runs form; sometimes what ends one."""
    return st.one_of(common, common, common, st.sampled_from(rare))


@st.composite
def json_entry(draw: st.DrawFn) -> str:
    w = usually(st.sampled_from(["", " "]), SPACES)
    value = usually(st.sampled_from(["demo", "Demo_Pkg", "a-b", "zope.interface"]).map(lambda n: f'"{n}"'), JSON_NAMES)
    name = f'"name"{draw(w)}:{draw(w)}{draw(value)}'
    number = draw(usually(st.sampled_from(["0", "7", '"7"']), SERIALS))
    serial = f'"_last-serial"{draw(w)}:{draw(w)}{number}'
    pairs = st.sampled_from([(name, serial), (serial, name)])
    keys = draw(
        st.one_of(pairs, pairs, st.sampled_from([(name,), (serial,), (name, serial, '"x": 1'), (name, name), ()]))
    )
    return "{" + draw(w) + f"{draw(w)},{draw(w)}".join(keys) + draw(w) + "}"


@st.composite
def json_root(draw: st.DrawFn) -> bytes:
    entries = draw(st.lists(json_entry(), max_size=25))
    broken = draw(st.one_of(st.none(), st.none(), st.none(), st.sampled_from(["[]", "1", '"demo"', "{", "}"])))
    if broken is not None:  # one element that is no project ends the document with an error
        entries.insert(draw(st.integers(0, len(entries))), broken)
    separator = draw(st.sampled_from([",", ", ", ",\n", " ,\n\t"]))
    head = draw(usually(st.just('{"meta": {"api-version": "1.1"}, "projects": ['), ['{"projects":[', "[", ""]))
    tail = draw(usually(st.just("]}"), ["]", "", '], "meta": {"_last-serial": 5}}']))
    return (head + separator.join(entries) + tail).encode()


HREFS = [
    "/simple/demo/",
    "demo/",
    "/simple/demo",
    "demo-1.0.tar.gz",
    "/simple/a?b/",
    "//host/x/",
    "x/#f/",
    "",
    "a&amp;/",
]
TEXTS = [*NAMES, "a&amp;b", "<b>demo</b>", "\n demo\n"]
HTML_BETWEEN = ["\n", "", "<br/>", "<br>", "<br />", " text ", "<!-- c -->", "<!--", "-->", "<script>", "</script>"]
HTML_BETWEEN += [
    "<title>",
    "</title>",
    '<A HREF="x/">X</A>',
    "<a>",
    "</a>",
    "&",
    "</body>",
    "<p",
    ">",
    "<!--SERIAL 9-->",
]


@st.composite
def html_root(draw: st.DrawFn) -> bytes:
    anchor = st.builds(
        lambda href, text, attrs, after: f'<a href="{href}"{attrs}>{text}</a>{after}',
        usually(st.just("/simple/demo/"), HREFS),
        usually(st.sampled_from(["demo", "Demo_Pkg", " a.b "]), TEXTS),
        usually(st.just(""), [' rel="x"', " "]),
        st.sampled_from(["\n", "", "<br/>"]),
    )
    pieces = draw(st.lists(usually(anchor, HTML_BETWEEN), max_size=30))
    head = draw(st.sampled_from(["<!DOCTYPE html><html><body>\n", "<html><head><title>x</title></head><body>", ""]))
    tail = draw(usually(st.just("</body></html>"), ["</html>", ""]))
    return (head + "".join(pieces) + tail).encode()


def outcome(parser: Callable[[], Parser], chunks: list[bytes]) -> Outcome:
    instance = parser()
    rows: list[tuple[str, int | None]] = []
    error = ""
    try:
        for chunk in chunks:
            rows += [(e.name, e.serial) for e in instance.feed(chunk)]
        instance.close()
    except UpstreamError as exc:
        error = str(exc)
        rows = []  # a chunk that fails returns nothing, so what came before depends on the chunking
    skipped, dropped = instance.skipped, instance.dropped
    return rows, error, skipped.count, skipped.lines(), dropped.count, dropped.lines()


def assert_fast_path_reads_as_strict_path(parser: Callable[[], Parser], body: bytes, cut: int) -> None:
    bytewise = outcome(parser, [body[i : i + 1] for i in range(len(body))])
    assert outcome(parser, [body]) == bytewise
    assert outcome(parser, [body[:cut], body[cut:]]) == bytewise


FAST_PATH = settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
@FAST_PATH
@given(json_root(), st.integers(0, 2000))
def test_json_fast_path_reads_as_the_strict_path(body: bytes, cut: int) -> None:
    assert_fast_path_reads_as_strict_path(IndexJsonParser, body, cut)


@pytest.mark.slow
@FAST_PATH
@given(html_root(), st.integers(0, 2000))
def test_html_fast_path_reads_as_the_strict_path(body: bytes, cut: int) -> None:
    assert_fast_path_reads_as_strict_path(IndexHtmlParser, body, cut)


def test_json_runs_normalize_refuse_and_read_serials_like_the_strict_path() -> None:
    entries = [
        '{"name": "Demo_Pkg", "_last-serial": 3}',
        '{"_last-serial": "0042", "name": "zope.interface"}',
        '{"name": "-bad", "_last-serial": 4}',
        '{"name": "big", "_last-serial": 1000000000000000000}',
        '{"name": "a--b"}',
        '{"name": "' + "x" * 256 + '", "_last-serial": 5}',
    ]
    body = ('{"meta": {"api-version": "1.1"}, "projects": [' + ",".join(entries) + "]}").encode()
    rows, error, skipped, examples, dropped, _ = outcome(IndexJsonParser, [body])
    assert error == ""
    assert rows == [("demo-pkg", 3), ("zope-interface", 42), ("big", None), ("a-b", None)]
    assert skipped == 2 and "projects[2].name is not a valid project name" in examples[0]
    assert dropped == 1  # the serial past 10**18 - 1
    assert outcome(IndexJsonParser, [body[i : i + 1] for i in range(len(body))]) == outcome(IndexJsonParser, [body])


def test_html_runs_read_names_as_the_html_parser_does() -> None:
    body = (
        b'<html><body>\n<a href="/simple/demo-pkg/">Demo_Pkg</a>\n<a href="a/"> a </a><br/>'
        b'<!-- <a href="/simple/hidden/">hidden</a> -->'
        b'<a href="/simple/b/">b</a><script><a href="/simple/in-script/">s</a></script>'
        b'<a href="/simple/c/">c</a>\n</body></html>'
    )
    rows, error, *_ = outcome(IndexHtmlParser, [body])
    assert error == ""
    assert rows == [("demo-pkg", None), ("a", None), ("b", None), ("c", None)]
    assert outcome(IndexHtmlParser, [body[i : i + 1] for i in range(len(body))]) == outcome(IndexHtmlParser, [body])


def test_normalizing_a_run_at_once_is_canonicalize_name_of_each() -> None:
    from mirror.core.parse._root_runs import normalize_names

    names = ["Demo_Pkg", "zope.interface", "A--B", "a-._-b", "requests", "X" * 255, "0", "a1.B2_c3"]
    assert normalize_names(names) == [canonicalize_name(n, validate=True) for n in names]
    assert normalize_names(["demo", "a-b"]) == ["demo", "a-b"]
