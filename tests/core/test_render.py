"""Tests of mirror.core.render: the pages pip and uv read from the mirror."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import pytest
from packaging.utils import NormalizedName

from mirror.core.models import API_VERSION, DistFile, IndexEntry, IndexMeta, ProjectPage, ProjectStatus, Provenance
from mirror.core.parse import (
    IndexHtmlParser,
    IndexJsonParser,
    parse_project_html,
    parse_project_json,
)
from mirror.core.render import (
    CHUNK_SIZE,
    is_quarantined,
    quote_url,
    render_index_html,
    render_index_json,
    render_project_html,
    render_project_json,
)


def sha(text: str, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, text.encode()).hexdigest()


def N(name: str) -> NormalizedName:
    return NormalizedName(name)


WHEEL = DistFile(
    filename="demo-1.0-py3-none-any.whl",
    url="../../packages/aa/bb/cafe/demo-1.0-py3-none-any.whl",
    hashes={"sha256": sha("wheel")},
    requires_python="<3,>=2.7",
    size=1234,
    upload_time="2024-01-02T03:04:05.123456Z",
    yanked=False,
    core_metadata={"sha256": sha("metadata")},
)
SDIST = DistFile(
    filename="demo-0.9.tar.gz",
    url="../../packages/cc/dd/beef/demo-0.9.tar.gz",
    hashes={"sha256": sha("sdist"), "md5": sha("sdist", "md5")},
    yanked="broken & <bad>",
)
PAGE = ProjectPage(name=N("demo"), files=(WHEEL, SDIST), versions=None, last_serial=42)


def as_json(page: ProjectPage) -> dict[str, Any]:
    data = json.loads(render_project_json(page))
    assert isinstance(data, dict)
    return data


def json_file(**changes: Any) -> dict[str, Any]:
    page = ProjectPage(name=N("demo"), files=(dataclasses.replace(WHEEL, **changes),))
    files = as_json(page)["files"]
    assert isinstance(files, list)
    return dict(files[0])


def html_text(page: ProjectPage) -> str:
    return render_project_html(page).decode()


def html_anchor(**changes: Any) -> str:
    page = ProjectPage(name=N("demo"), files=(dataclasses.replace(WHEEL, **changes),))
    (line,) = [line for line in html_text(page).splitlines() if "<a " in line]
    return line.strip()


# --- quoting ------------------------------------------------------------------------------------------


class TestQuoteUrl:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("../../packages/aa/bb/h/demo-1.0.tar.gz", "../../packages/aa/bb/h/demo-1.0.tar.gz"),
            ("demo-1.0+cpu-py3-none-any.whl", "demo-1.0%2Bcpu-py3-none-any.whl"),
            ("demo-1.0%2Bcpu-py3-none-any.whl", "demo-1.0%2Bcpu-py3-none-any.whl"),
            ("a b/c d.whl", "a%20b/c%20d.whl"),
            ("d\u00e9mo.whl", "d%C3%A9mo.whl"),
            ("x#y.whl", "x%23y.whl"),
            ("100%.whl", "100%25.whl"),
            ("%zz%2", "%25zz%252"),
            ('a"b<c>d\\e^f`g{h|i}j', "a%22b%3Cc%3Ed%5Ce%5Ef%60g%7Bh%7Ci%7Dj"),
            ("https://user@files.example:8443/p/x.whl?a=1&b=2;c=(3)*!$',~", None),
            ("http://[::1]:8080/x.whl", None),
        ],
    )
    def test_quote(self, url: str, expected: str | None) -> None:
        assert quote_url(url) == (url if expected is None else expected)

    @pytest.mark.parametrize("url", ["demo-1.0+cpu.whl", "a b", "é", "100%", "x#y", "%41"])
    def test_idempotent(self, url: str) -> None:
        assert quote_url(quote_url(url)) == quote_url(url)


# --- JSON project pages -------------------------------------------------------------------------------


class TestProjectJson:
    def test_exact_bytes(self) -> None:
        expected = (
            '{"meta":{"api-version":"1.4","_last-serial":42},"name":"demo","versions":["0.9","1.0"],"files":['
            '{"filename":"demo-1.0-py3-none-any.whl","url":"../../packages/aa/bb/cafe/demo-1.0-py3-none-any.whl",'
            f'"hashes":{{"sha256":"{sha("wheel")}"}},"requires-python":"<3,>=2.7","size":1234,'
            '"upload-time":"2024-01-02T03:04:05.123456Z","yanked":false,'
            f'"core-metadata":{{"sha256":"{sha("metadata")}"}},'
            f'"data-dist-info-metadata":{{"sha256":"{sha("metadata")}"}}}},'
            '{"filename":"demo-0.9.tar.gz","url":"../../packages/cc/dd/beef/demo-0.9.tar.gz",'
            f'"hashes":{{"md5":"{sha("sdist", "md5")}","sha256":"{sha("sdist")}"}},'
            '"yanked":"broken & <bad>"}]}'
        )
        assert render_project_json(PAGE).decode() == expected

    def test_meta(self) -> None:
        assert as_json(PAGE)["meta"] == {"api-version": API_VERSION, "_last-serial": 42}
        assert API_VERSION == "1.4"
        assert as_json(dataclasses.replace(PAGE, last_serial=None))["meta"] == {"api-version": "1.4"}
        assert as_json(dataclasses.replace(PAGE, last_serial=0))["meta"]["_last-serial"] == 0

    def test_versions_given_or_derived(self) -> None:
        assert as_json(PAGE)["versions"] == ["0.9", "1.0"]
        assert as_json(dataclasses.replace(PAGE, versions=("2.0", "1.0")))["versions"] == ["2.0", "1.0"]
        assert as_json(dataclasses.replace(PAGE, versions=()))["versions"] == []
        assert as_json(ProjectPage(name=N("demo"), files=()))["versions"] == []

    def test_file_order_kept(self) -> None:
        files = tuple(dataclasses.replace(SDIST, filename=f"demo-{v}.tar.gz") for v in ("3", "1", "2"))
        rendered = as_json(ProjectPage(name=N("demo"), files=files))["files"]
        assert [f["filename"] for f in rendered] == ["demo-3.tar.gz", "demo-1.tar.gz", "demo-2.tar.gz"]

    @pytest.mark.parametrize("value", [None, ""])
    def test_requires_python_omitted_when_unknown(self, value: str | None) -> None:
        assert "requires-python" not in json_file(requires_python=value)

    def test_size_and_upload_time_omitted_when_unknown(self) -> None:
        data = json_file(size=None, upload_time=None)
        assert "size" not in data
        assert "upload-time" not in data
        assert "upload-time" not in json_file(upload_time="")
        assert json_file(size=0)["size"] == 0

    @pytest.mark.parametrize(("yanked", "expected"), [(False, False), (True, True), ("why", "why"), ("", True)])
    def test_yanked(self, yanked: bool | str, expected: bool | str) -> None:
        assert json_file(yanked=yanked)["yanked"] == expected

    @pytest.mark.parametrize(
        ("core", "expected"),
        [
            (False, None),
            ({}, None),
            (True, True),
            ({"sha256": sha("m")}, {"sha256": sha("m")}),
            ({"sha512": "ab", "md5": "cd"}, {"md5": "cd", "sha512": "ab"}),
        ],
    )
    def test_core_metadata(self, core: bool | dict[str, str], expected: object) -> None:
        data = json_file(core_metadata=core)
        assert "dist-info-metadata" not in data  # PEP 714: that key breaks pip 22.3-23.1
        if expected is None:
            assert "core-metadata" not in data
            assert "data-dist-info-metadata" not in data
        else:
            assert data["core-metadata"] == expected
            assert data["data-dist-info-metadata"] == expected

    def test_hashes_sorted_for_determinism(self) -> None:
        one = dataclasses.replace(SDIST, hashes={"sha256": "aa", "md5": "bb"}, core_metadata={"z": "1", "a": "2"})
        two = dataclasses.replace(SDIST, hashes={"md5": "bb", "sha256": "aa"}, core_metadata={"a": "2", "z": "1"})
        assert one == two
        render_one = render_project_json(ProjectPage(name=N("demo"), files=(one,)))
        render_two = render_project_json(ProjectPage(name=N("demo"), files=(two,)))
        assert render_one == render_two
        assert b'"hashes":{"md5":"bb","sha256":"aa"}' in render_one

    def test_deterministic(self) -> None:
        assert render_project_json(PAGE) == render_project_json(dataclasses.replace(PAGE))

    def test_url_is_not_given_a_fragment_and_is_quoted(self) -> None:
        assert json_file(url="../../packages/x/demo-1.0+cpu.whl")["url"] == "../../packages/x/demo-1.0%2Bcpu.whl"
        assert "#" not in json_file()["url"]

    def test_utf8_output(self) -> None:
        page = ProjectPage(name=N("demo"), files=(dataclasses.replace(SDIST, yanked="caf\u00e9 \u2713"),))
        body = render_project_json(page)
        assert "caf\u00e9 \u2713".encode() in body
        body.decode("utf-8")

    def test_project_status(self) -> None:
        assert "project-status" not in as_json(PAGE)
        archived = dataclasses.replace(PAGE, status=ProjectStatus("archived"))
        assert as_json(archived)["project-status"] == {"status": "archived"}
        deprecated = dataclasses.replace(PAGE, status=ProjectStatus("deprecated", "use other"))
        assert as_json(deprecated)["project-status"] == {"status": "deprecated", "reason": "use other"}
        assert len(as_json(deprecated)["files"]) == 2

    @pytest.mark.parametrize("status", ["quarantined", "Quarantined"])
    def test_quarantined_offers_no_files(self, status: str) -> None:
        page = dataclasses.replace(PAGE, versions=("0.9", "1.0"), status=ProjectStatus(status, "malware"))
        data = as_json(page)
        assert data["files"] == []
        assert data["versions"] == []
        assert data["project-status"] == {"status": status, "reason": "malware"}
        assert data["meta"]["_last-serial"] == 42


# --- HTML project pages -------------------------------------------------------------------------------


class TestProjectHtml:
    def test_exact_text(self) -> None:
        expected = f"""<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="1.4">
    <title>Links for demo</title>
  </head>
  <body>
    <h1>Links for demo</h1>
    <a href="../../packages/aa/bb/cafe/demo-1.0-py3-none-any.whl#sha256={sha("wheel")}" \
data-requires-python="&lt;3,&gt;=2.7" data-core-metadata="sha256={sha("metadata")}" \
data-dist-info-metadata="sha256={sha("metadata")}">demo-1.0-py3-none-any.whl</a><br/>
    <a href="../../packages/cc/dd/beef/demo-0.9.tar.gz#sha256={sha("sdist")}" \
data-yanked="broken &amp; &lt;bad&gt;">demo-0.9.tar.gz</a><br/>
  </body>
</html>
<!--SERIAL 42-->
"""
        assert html_text(PAGE) == expected

    def test_requires_python_escaped(self) -> None:
        assert 'data-requires-python="&lt;3,&gt;=2.7"' in html_anchor(requires_python="<3,>=2.7")
        assert 'data-requires-python="&gt;=3.8"' in html_anchor(requires_python=">=3.8")
        assert 'data-requires-python="&quot;x&quot;&amp;&#x27;y&#x27;"' in html_anchor(requires_python="\"x\"&'y'")
        assert "data-requires-python" not in html_anchor(requires_python=None)
        assert "data-requires-python" not in html_anchor(requires_python="")

    @pytest.mark.parametrize(
        ("yanked", "expected"),
        [(False, None), (True, 'data-yanked=""'), ("", 'data-yanked=""'), ('a "b"', 'data-yanked="a &quot;b&quot;"')],
    )
    def test_yanked(self, yanked: bool | str, expected: str | None) -> None:
        anchor = html_anchor(yanked=yanked)
        if expected is None:
            assert "data-yanked" not in anchor
        else:
            assert expected in anchor

    @pytest.mark.parametrize(
        ("core", "expected"),
        [
            (False, None),
            ({}, None),
            (True, "true"),
            ({"sha256": sha("m"), "md5": "aa"}, f"sha256={sha('m')}"),
            ({"sha512": "bb", "md5": "aa"}, "md5=aa"),
        ],
    )
    def test_core_metadata(self, core: bool | dict[str, str], expected: str | None) -> None:
        anchor = html_anchor(core_metadata=core)
        if expected is None:
            assert "metadata" not in anchor
        else:
            assert f'data-core-metadata="{expected}" data-dist-info-metadata="{expected}"' in anchor

    @pytest.mark.parametrize(
        ("hashes", "fragment"),
        [
            ({"sha256": "aa", "md5": "bb"}, "#sha256=aa"),
            ({"sha512": "cc", "md5": "bb"}, "#md5=bb"),
            ({"md5": "bb", "sha512": "cc"}, "#md5=bb"),
            ({}, None),
        ],
    )
    def test_hash_fragment(self, hashes: dict[str, str], fragment: str | None) -> None:
        anchor = html_anchor(hashes=hashes, url="p/x.whl")
        if fragment is None:
            assert 'href="p/x.whl"' in anchor
        else:
            assert f'href="p/x.whl{fragment}"' in anchor

    def test_href_quoted_and_escaped(self) -> None:
        anchor = html_anchor(url="p/demo-1.0+cpu.whl?a=1&b=2", hashes={})
        assert 'href="p/demo-1.0%2Bcpu.whl?a=1&amp;b=2"' in anchor

    def test_filename_escaped(self) -> None:
        assert ">a&lt;b&gt;&amp;c.whl</a><br/>" in html_anchor(filename="a<b>&c.whl")

    def test_name_escaped(self) -> None:
        text = html_text(ProjectPage(name=N("a<b"), files=()))
        assert "<title>Links for a&lt;b</title>" in text
        assert "<h1>Links for a&lt;b</h1>" in text

    def test_serial_comment(self) -> None:
        assert html_text(PAGE).endswith("</html>\n<!--SERIAL 42-->\n")
        assert "SERIAL" not in html_text(dataclasses.replace(PAGE, last_serial=None))

    def test_project_status_metas(self) -> None:
        assert "pypi:project-status" not in html_text(PAGE)
        text = html_text(dataclasses.replace(PAGE, status=ProjectStatus("archived")))
        assert '<meta name="pypi:project-status" content="archived">' in text
        assert "project-status-reason" not in text
        text = html_text(dataclasses.replace(PAGE, status=ProjectStatus("deprecated", 'use "x" & y')))
        assert '<meta name="pypi:project-status-reason" content="use &quot;x&quot; &amp; y">' in text
        assert text.count("<a ") == 2

    def test_quarantined_offers_no_anchors(self) -> None:
        text = html_text(dataclasses.replace(PAGE, status=ProjectStatus("quarantined", "malware")))
        assert "<a " not in text
        assert '<meta name="pypi:project-status" content="quarantined">' in text
        assert '<meta name="pypi:project-status-reason" content="malware">' in text
        assert "<!--SERIAL 42-->" in text

    def test_deterministic(self) -> None:
        assert render_project_html(PAGE) == render_project_html(dataclasses.replace(PAGE))


def test_is_quarantined() -> None:
    assert not is_quarantined(PAGE)
    assert not is_quarantined(dataclasses.replace(PAGE, status=ProjectStatus("archived")))
    assert is_quarantined(dataclasses.replace(PAGE, status=ProjectStatus("quarantined")))
    assert is_quarantined(dataclasses.replace(PAGE, status=ProjectStatus(" QUARANTINED ")))


# --- round trips -----------------------------------------------------------------------------------------

MIRROR = "https://mirror.example/simple/demo/"
RICH = ProjectPage(
    name=N("demo"),
    files=(
        DistFile(
            filename="demo-1.0-py3-none-any.whl",
            url="https://mirror.example/packages/aa/bb/h/demo-1.0-py3-none-any.whl",
            hashes={"sha256": sha("a"), "md5": sha("a", "md5")},
            requires_python="<3,>=2.7",
            size=10,
            upload_time="2024-01-02T03:04:05.123456Z",
            yanked='reason with "quotes" & <tags> and caf\u00e9',
            core_metadata={"sha256": sha("m")},
        ),
        DistFile(
            filename="demo-1.0.tar.gz",
            url="https://mirror.example/packages/cc/dd/h/demo-1.0.tar.gz",
            hashes={"sha256": sha("b")},
            size=0,
            yanked=True,
            core_metadata=True,
        ),
        DistFile(filename="demo-0.1.zip", url="https://other.example/x/demo-0.1.zip", hashes={}),
    ),
    versions=("0.1", "1.0"),
    last_serial=7,
    status=ProjectStatus("deprecated", "use démo2"),
)


class TestRoundTrips:
    @pytest.mark.parametrize(
        "page",
        [
            RICH,
            dataclasses.replace(RICH, status=None, last_serial=None),
            dataclasses.replace(RICH, status=ProjectStatus("archived")),
            ProjectPage(name=N("empty"), files=(), versions=()),
        ],
    )
    def test_json(self, page: ProjectPage) -> None:
        assert parse_project_json(render_project_json(page), MIRROR) == page

    def test_json_without_versions_gets_derived_ones(self) -> None:
        parsed = parse_project_json(render_project_json(dataclasses.replace(RICH, versions=None)), MIRROR)
        assert parsed == RICH

    def test_json_relative_urls_resolve_against_the_page(self) -> None:
        parsed = parse_project_json(render_project_json(PAGE), MIRROR)
        assert [f.url for f in parsed.files] == [urljoin(MIRROR, f.url) for f in PAGE.files]

    def test_json_quarantined(self) -> None:
        page = dataclasses.replace(RICH, status=ProjectStatus("quarantined"))
        assert parse_project_json(render_project_json(page), MIRROR) == dataclasses.replace(page, files=(), versions=())

    @staticmethod
    def html_view(page: ProjectPage, base: str) -> ProjectPage:
        """What HTML can carry: one hash (sha256 first), one metadata hash; no size, upload time, versions."""

        def one(hashes: Any) -> dict[str, str]:
            if not hashes:
                return {}
            name = "sha256" if "sha256" in hashes else sorted(hashes)[0]
            return {name: hashes[name]}

        files = tuple(
            DistFile(
                filename=f.filename,
                url=urljoin(base, f.url),
                hashes=one(f.hashes),
                requires_python=f.requires_python,
                yanked=f.yanked,
                core_metadata=f.core_metadata if isinstance(f.core_metadata, bool) else one(f.core_metadata),
            )
            for f in page.files
        )
        return dataclasses.replace(page, files=files, versions=None)

    @pytest.mark.parametrize(
        "page",
        [
            RICH,
            PAGE,
            dataclasses.replace(RICH, status=None, last_serial=None),
            dataclasses.replace(RICH, status=ProjectStatus("archived")),
            ProjectPage(name=N("empty"), files=()),
        ],
    )
    def test_html(self, page: ProjectPage) -> None:
        assert parse_project_html(render_project_html(page), MIRROR, page.name) == self.html_view(page, MIRROR)

    def test_html_quarantined(self) -> None:
        page = dataclasses.replace(RICH, status=ProjectStatus("quarantined", "bad"))
        parsed = parse_project_html(render_project_html(page), MIRROR, "demo")
        assert parsed == ProjectPage(
            name=N("demo"), files=(), last_serial=7, status=ProjectStatus("quarantined", "bad")
        )

    def test_html_local_version_filename(self) -> None:
        dist = DistFile(
            filename="demo-1.0+cpu-py3-none-any.whl",
            url="../../packages/aa/demo-1.0+cpu-py3-none-any.whl",
            hashes={"sha256": sha("c")},
        )
        parsed = parse_project_html(render_project_html(ProjectPage(name=N("demo"), files=(dist,))), MIRROR, "demo")
        assert parsed.files[0].filename == "demo-1.0+cpu-py3-none-any.whl"
        assert parsed.files[0].url == "https://mirror.example/packages/aa/demo-1.0%2Bcpu-py3-none-any.whl"


# --- root index ---------------------------------------------------------------------------------------------


def entries(count: int) -> list[IndexEntry]:
    return [IndexEntry(N(f"project-{i}"), i if i % 3 else None) for i in range(count)]


def feed_all(parser: IndexJsonParser | IndexHtmlParser, chunks: Iterator[bytes]) -> tuple[list[IndexEntry], IndexMeta]:
    got: list[IndexEntry] = []
    for chunk in chunks:
        got.extend(parser.feed(chunk))
    return got, parser.close()


class TestIndexJson:
    def test_exact_bytes(self) -> None:
        body = b"".join(render_index_json([IndexEntry(N("a-b"), 3), IndexEntry(N("c"))], IndexMeta("1.0", 9)))
        assert body == (
            b'{"meta":{"api-version":"1.4","_last-serial":9},"projects":[{"name":"a-b","_last-serial":3},{"name":"c"}]}'
        )

    def test_empty_and_no_serial(self) -> None:
        assert b"".join(render_index_json([], IndexMeta())) == b'{"meta":{"api-version":"1.4"},"projects":[]}'

    def test_equivalent_to_json_dumps(self) -> None:
        items = entries(100)
        expected = {
            "meta": {"api-version": "1.4", "_last-serial": 5},
            "projects": [
                {"name": e.name} if e.serial is None else {"name": e.name, "_last-serial": e.serial} for e in items
            ],
        }
        assert json.loads(b"".join(render_index_json(items, IndexMeta(last_serial=5)))) == expected

    def test_chunked(self) -> None:
        chunks = list(render_index_json(entries(20_000), IndexMeta(last_serial=1)))
        assert len(chunks) > 5
        for chunk in chunks[:-1]:
            assert CHUNK_SIZE <= len(chunk) < CHUNK_SIZE + 200
        assert len(chunks[-1]) < CHUNK_SIZE + 200

    def test_streams_lazily(self) -> None:
        consumed = 0

        def generate() -> Iterator[IndexEntry]:
            nonlocal consumed
            for entry in entries(50_000):
                consumed += 1
                yield entry

        stream = render_index_json(generate(), IndexMeta())
        next(stream)
        assert 0 < consumed < 50_000

    def test_round_trip(self) -> None:
        items = entries(5000)
        got, meta = feed_all(IndexJsonParser(), render_index_json(items, IndexMeta("1.1", 77)))
        assert got == items
        assert meta == IndexMeta(API_VERSION, 77)


class TestIndexHtml:
    def test_exact_text(self) -> None:
        body = b"".join(render_index_html([IndexEntry(N("a-b"), 3), IndexEntry(N("c"))], 9)).decode()
        assert body == (
            "<!DOCTYPE html>\n<html>\n  <head>\n"
            '    <meta name="pypi:repository-version" content="1.4">\n'
            "    <title>Simple index</title>\n  </head>\n  <body>\n"
            '    <a href="a-b/">a-b</a><br/>\n'
            '    <a href="c/">c</a><br/>\n'
            "  </body>\n</html>\n<!--SERIAL 9-->\n"
        )

    def test_no_serial(self) -> None:
        assert b"SERIAL" not in b"".join(render_index_html(entries(3), None))

    def test_chunked(self) -> None:
        chunks = list(render_index_html(entries(20_000), 1))
        assert len(chunks) > 5
        for chunk in chunks[:-1]:
            assert CHUNK_SIZE <= len(chunk) < CHUNK_SIZE + 200

    def test_round_trip(self) -> None:
        items = entries(3000)
        got, meta = feed_all(IndexHtmlParser(), render_index_html(items, 77))
        assert got == [IndexEntry(e.name) for e in items]
        assert meta == IndexMeta(API_VERSION, 77)


def test_provenance_rendered_in_both_formats_and_read_back() -> None:
    sha = "a" * 64
    prov = Provenance("../../packages/aa/demo-1.0.tar.gz.provenance", {"sha256": "b" * 64})
    page = ProjectPage(
        NormalizedName("demo"),
        (DistFile("demo-1.0.tar.gz", "../../packages/aa/demo-1.0.tar.gz", {"sha256": sha}, provenance=prov),),
    )
    base = "https://mirror.example/simple/demo/"
    link = f"../../packages/aa/demo-1.0.tar.gz.provenance#sha256={'b' * 64}"
    assert json.loads(render_project_json(page))["files"][0]["provenance"] == link
    assert f'data-provenance="{link}"' in render_project_html(page).decode()
    expected = Provenance("https://mirror.example/packages/aa/demo-1.0.tar.gz.provenance", {"sha256": "b" * 64})
    assert parse_project_json(render_project_json(page), base).files[0].provenance == expected
    assert parse_project_html(render_project_html(page), base, "demo").files[0].provenance == expected
