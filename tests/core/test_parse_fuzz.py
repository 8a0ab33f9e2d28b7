"""Property tests of the parsers: whatever the upstream sends, only UpstreamError comes out.

Arbitrary bytes, and documents built to look almost right (the known keys and attributes with
values of every JSON type, hostile strings, deep nesting, huge numbers), are parsed by the four
parsers of :mod:`mirror.core.parse`, the root index ones fed in chunks split at random points.
Anything but a model or an UpstreamError fails the test. Where a parse succeeds, rendering what
was parsed and parsing that again reaches a fixpoint, and the HTML page we render offers the same
files as the JSON one; a root index parses the same whole or chunked. These hold however liberal
the parsers are about what they accept.

The budget is fixed and the examples derandomized, so a run is repeatable and bounded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from mirror.core import render
from mirror.core.models import DistFile, IndexEntry, IndexMeta, ProjectPage
from mirror.core.parse import IndexHtmlParser, IndexJsonParser, parse_project_html, parse_project_json
from mirror.errors import UpstreamError

# Fixed-budget fuzzing takes seconds: left out of the fast loop (`-m "not slow"`), run by CI.
pytestmark = pytest.mark.slow


EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
BASE = "https://upstream.example/simple/demo/"
ROOT_BASE = "https://upstream.example/simple/"

# -- strategies: hostile values and almost-right documents ----------------------------------------

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "demo",
            "Demo_Pkg",
            "..",
            "../../etc/passwd",
            "/abs/path",
            "a\x00b",
            "\u202e",
            "%2e%2e/",
            "javascript:alert(1)",
            "https://other.example/x.whl",
            "demo-1.0-py3-none-any.whl",
            "demo-1.0.tar.gz",
            ">=3.8",
            "<3,>=2.7",
            "1.0",
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04:05.123456Z",
            "0" * 64,
            "A" * 64,
            "g" * 64,
            "quarantined",
            "archived",
            "1.4",
            "2.0",
            "x" * 5000,
        ]
    ),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False), st.sampled_from([0, -1, 2**63])
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, HOSTILE_TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(HOSTILE_TEXT, inner, max_size=4)),
    max_leaves=12,
)
HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)
HASHES = st.one_of(
    st.fixed_dictionaries({"sha256": HEX64}),
    st.dictionaries(st.sampled_from(["sha256", "SHA256", "md5", "blake2b", "", " sha256 "]), JSON_VALUES, max_size=3),
    JSON_VALUES,
)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Either a plausible value or anything at all."""
    return st.one_of(value, JSON_VALUES)


FILE_ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "filename": maybe(st.sampled_from(["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz", "demo-2.0.zip"])),
        "url": maybe(st.sampled_from(["demo-1.0.tar.gz", "../../packages/aa/bb/demo-1.0.tar.gz", "/x/y.whl"])),
        "hashes": HASHES,
        "requires-python": maybe(st.sampled_from([">=3.8", "", "garbage", None])),
        "size": maybe(st.integers(min_value=0, max_value=2**40)),
        "upload-time": maybe(st.sampled_from(["2024-01-02T03:04:05Z", "", "yesterday"])),
        "yanked": maybe(st.one_of(st.booleans(), HOSTILE_TEXT)),
        "core-metadata": maybe(st.one_of(st.booleans(), HASHES)),
        "data-dist-info-metadata": maybe(st.one_of(st.booleans(), HASHES)),
        "dist-info-metadata": maybe(st.one_of(st.booleans(), HASHES)),
        "gpg-sig": JSON_VALUES,
    },
)
PROJECT_JSON = st.fixed_dictionaries(
    {},
    optional={
        "meta": maybe(
            st.fixed_dictionaries(
                {"api-version": maybe(st.sampled_from(["1.0", "1.1", "1.4", "2.0", " 1.1 "]))},
                optional={"_last-serial": maybe(st.integers(min_value=-5, max_value=2**64))},
            )
        ),
        "name": maybe(st.sampled_from(["demo", "Demo", "DEMO_", "other", "-bad-", ""])),
        "files": maybe(st.lists(FILE_ENTRY, max_size=4)),
        "versions": maybe(st.lists(maybe(st.sampled_from(["1.0", "2.0"])), max_size=3)),
        "project-status": maybe(st.fixed_dictionaries({"status": maybe(HOSTILE_TEXT)}, optional={"reason": SCALARS})),
    },
)
ROOT_JSON = st.fixed_dictionaries(
    {},
    optional={
        "meta": maybe(
            st.fixed_dictionaries(
                {"api-version": maybe(st.sampled_from(["1.0", "1.1", "3.0"]))},
                optional={"_last-serial": maybe(st.integers(min_value=-5, max_value=2**64))},
            )
        ),
        "projects": maybe(
            st.lists(
                maybe(
                    st.fixed_dictionaries(
                        {"name": maybe(HOSTILE_TEXT)}, optional={"_last-serial": maybe(st.integers(-3, 2**64))}
                    )
                ),
                max_size=6,
            )
        ),
        "extra": JSON_VALUES,
    },
)


def html_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;")


ANCHOR = st.builds(
    lambda href, text, attrs: f'<a href="{html_attr(href)}"{attrs}>{text}</a>',
    maybe(st.sampled_from(["demo-1.0.tar.gz#sha256=" + "0" * 64, "../x.whl#md5=zz", "#", ""])).map(str),
    HOSTILE_TEXT,
    st.lists(
        st.builds(
            lambda key, value: f' {key}="{html_attr(str(value))}"' if value is not None else f" {key}",
            st.sampled_from(
                [
                    "data-requires-python",
                    "data-yanked",
                    "data-core-metadata",
                    "data-dist-info-metadata",
                    "data-gpg-sig",
                    "rel",
                    "href",
                ]
            ),
            st.one_of(st.none(), HOSTILE_TEXT, st.just("sha256=" + "1" * 64), st.just("true")),
        ),
        max_size=3,
    ).map("".join),
)
HTML_PIECE = st.one_of(
    ANCHOR,
    st.sampled_from(
        [
            "<html>",
            "</html>",
            "<head>",
            "<body>",
            "</body>",
            '<meta name="pypi:repository-version" content="1.1">',
            '<meta name="pypi:repository-version" content="2.0">',
            '<meta name="pypi:project-status" content="quarantined">',
            '<base href="https://elsewhere.example/">',
            "<!--SERIAL 7-->",
            "<!--SERIAL -1-->",
            "<!--SERIAL 99999999999999999999999-->",
            "<br/>",
            "<a>",
            "</a>",
            "<script>",
            "<![CDATA[",
            "&#0;",
            "&#x110000;",
            "<!",
            "<",
        ]
    ),
    HOSTILE_TEXT,
)
HTML_DOCS = st.lists(HTML_PIECE, max_size=12).map("".join).map(lambda text: text.encode("utf-8", "surrogatepass"))
JSON_DOCS = st.one_of(
    PROJECT_JSON.map(lambda doc: json.dumps(doc).encode()),
    JSON_VALUES.map(lambda doc: json.dumps(doc).encode()),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
)
ROOT_JSON_DOCS = st.one_of(
    ROOT_JSON.map(lambda doc: json.dumps(doc).encode()),
    JSON_VALUES.map(lambda doc: json.dumps(doc).encode()),
)
ANY_BYTES = st.binary(max_size=400)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


CUTS = st.lists(st.integers(min_value=0, max_value=10_000), max_size=8)

# -- the parsers as total functions: a model or UpstreamError ------------------------------------


def project_json(body: bytes) -> ProjectPage | None:
    try:
        return parse_project_json(body, BASE)
    except UpstreamError:
        return None


def project_html(body: bytes) -> ProjectPage | None:
    try:
        return parse_project_html(body, BASE, "demo")
    except UpstreamError:
        return None


Parser = IndexJsonParser | IndexHtmlParser


def root(parser: Callable[[], Parser], chunks: list[bytes]) -> tuple[list[IndexEntry], IndexMeta] | None:
    """Feed ``chunks``; the entries and meta, or None once UpstreamError stopped it."""
    instance = parser()
    entries: list[IndexEntry] = []
    try:
        for chunk in chunks:
            entries += instance.feed(chunk)
        return entries, instance.close()
    except UpstreamError:
        return None


# -- only UpstreamError ---------------------------------------------------------------------------


@FUZZ
@given(st.one_of(ANY_BYTES, JSON_DOCS))
def test_project_json_raises_only_upstream_error(body: bytes) -> None:
    page = project_json(body)
    if page is not None:
        assert_fixpoint(page)


@FUZZ
@given(st.one_of(ANY_BYTES, HTML_DOCS))
def test_project_html_raises_only_upstream_error(body: bytes) -> None:
    page = project_html(body)
    if page is not None:
        assert_fixpoint(page)


@FUZZ
@given(st.one_of(ANY_BYTES, ROOT_JSON_DOCS), CUTS)
def test_root_json_raises_only_upstream_error_however_it_is_chunked(body: bytes, cuts: list[int]) -> None:
    assert_chunking_irrelevant(IndexJsonParser, body, cuts)


@FUZZ
@given(st.one_of(ANY_BYTES, HTML_DOCS), CUTS)
def test_root_html_raises_only_upstream_error_however_it_is_chunked(body: bytes, cuts: list[int]) -> None:
    assert_chunking_irrelevant(IndexHtmlParser, body, cuts)


def assert_chunking_irrelevant(parser: Callable[[], Parser], body: bytes, cuts: list[int]) -> None:
    whole = root(parser, [body])
    chunked = root(parser, split(body, cuts))
    assert chunked == whole
    bytewise = root(parser, [body[i : i + 1] for i in range(len(body))])
    assert bytewise == whole


# -- what parses renders and parses again to the same page ----------------------------------------


def assert_fixpoint(page: ProjectPage) -> None:
    """Our own pages are a fixpoint of parse∘render, and the HTML one offers what the JSON one does.

    HTML names a file by the last segment of its URL (as pip does): a page parsed from an upstream
    whose JSON gives another filename settles after one round, and is compared without filenames.
    """
    as_json = render.render_project_json(page)
    again = parse_project_json(as_json, BASE)
    assert render.render_project_json(again) == as_json
    settled = render.render_project_html(parse_project_html(render.render_project_html(page), BASE, page.name))
    html_again = parse_project_html(settled, BASE, page.name)
    assert render.render_project_html(html_again) == settled
    from_json = parse_project_html(render.render_project_html(again), BASE, page.name)
    assert offered(from_json)[1:] == offered(again)[1:]


def offered(page: ProjectPage) -> list[tuple[object, ...]]:
    """What both formats carry of the files: filenames, then per file its link, hashes, and PEP 503/592/714 data."""
    links = [(d.url, dict(d.hashes), d.requires_python, d.yanked, d.metadata_hashes) for d in page.files]
    return [tuple(d.filename for d in page.files), *links]


NAMES = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,15}[A-Za-z0-9])?", fullmatch=True).map(canonicalize_name)
FILENAMES = st.sampled_from(["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz", "demo-2.0+local.zip", "demo 3.0.tar.gz"])
DIST = st.builds(
    lambda filename, host, **fields: DistFile(filename=filename, url=host + render.quote_url(filename), **fields),
    filename=FILENAMES,
    host=st.sampled_from(["https://files.example/packages/aa/bb/", "https://upstream.example/simple/demo/"]),
    hashes=st.fixed_dictionaries({"sha256": HEX64}),
    requires_python=st.sampled_from([None, ">=3.8", "<4,>=3.9"]),
    size=st.one_of(st.none(), st.integers(0, 2**40)),
    upload_time=st.sampled_from([None, "2024-01-02T03:04:05.123456Z"]),
    yanked=st.one_of(st.booleans(), st.text(min_size=1, max_size=20).filter(str.strip)),
    core_metadata=st.one_of(st.booleans(), st.fixed_dictionaries({"sha256": HEX64})),
)
PAGES = st.builds(
    ProjectPage,
    name=st.just(canonicalize_name("demo")),
    files=st.lists(DIST, max_size=4, unique_by=lambda d: d.filename).map(tuple),
    last_serial=st.one_of(st.none(), st.integers(0, 2**40)),
)


@FUZZ
@given(PAGES)
def test_pages_we_render_parse_back_to_a_fixpoint(page: ProjectPage) -> None:
    assert_fixpoint(page)
    parsed = parse_project_json(render.render_project_json(page), BASE)
    assert offered(parsed) == offered(page)
    from_html = parse_project_html(render.render_project_html(page), BASE, page.name)
    assert offered(from_html) == offered(page)


@FUZZ
@given(
    st.lists(st.tuples(NAMES, st.one_of(st.none(), st.integers(0, 2**40))), max_size=30, unique_by=lambda e: e[0]),
    st.one_of(st.none(), st.integers(0, 2**40)),
    CUTS,
)
def test_root_indexes_we_render_parse_back_whole_and_chunked(
    pairs: list[tuple[str, int | None]], serial: int | None, cuts: list[int]
) -> None:
    entries = [IndexEntry(canonicalize_name(name), number) for name, number in sorted(pairs)]
    as_json = b"".join(render.render_index_json(entries, IndexMeta(last_serial=serial)))
    parsed = root(IndexJsonParser, split(as_json, cuts))
    assert parsed is not None
    assert parsed[0] == entries
    assert parsed[1].last_serial == serial
    as_html = b"".join(render.render_index_html(entries, serial))
    parsed_html = root(IndexHtmlParser, split(as_html, cuts))
    assert parsed_html is not None
    assert [e.name for e in parsed_html[0]] == [e.name for e in entries]
    assert parsed_html[1].last_serial == serial
