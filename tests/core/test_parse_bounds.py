"""Project pages are bounded in the files they may list (max-page-files)."""

from __future__ import annotations

import json

import pytest

from mirror.core import parse
from mirror.errors import UpstreamError

BASE = "https://example.org/simple/demo/"


def json_page(count: int, *, extra_objects: int = 0) -> bytes:
    files = [{"filename": f"demo-{i}.tar.gz", "url": f"demo-{i}.tar.gz", "hashes": {}} for i in range(count)]
    page = {"meta": {"api-version": "1.1"}, "name": "demo", "files": files, "pad": [{}] * extra_objects}
    return json.dumps(page).encode()


def html_page(count: int) -> bytes:
    links = "".join(f'<a href="demo-{i}.tar.gz">demo-{i}.tar.gz</a>\n' for i in range(count))
    return f"<!DOCTYPE html><html><body>{links}</body></html>".encode()


def test_json_page_at_the_bound_parses_and_one_more_is_refused() -> None:
    assert len(parse.parse_project_json(json_page(50), BASE, max_files=50).files) == 50
    with pytest.raises(UpstreamError, match="more than 50 files"):
        parse.parse_project_json(json_page(51), BASE, max_files=50)


def test_json_page_with_too_many_objects_is_refused_before_parsing() -> None:
    # 10 files, but as many objects as 4 files each of 50 would make: never handed to json.loads.
    with pytest.raises(UpstreamError, match="more than 50 files"):
        parse.parse_project_json(json_page(10, extra_objects=200), BASE, max_files=50)
    # Braces inside strings only over-count, and a normal page is far below the bound.
    assert len(parse.parse_project_json(json_page(10, extra_objects=100), BASE, max_files=50).files) == 10


def test_html_page_at_the_bound_parses_and_one_more_is_refused() -> None:
    assert len(parse.parse_project_html(html_page(50), BASE, "demo", max_files=50).files) == 50
    with pytest.raises(UpstreamError, match="more than 50 files"):
        parse.parse_project_html(html_page(51), BASE, "demo", max_files=50)


def test_the_default_bound_admits_the_largest_real_pages() -> None:
    # PyPI's largest project page (ddtrace) lists about 47,000 files.
    assert len(parse.parse_project_html(html_page(60_000), BASE, "demo").files) == 60_000
