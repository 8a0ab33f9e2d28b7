"""PEP 691 negotiation: the Accept headers installers send, q-values, wildcards, ties."""

from __future__ import annotations

import pytest

from mirror.core.negotiate import PageFormat, choose, parse_accept

UV = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"

# Shared with the nginx test: both servers must answer these alike.
CASES: list[tuple[str | None, PageFormat]] = [
    (UV, PageFormat.JSON),
    (PIP, PageFormat.JSON),
    ("application/vnd.pypi.simple.latest+json", PageFormat.JSON),
    ("application/vnd.pypi.simple.latest+html", PageFormat.HTML_V1),
    ("application/vnd.pypi.simple.v1+html", PageFormat.HTML_V1),
    ("text/html", PageFormat.HTML),
    (None, PageFormat.HTML),
    ("", PageFormat.HTML),
    ("*/*", PageFormat.HTML),
    ("text/html, application/vnd.pypi.simple.v1+json;q=0.9", PageFormat.HTML),
    ("application/vnd.pypi.simple.v1+json;q=0.9, text/html", PageFormat.HTML),
    ("application/vnd.pypi.simple.v1+json;q=0.5, text/html;q=0.25", PageFormat.JSON),
    ("application/vnd.pypi.simple.v1+json;q=0.25, text/html;q=0.5", PageFormat.HTML),
    ("application/vnd.pypi.simple.v1+json;q=0.255, text/html;q=0.25", PageFormat.JSON),
    ("application/vnd.pypi.simple.v1+json;q=0.5, application/vnd.pypi.simple.v1+html;q=0.6", PageFormat.HTML_V1),
    ("application/vnd.pypi.simple.v1+json, text/html", PageFormat.HTML),  # a tie goes to HTML
    ("application/vnd.pypi.simple.v1+json;q=0.5, */*;q=0.1", PageFormat.JSON),
    ("application/vnd.pypi.simple.v1+json;q=0.5, */*", PageFormat.HTML),
    ("application/*, text/html;q=0.5", PageFormat.HTML_V1),
    ("application/vnd.pypi.simple.v1+json;q=0", PageFormat.HTML),
    ("application/vnd.pypi.simple.v1+json;Q=1.0", PageFormat.JSON),
    ("image/png", PageFormat.HTML),
    ("garbage, ;;, /", PageFormat.HTML),
    ("application/vnd.pypi.simple.v1+json;q=abc, text/html;q=0.1", PageFormat.HTML),
    ("APPLICATION/VND.PYPI.SIMPLE.V1+JSON", PageFormat.JSON),
]


@pytest.mark.parametrize(("accept", "expected"), CASES)
def test_choose(accept: str | None, expected: PageFormat) -> None:
    assert choose(accept) is expected


def test_formats_name_their_files_and_content_types() -> None:
    assert PageFormat.JSON.filename == "index.v1_json"
    assert PageFormat.JSON.content_type == "application/vnd.pypi.simple.v1+json"
    assert PageFormat.HTML_V1.content_type == "application/vnd.pypi.simple.v1+html; charset=utf-8"
    assert PageFormat.HTML.filename == "index.html"


def test_parse_accept_clamps_q_and_skips_malformed() -> None:
    ranges = parse_accept("text/html;q=7, nonsense, application/json;level=1;q=-2")
    assert [(r.type, r.subtype, r.q) for r in ranges] == [("text", "html", 1.0), ("application", "json", 0.0)]
