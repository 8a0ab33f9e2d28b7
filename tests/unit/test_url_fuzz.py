"""Fuzzing the file-URL fast path of the page parsers against what urljoin and urldefrag give.

``_join`` returns a plain absolute http(s) URL as it is, without calling urljoin and urldefrag;
for every link and base, it must give exactly what those two calls give (or refuse it the same
way). A fixed budget (``derandomize``): the same examples every run.
"""

from __future__ import annotations

from urllib.parse import urldefrag, urljoin

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mirror.core.parse._fields import _PLAIN_ABSOLUTE, _Invalid, _join

pytestmark = pytest.mark.slow

BUDGET = settings(max_examples=3000, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))

# Characters that matter to URL parsing, and a few that do not.
_ALPHABET = "aZ09-._~!$&'()*+,;=:@/%?#[] \t\n\r\x00\x7fé\u3000\\"
_BASES = ["https://pypi.org/simple/demo/", "http://127.0.0.1:8080/simple/demo/", "https://example.org/x?q#f"]


def _slow(base: str, link: str) -> str | None:
    try:
        return urldefrag(urljoin(base, link.strip())).url
    except ValueError:
        return None


def _fast(base: str, link: str) -> str | None:
    try:
        return _join(base, link, "file")
    except _Invalid:
        return None


@given(
    base=st.sampled_from(_BASES),
    scheme=st.sampled_from(["https://", "http://", "HTTP://", "ftp://", "//", "", "https:"]),
    host=st.text(alphabet="ab1.-:[]@é", min_size=0, max_size=12),
    path=st.text(alphabet=_ALPHABET, max_size=40),
)
@example(base=_BASES[0], scheme="https://", host="files.example", path="/packages/ab/cd/demo-1.0.whl")
@example(base=_BASES[0], scheme="https://", host="h", path="//a/../b;p?q#f")
@example(base=_BASES[0], scheme="https://", host="h:80", path="/a%20b/\t")
@example(base=_BASES[0], scheme="https://", host="h", path="/a?")  # an empty query is dropped
@example(base=_BASES[0], scheme="https://", host="h", path="/a;")  # so are empty parameters
@example(base=_BASES[0], scheme="https://", host="h", path="/a\\b")
@BUDGET
def test_a_plain_absolute_url_joins_to_itself(base: str, scheme: str, host: str, path: str) -> None:
    link = scheme + host + path
    assert _fast(base, link) == _slow(base, link)


def test_typical_file_urls_take_the_fast_path() -> None:
    for url in (
        "https://files.pythonhosted.org/packages/ab/cd/0123/demo-1.0-py3-none-any.whl",
        "http://127.0.0.1:8080/packages/demo/demo-1.0.tar.gz",
    ):
        assert _PLAIN_ABSOLUTE.fullmatch(url)
        assert _join(_BASES[0], url, "file") == url
