"""Every recorded real-upstream response (tests/fixtures/upstreams) parses, and its formats agree.

The fixtures are what PyPI (as these machines reach it), bandersnatch 8.2, pypiserver and devpi
actually send; the README beside them says how each was recorded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mirror.core.models import ProjectPage
from mirror.core.parse import IndexHtmlParser, IndexJsonParser, parse_project_html, parse_project_json
from mirror.errors import UpstreamError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "upstreams"
ROOTS = sorted(FIXTURES.glob("*/root.*"))
PROJECT_PAGES = sorted(p for p in FIXTURES.glob("*/*.*") if p.stem not in {"root", "packages-listing", "README"})


def project_url(path: Path) -> str:
    return f"https://upstream.example/{path.parent.name}/simple/{path.stem}/"


def parse_page(path: Path) -> ProjectPage:
    if path.suffix == ".json":
        return parse_project_json(path.read_bytes(), project_url(path))
    return parse_project_html(path.read_bytes(), project_url(path), path.stem)


def test_the_fixtures_are_there() -> None:
    assert {p.parent.name for p in PROJECT_PAGES} == {"pypi", "bandersnatch-8.2", "pypiserver", "devpi"}
    assert sum(p.stat().st_size for p in FIXTURES.rglob("*")) < 100_000  # small, on purpose


@pytest.mark.parametrize("path", PROJECT_PAGES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_project_page_parses_without_dropping_anything(path: Path) -> None:
    parsed = parse_page(path)
    assert parsed.name == path.stem
    assert parsed.dropped == ()
    anchors_or_entries = len(re.findall(rb"<a ", path.read_bytes())) if path.suffix == ".html" else None
    if anchors_or_entries is not None:
        assert len(parsed.files) == anchors_or_entries
    else:
        assert len(parsed.files) == len(json.loads(path.read_bytes())["files"])
    for dist in parsed.files:
        assert dist.sha256 is not None and len(dist.sha256) == 64
        assert dist.url.startswith(("http://", "https://")) and "#" not in dist.url


@pytest.mark.parametrize("path", ROOTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_root_parses(path: Path) -> None:
    parser: IndexJsonParser | IndexHtmlParser = IndexJsonParser() if path.suffix == ".json" else IndexHtmlParser()
    body = path.read_bytes()
    entries = [e for i in range(0, len(body), 97) for e in parser.feed(body[i : i + 97])]  # odd chunks
    meta = parser.close()
    assert meta.api_version.startswith("1.")
    assert parser.skipped.count == 0 and parser.dropped.count == 0
    if path.suffix == ".html":
        assert len(entries) == len(re.findall(rb"<a ", body))
    else:
        assert len(entries) == len(json.loads(body)["projects"])


@pytest.mark.parametrize(
    ("directory", "project"),
    [("pypi", "requests"), ("pypi", "six"), ("bandersnatch-8.2", "proj-00000"), ("devpi", "six")],
)
def test_json_and_html_of_one_page_agree(directory: str, project: str) -> None:
    as_json = parse_page(FIXTURES / directory / f"{project}.json")
    as_html = parse_page(FIXTURES / directory / f"{project}.html")
    by_name = {f.filename: f for f in as_json.files}
    assert sorted(by_name) == sorted(f.filename for f in as_html.files)
    for dist in as_html.files:
        other = by_name[dist.filename]
        assert (dist.url, dist.sha256, dist.requires_python, dist.yanked) == (
            other.url,
            other.sha256,
            other.requires_python,
            other.yanked,
        )
        assert dist.metadata_hashes == other.metadata_hashes


def test_serials_sent_as_decimal_strings_are_read() -> None:
    """PyPI as reached from here and bandersnatch 8.2 write ``"_last-serial": "<digits>"``."""
    for path in (FIXTURES / "pypi" / "requests.json", FIXTURES / "bandersnatch-8.2" / "proj-00000.json"):
        raw = json.loads(path.read_bytes())["meta"]["_last-serial"]
        assert isinstance(raw, str)
        assert parse_page(path).last_serial == int(raw)
    # bandersnatch's HTML carries the same serial as a comment.
    html = FIXTURES / "bandersnatch-8.2" / "proj-00000.html"
    assert parse_page(html).last_serial == parse_page(html.with_suffix(".json")).last_serial


def test_pypiserver_flat_listing_is_refused_as_a_root() -> None:
    """Its /packages/ page links files, not projects: taken for a root, it would be 404s forever."""
    parser = IndexHtmlParser()
    parser.feed((FIXTURES / "pypiserver" / "packages-listing.html").read_bytes())
    with pytest.raises(UpstreamError, match=r"links distribution files, not projects \(e.g. 'proj_00000-1.0.0-py3"):
        parser.close()
