"""Tests of mirror.core.parse: PEP 691 JSON / PEP 503 HTML pages and the streamed root index."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from packaging.utils import NormalizedName

from mirror.core import parse
from mirror.core.models import DistFile, IndexEntry, IndexMeta, ProjectPage, ProjectStatus, Provenance
from mirror.core.parse import (
    MAX_ELEMENT_SIZE,
    IndexHtmlParser,
    IndexJsonParser,
    derive_versions,
    parse_project_html,
    parse_project_json,
)
from mirror.errors import ProjectError, UpstreamError


def entry(name: str, serial: int | None = None) -> IndexEntry:
    return IndexEntry(NormalizedName(name), serial)


def sha(text: str, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, text.encode()).hexdigest()


BASE = "https://pypi.org/simple/requests/"
FILES = "https://files.pythonhosted.org/packages"
SDIST_URL = f"{FILES}/ba/bb/dfa0141a32d773c47e4dede1a617c59a23b74dd302e449cf85413fc96bc4/requests-0.2.0.tar.gz"
WHEEL_URL = (
    f"{FILES}/c3/20/748e38b466e0819491f0ce6e90ebe4184966ee304fe483e2c414b0f4ef07/requests-2.32.0-py3-none-any.whl"
)

# Shaped like https://pypi.org/simple/requests/ with Accept: application/vnd.pypi.simple.v1+json.
PYPI_JSON = {
    "alternate-locations": [],
    "files": [
        {
            "core-metadata": False,
            "data-dist-info-metadata": False,
            "filename": "requests-0.2.0.tar.gz",
            "hashes": {"sha256": sha("sdist")},
            "provenance": None,
            "requires-python": None,
            "size": 22135,
            "upload-time": "2011-02-14T20:52:34.467138Z",
            "url": SDIST_URL,
            "yanked": False,
        },
        {
            "core-metadata": {"sha256": sha("metadata")},
            "data-dist-info-metadata": {"sha256": sha("metadata")},
            "filename": "requests-2.32.0-py3-none-any.whl",
            "gpg-sig": False,
            "hashes": {"sha256": sha("wheel"), "blake2b_256": "c320748e"},
            "provenance": "https://pypi.org/integration/provenance/requests/2.32.0/requests-2.32.0-py3-none-any.whl",
            "requires-python": ">=3.8",
            "size": 63641,
            "upload-time": "2024-05-20T15:31:41.123456Z",
            "url": WHEEL_URL,
            "yanked": "Yanked due to conflicts with CVE-2024-35195 mitigation",
        },
    ],
    "meta": {"_last-serial": 23930592, "api-version": "1.4"},
    "name": "requests",
    "project-status": {"status": "active"},
    "versions": ["0.2.0", "2.32.0"],
}


def dumps(data: object) -> bytes:
    return json.dumps(data).encode()


def page(files: list[Any] | None = None, **top: Any) -> bytes:
    """A minimal JSON project page around ``files``; ``top`` overrides top-level keys."""
    data: dict[str, Any] = {"meta": {"api-version": "1.1"}, "name": "demo", "files": files or []}
    data.update(top)
    return dumps(data)


def jfile(**fields: Any) -> dict[str, Any]:
    """A minimal valid PEP 691 file; ``fields`` override (None-valued ``drop`` keys removed)."""
    data: dict[str, Any] = {
        "filename": "demo-1.0-py3-none-any.whl",
        "url": "https://files.example/demo-1.0-py3-none-any.whl",
        "hashes": {"sha256": sha("demo")},
    }
    data.update(fields)
    return data


def one_file(**fields: Any) -> DistFile:
    return parse_project_json(page([jfile(**fields)]), "https://example.org/simple/demo/").files[0]


def assert_bad_json(body: bytes, match: str, base: str = "https://example.org/simple/demo/") -> None:
    with pytest.raises(UpstreamError, match=match) as info:
        parse_project_json(body, base)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"invalid JSON project page {base}: ")


def assert_bad_file(match: str, **fields: Any) -> None:
    assert_bad_json(page([jfile(**fields)]), match)


def assert_dropped(parsed: ProjectPage, match: str) -> ProjectPage:
    """The page parsed, and a note says which field it left out and why."""
    assert any(re.search(match, line) for line in parsed.dropped), parsed.dropped
    return parsed


def dropped_file(match: str, **fields: Any) -> DistFile:
    return assert_dropped(parse_project_json(page([jfile(**fields)]), BASE), match).files[0]


# --- JSON project pages -----------------------------------------------------------------------------


class TestProjectJson:
    def test_pypi_shaped_page(self) -> None:
        parsed = parse_project_json(dumps(PYPI_JSON), BASE)
        assert parsed.name == "requests"
        assert parsed.last_serial == 23930592
        assert parsed.versions == ("0.2.0", "2.32.0")
        assert parsed.status == ProjectStatus("active")
        sdist, wheel = parsed.files
        assert sdist == DistFile(
            filename="requests-0.2.0.tar.gz",
            url=SDIST_URL,
            hashes={"sha256": sha("sdist")},
            requires_python=None,
            size=22135,
            upload_time="2011-02-14T20:52:34.467138Z",
            yanked=False,
            core_metadata=False,
        )
        assert wheel == DistFile(
            filename="requests-2.32.0-py3-none-any.whl",
            url=WHEEL_URL,
            hashes={"sha256": sha("wheel"), "blake2b_256": "c320748e"},
            requires_python=">=3.8",
            size=63641,
            upload_time="2024-05-20T15:31:41.123456Z",
            yanked="Yanked due to conflicts with CVE-2024-35195 mitigation",
            core_metadata={"sha256": sha("metadata")},
            provenance=Provenance(
                "https://pypi.org/integration/provenance/requests/2.32.0/requests-2.32.0-py3-none-any.whl", {}
            ),
        )
        assert wheel.sha256 == sha("wheel")
        assert wheel.metadata_hashes == {"sha256": sha("metadata")}

    def test_api_1_0_page(self) -> None:
        body = dumps(
            {
                "meta": {"api-version": "1.0"},
                "name": "Holy_Grail",
                "files": [
                    {
                        "filename": "holygrail-1.0.tar.gz",
                        "url": "https://example.com/files/holygrail-1.0.tar.gz",
                        "hashes": {"sha256": sha("h")},
                        "requires-python": ">=3.7",
                        "yanked": "Had a vulnerability",
                    },
                    {
                        "filename": "holygrail-1.0-py3-none-any.whl",
                        "url": "https://example.com/files/holygrail-1.0-py3-none-any.whl",
                        "hashes": {"sha256": sha("w")},
                        "requires-python": ">=3.7",
                        "dist-info-metadata": True,
                    },
                ],
            }
        )
        parsed = parse_project_json(body, "https://example.com/simple/holygrail/")
        assert parsed.name == "holy-grail"
        assert parsed.versions is None
        assert parsed.last_serial is None
        assert parsed.status is None
        assert [f.size for f in parsed.files] == [None, None]
        assert [f.upload_time for f in parsed.files] == [None, None]
        assert [f.yanked for f in parsed.files] == ["Had a vulnerability", False]
        assert [f.core_metadata for f in parsed.files] == [False, True]

    @pytest.mark.parametrize("version", ["1.0", "1.1", "1.3", "1.4", "1.99", " 1.2 "])
    def test_any_1x_api_version(self, version: str) -> None:
        assert parse_project_json(page(meta={"api-version": version}), BASE).files == ()

    @pytest.mark.parametrize("version", ["2.0", "0.9", "10.1"])
    def test_other_major_versions_rejected(self, version: str) -> None:
        assert_bad_json(page(meta={"api-version": version}), "unsupported api version")

    @pytest.mark.parametrize("version", ["1", "v1.0", "1.0.0", "", 1.1, "\u0661.\u0660", "9" * 20 + ".0"])
    def test_malformed_api_version_is_read_as_1_0(self, version: object) -> None:
        parsed = parse_project_json(page([jfile()], meta={"api-version": version}), BASE)
        assert_dropped(parsed, "meta.api-version is not a version number")
        assert len(parsed.files) == 1

    def test_missing_meta_or_api_version_is_api_1_0(self) -> None:
        for body in (dumps({"name": "demo", "files": []}), page(meta={}), page(meta={"api-version": None})):
            parsed = parse_project_json(body, BASE)
            assert parsed.files == () and parsed.dropped == ()
        assert_dropped(parse_project_json(page(meta=[]), BASE), "meta is not an object")

    @pytest.mark.parametrize(
        ("serial", "expected"),
        [(0, 0), (123, 123), (None, None), ("37059094", 37059094), (" 12 ", 12), ("0", 0), ("9" * 18, 10**18 - 1)],
    )
    def test_last_serial(self, serial: int | str | None, expected: int | None) -> None:
        assert parse_project_json(page(meta={"api-version": "1.1", "_last-serial": serial}), BASE).last_serial == (
            expected
        )

    @pytest.mark.parametrize("serial", [True, -1, "-1", "1e3", "0x10", "", "9" * 19, 10**18, 1.5, "\u0661", [1]])
    def test_unusable_last_serial_is_dropped(self, serial: object) -> None:
        parsed = parse_project_json(page([jfile()], meta={"api-version": "1.1", "_last-serial": serial}), BASE)
        assert_dropped(parsed, "meta._last-serial is not a non-negative integer")
        assert parsed.last_serial is None
        assert len(parsed.files) == 1

    @pytest.mark.parametrize(
        ("name", "normalized"), [("Django", "django"), ("zope.interface", "zope-interface"), ("A__b-.C", "a-b-c")]
    )
    def test_name_normalized(self, name: str, normalized: str) -> None:
        assert parse_project_json(page(name=name), BASE).name == normalized

    @pytest.mark.parametrize("name", ["", "../etc", "a b", "-x", "é", None, 5])
    def test_bad_name(self, name: object) -> None:
        assert_bad_json(page(name=name), "name")

    def test_missing_name(self) -> None:
        assert_bad_json(dumps({"meta": {"api-version": "1.0"}, "files": []}), "name must be a string")

    @pytest.mark.parametrize("files", [None, {}, "x", 1])
    def test_files_must_be_a_list(self, files: object) -> None:
        assert_bad_json(dumps({"meta": {"api-version": "1.0"}, "name": "demo", "files": files}), "files must be a list")

    def test_files_missing(self) -> None:
        assert_bad_json(dumps({"meta": {"api-version": "1.0"}, "name": "demo"}), "files must be a list")

    def test_file_must_be_an_object(self) -> None:
        assert_bad_json(page(["demo-1.0.tar.gz"]), r"files\[0\] must be an object")

    @pytest.mark.parametrize("filename", [None, "", 3, ["x"]])
    def test_bad_filename(self, filename: object) -> None:
        assert_bad_file(r"files\[0\].filename must be a non-empty string", filename=filename)

    @pytest.mark.parametrize("url", [None, "", "   ", 3])
    def test_bad_url(self, url: object) -> None:
        assert_bad_file("url must be a non-empty string", url=url)

    def test_unusable_url(self) -> None:
        assert_bad_file("unusable URL", url="http://[::1/x.whl")

    def test_relative_urls_resolved(self) -> None:
        base = "https://example.org/simple/demo/"
        assert one_file(url="../../packages/aa/demo-1.0-py3-none-any.whl").url == (
            "https://example.org/packages/aa/demo-1.0-py3-none-any.whl"
        )
        assert one_file(url="/files/x.whl").url == "https://example.org/files/x.whl"
        assert one_file(url="x.whl").url == base + "x.whl"
        assert one_file(url="//cdn.example/x.whl").url == "https://cdn.example/x.whl"

    def test_url_fragment_dropped(self) -> None:
        dist = one_file(url=f"https://f.example/x.whl#sha256={sha('other')}")
        assert dist.url == "https://f.example/x.whl"
        assert dist.hashes == {"sha256": sha("demo")}

    def test_hashes_lowercased_and_validated(self) -> None:
        dist = one_file(hashes={"SHA256": sha("demo").upper(), "Md5": sha("demo", "md5"), "blake3": "AbC"})
        assert dist.hashes == {"sha256": sha("demo"), "md5": sha("demo", "md5"), "blake3": "abc"}

    def test_empty_hashes_allowed(self) -> None:
        assert one_file(hashes={}).hashes == {}

    def test_same_hash_in_two_cases_is_fine(self) -> None:
        assert one_file(hashes={"sha256": sha("x"), "SHA256": sha("x").upper()}).hashes == {"sha256": sha("x")}

    @pytest.mark.parametrize(
        ("hashes", "match"),
        [
            ([], "hashes must be an object"),
            ("sha256=abc", "hashes must be an object"),
            (None, "hashes must be an object"),
            ({"sha256": 5}, "digest for 'sha256' must be a string"),
            ({"sha256": None}, "digest for 'sha256' must be a string"),
            ({"sha256": "xyz" + "0" * 61}, "sha256 digest is not hex"),
            ({"sha256": ""}, "sha256 digest is not hex"),
            ({"sha256": "0x" + "0" * 62}, "not hex"),
            ({"sha256": "abc"}, "sha256 digest has 3 hex digits, not 64"),
            ({"md5": sha("x")}, "md5 digest has 64 hex digits, not 32"),
            ({"": "abcd"}, "empty hash name"),
            ({"sha256": sha("x"), "SHA256": sha("y")}, "conflicting sha256 digests"),
            ({"blake3": "g"}, "blake3 digest is not hex"),
        ],
    )
    def test_bad_hashes(self, hashes: object, match: str) -> None:
        assert_bad_file(match, hashes=hashes)

    def test_hashes_required(self) -> None:
        data = jfile()
        del data["hashes"]
        assert_bad_json(page([data]), "hashes missing")

    @pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), (">=3.8", ">=3.8")])
    def test_requires_python(self, value: str | None, expected: str | None) -> None:
        assert one_file(**{"requires-python": value}).requires_python == expected

    def test_requires_python_absent(self) -> None:
        assert one_file().requires_python is None

    @pytest.mark.parametrize("value", [3, ["x"], True])
    def test_bad_requires_python_is_dropped(self, value: object) -> None:
        assert dropped_file("requires-python is not a string", **{"requires-python": value}).requires_python is None

    @pytest.mark.parametrize(("value", "expected"), [(0, 0), (63641, 63641), (None, None), (2**40, 2**40)])
    def test_size(self, value: int | None, expected: int | None) -> None:
        assert one_file(size=value).size == expected

    @pytest.mark.parametrize("value", [-1, True, False, 1.0, "12", [1]])
    def test_bad_size(self, value: object) -> None:
        assert_bad_file("size must be a non-negative integer", size=value)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [(None, None), ("", None), ("2024-01-02T03:04:05.123456Z", "2024-01-02T03:04:05.123456Z")],
    )
    def test_upload_time(self, value: str | None, expected: str | None) -> None:
        assert one_file(**{"upload-time": value}).upload_time == expected

    @pytest.mark.parametrize("value", [1704164645, {"t": 1}])
    def test_bad_upload_time_is_dropped(self, value: object) -> None:
        assert dropped_file("upload-time is not a string", **{"upload-time": value}).upload_time is None

    @pytest.mark.parametrize(
        ("value", "expected"),
        [(False, False), (True, True), ("", True), ("broken", "broken"), (None, False)],
    )
    def test_yanked(self, value: bool | str | None, expected: bool | str) -> None:
        assert one_file(yanked=value).yanked == expected

    def test_yanked_absent(self) -> None:
        assert one_file().yanked is False

    @pytest.mark.parametrize("value", [0, 1, ["x"], {"reason": "x"}])
    def test_bad_yanked_is_dropped(self, value: object) -> None:
        assert dropped_file("yanked is not a boolean or a string", yanked=value).yanked is False

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({}, False),
            ({"core-metadata": False}, False),
            ({"core-metadata": True}, True),
            ({"core-metadata": {}}, True),  # offered, no hashes known
            ({"core-metadata": {"SHA256": sha("m").upper()}}, {"sha256": sha("m")}),
            ({"core-metadata": None, "dist-info-metadata": True}, True),
            ({"dist-info-metadata": {"sha256": sha("m")}}, {"sha256": sha("m")}),
            ({"data-dist-info-metadata": {"sha256": sha("m")}}, {"sha256": sha("m")}),
            ({"core-metadata": False, "dist-info-metadata": True}, False),  # PEP 714: new key wins
            ({"core-metadata": {"sha256": sha("a")}, "dist-info-metadata": {"sha256": sha("b")}}, {"sha256": sha("a")}),
            ({"dist-info-metadata": False, "data-dist-info-metadata": True}, False),
        ],
    )
    def test_core_metadata(self, fields: dict[str, Any], expected: object) -> None:
        assert one_file(**fields).core_metadata == expected

    @pytest.mark.parametrize(
        ("fields", "match"),
        [
            ({"core-metadata": "true"}, "core-metadata is not a boolean or an object of hashes"),
            ({"core-metadata": 1}, "core-metadata is not a boolean or an object"),
            ({"dist-info-metadata": []}, "dist-info-metadata is not a boolean"),
            ({"core-metadata": {"sha256": "nothex"}}, "core-metadata: sha256 digest is not hex"),
        ],
    )
    def test_bad_core_metadata_is_dropped(self, fields: dict[str, Any], match: str) -> None:
        # Without usable metadata hashes the .metadata file is not mirrored; the distribution is.
        assert dropped_file(match, **fields).core_metadata is False

    def test_versions(self) -> None:
        assert parse_project_json(page(versions=["1.0", "2.0b1"]), BASE).versions == ("1.0", "2.0b1")
        assert parse_project_json(page(versions=[]), BASE).versions == ()
        assert parse_project_json(page(versions=None), BASE).versions is None
        assert parse_project_json(page(), BASE).versions is None

    @pytest.mark.parametrize("versions", ["1.0", {"1.0": 1}, [1.0], ["1.0", None]])
    def test_bad_versions_are_dropped(self, versions: object) -> None:
        assert assert_dropped(parse_project_json(page(versions=versions), BASE), "versions").versions is None

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            (None, None),
            ({"status": "active"}, ProjectStatus("active")),
            ({"status": "archived", "reason": "moved to foo"}, ProjectStatus("archived", "moved to foo")),
            ({"status": "Deprecated", "reason": ""}, ProjectStatus("deprecated")),
            ({"status": " quarantined ", "reason": None}, ProjectStatus("quarantined")),
            ({"status": "someday-new", "extra": 1}, ProjectStatus("someday-new")),
        ],
    )
    def test_project_status(self, status: Any, expected: ProjectStatus | None) -> None:
        assert parse_project_json(page(**{"project-status": status}), BASE).status == expected

    @pytest.mark.parametrize(
        ("status", "match"),
        [
            ("archived", "project-status must be an object"),
            ({}, "project-status status must be a non-empty string"),
            ({"status": ""}, "status must be a non-empty string"),
            ({"status": 1}, "status must be a non-empty string"),
            ({"status": "archived", "reason": 5}, "reason must be a string"),
        ],
    )
    def test_bad_project_status_is_dropped(self, status: Any, match: str) -> None:
        assert assert_dropped(parse_project_json(page(**{"project-status": status}), BASE), match).status is None

    def test_quarantined_page_keeps_its_files(self) -> None:
        parsed = parse_project_json(page([jfile()], **{"project-status": {"status": "quarantined"}}), BASE)
        assert len(parsed.files) == 1
        assert parsed.status == ProjectStatus("quarantined")

    def test_unknown_keys_ignored(self) -> None:
        body = page([jfile(**{"x-future": {"a": [1]}, "gpg-sig": True})], tracks=["x"], **{"alternate-locations": []})
        assert parse_project_json(body, BASE).files[0].filename == "demo-1.0-py3-none-any.whl"

    def test_file_order_preserved(self) -> None:
        names = [f"demo-{i}.tar.gz" for i in (3, 1, 2)]
        parsed = parse_project_json(page([jfile(filename=n) for n in names]), BASE)
        assert [f.filename for f in parsed.files] == names

    def test_error_names_the_file(self) -> None:
        assert_bad_json(page([jfile(), jfile(filename="bad.whl", size=-5)]), "file 'bad.whl': size")

    @pytest.mark.parametrize(
        ("body", "match"),
        [
            (b"", "Expecting value at line 1 column 1"),
            (b"{", "line 1 column 2"),
            (b"<html></html>", "Expecting value"),
            (b'{"meta": }', "Expecting value"),
            (b"\xff\xfe\xfd", "not UTF-8|Expecting value"),
            (b'{"meta": {"api-version": "1.0"}, "name": "x", "files": [], "n": NaN}', "NaN is not valid JSON"),
            (b'{"n": Infinity}', "Infinity is not valid JSON"),
            (b"[]", "top level must be an object, not list"),
            (b'"x"', "top level must be an object, not str"),
            (b"null", "top level must be an object, not NoneType"),
            (b"[" * 100_000 + b"]" * 100_000, "nesting too deep"),
            (b'{"size": ' + b"9" * 5000 + b"}", "digits|limit"),
        ],
    )
    def test_invalid_json(self, body: bytes, match: str) -> None:
        assert_bad_json(body, match)

    def test_bad_utf8_inside_string(self) -> None:
        assert_bad_json(b'{"name": "\xc3("}', "not UTF-8")

    def test_bom_accepted(self) -> None:
        assert parse_project_json(b"\xef\xbb\xbf" + page(), BASE).name == "demo"

    def test_error_is_a_project_error(self) -> None:
        with pytest.raises(ProjectError):
            parse_project_json(b"nope", BASE)

    def test_hostile_value_in_message_is_bounded(self) -> None:
        with pytest.raises(UpstreamError) as info:
            parse_project_json(page(name="x\n" * 10_000), BASE)
        assert len(str(info.value)) < 300
        assert "\n" not in str(info.value)


# --- HTML project pages -----------------------------------------------------------------------------

META_SHA = sha("metadata")
# Shaped like https://pypi.org/simple/requests/ as PEP 503 HTML.
PYPI_HTML = f"""<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="1.4">
    <meta name="pypi:project-status" content="archived">
    <meta name="pypi:project-status-reason" content="No longer &quot;maintained&quot;">
    <title>Links for requests</title>
  </head>
  <body>
    <h1>Links for requests</h1>
    <a href="{SDIST_URL}#sha256={sha("sdist")}" >requests-0.2.0.tar.gz</a><br />
    <a href="{WHEEL_URL}#sha256={sha("wheel")}" data-requires-python="&gt;=3.8" \
data-dist-info-metadata="sha256={META_SHA}" data-core-metadata="sha256={META_SHA}" \
data-yanked="Yanked due to conflicts with CVE-2024-35195 mitigation" \
data-provenance="https://pypi.org/integration/provenance/requests/2.32.0/x.whl">\
requests-2.32.0-py3-none-any.whl</a><br />
    <a href="https://files.pythonhosted.org/packages/old/requests-0.3.0.tar.gz#md5={sha("old", "md5")}" \
data-requires-python="&lt;3,&gt;=2.7" data-gpg-sig="false">requests-0.3.0.tar.gz</a><br />
  </body>
</html>
<!--SERIAL 23930592-->
""".encode()


def html_page(body: str, head: str = "") -> bytes:
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>".encode()


def anchors(body: str, head: str = "", base: str = "https://example.org/simple/demo/") -> tuple[DistFile, ...]:
    return parse_project_html(html_page(body, head), base, "demo").files


def one_anchor(attrs: str, href: str = "https://f.example/demo-1.0.tar.gz") -> DistFile:
    (dist,) = anchors(f'<a href="{href}" {attrs}>demo-1.0.tar.gz</a>')
    return dist


def assert_bad_html(body: bytes, match: str, name: str = "demo") -> None:
    base = "https://example.org/simple/demo/"
    with pytest.raises(UpstreamError, match=match) as info:
        parse_project_html(body, base, name)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"invalid HTML project page {base}: ")


class TestProjectHtml:
    def test_pypi_shaped_page(self) -> None:
        parsed = parse_project_html(PYPI_HTML, BASE, "Requests")
        assert parsed.name == "requests"
        assert parsed.versions is None
        assert parsed.last_serial == 23930592
        assert parsed.status == ProjectStatus("archived", 'No longer "maintained"')
        assert parsed.files == (
            DistFile(filename="requests-0.2.0.tar.gz", url=SDIST_URL, hashes={"sha256": sha("sdist")}),
            DistFile(
                filename="requests-2.32.0-py3-none-any.whl",
                url=WHEEL_URL,
                hashes={"sha256": sha("wheel")},
                requires_python=">=3.8",
                yanked="Yanked due to conflicts with CVE-2024-35195 mitigation",
                core_metadata={"sha256": META_SHA},
                provenance=Provenance("https://pypi.org/integration/provenance/requests/2.32.0/x.whl", {}),
            ),
            DistFile(
                filename="requests-0.3.0.tar.gz",
                url="https://files.pythonhosted.org/packages/old/requests-0.3.0.tar.gz",
                hashes={"md5": sha("old", "md5")},
                requires_python="<3,>=2.7",
            ),
        )

    def test_minimal_pep503_page(self) -> None:
        body = b"<a href='/packages/x/demo-1.0.tar.gz'>demo-1.0.tar.gz</a>"
        parsed = parse_project_html(body, "https://example.org/simple/demo/", "demo")
        assert parsed.files == (
            DistFile(filename="demo-1.0.tar.gz", url="https://example.org/packages/x/demo-1.0.tar.gz", hashes={}),
        )
        assert parsed.last_serial is None
        assert parsed.status is None

    def test_relative_links_resolved(self) -> None:
        (dist,) = anchors('<a href="../../packages/aa/bb/demo-1.0.tar.gz#sha256=' + sha("d") + '">x</a>')
        assert dist.url == "https://example.org/packages/aa/bb/demo-1.0.tar.gz"
        assert dist.hashes == {"sha256": sha("d")}

    def test_base_href(self) -> None:
        files = anchors(
            '<a href="demo-1.0.tar.gz">a</a><a href="/root/demo-2.0.tar.gz">b</a>',
            head='<base href="https://mirror.example/files/"><base href="https://ignored.example/">',
        )
        assert [f.url for f in files] == [
            "https://mirror.example/files/demo-1.0.tar.gz",
            "https://mirror.example/root/demo-2.0.tar.gz",
        ]

    def test_relative_base_href(self) -> None:
        (dist,) = anchors('<a href="demo-1.0.tar.gz">a</a>', head='<base href="../../pkgs/">')
        assert dist.url == "https://example.org/pkgs/demo-1.0.tar.gz"

    def test_base_without_href_ignored(self) -> None:
        (dist,) = anchors('<a href="demo-1.0.tar.gz">a</a>', head='<base target="_blank">')
        assert dist.url == "https://example.org/simple/demo/demo-1.0.tar.gz"

    def test_filename_is_the_last_url_segment_unquoted(self) -> None:
        (dist,) = anchors('<a href="/p/demo-1.0%2Bcpu-py3-none-any.whl?x=1#sha256=' + sha("d") + '">WRONG TEXT</a>')
        assert dist.filename == "demo-1.0+cpu-py3-none-any.whl"
        assert dist.url == "https://example.org/p/demo-1.0%2Bcpu-py3-none-any.whl?x=1"

    def test_non_file_anchors_skipped(self) -> None:
        files = anchors(
            '<a name="top">top</a><a href="../">up</a><a href="#frag">self</a><a href="demo-1.0.tar.gz">f</a>'
        )
        assert [f.filename for f in files] == ["demo-1.0.tar.gz"]

    def test_href_whitespace_and_entities(self) -> None:
        (dist,) = anchors('<a href="  /p/demo-1.0.tar.gz?a=1&amp;b=2  ">x</a>')
        assert dist.url == "https://example.org/p/demo-1.0.tar.gz?a=1&b=2"

    @pytest.mark.parametrize(
        ("fragment", "expected"),
        [
            ("", {}),
            (f"sha256={sha('d')}", {"sha256": sha("d")}),
            (f"SHA256={sha('d').upper()}", {"sha256": sha("d")}),
            (f"md5={sha('d', 'md5')}", {"md5": sha("d", "md5")}),
            (f"sha512={sha('d', 'sha512')}", {"sha512": sha("d", "sha512")}),
            ("egg=demo", {}),
            ("subdirectory=x&egg=demo", {}),
            (f"egg=demo&sha256={sha('d')}", {"sha256": sha("d")}),
            (f"sha256={sha('d')}&sha256={sha('e')}", {"sha256": sha("d")}),
            ("blake3=abcd", {}),  # not a hashlib algorithm: ignored like pip does
            ("sha256", {}),
        ],
    )
    def test_hash_fragment(self, fragment: str, expected: dict[str, str]) -> None:
        assert one_anchor("", href=f"/p/demo-1.0.tar.gz#{fragment}").hashes == expected

    @pytest.mark.parametrize(
        ("fragment", "match"),
        [
            ("sha256=nothex", "sha256 digest is not hex"),
            ("sha256=", "sha256 digest is not hex"),
            ("sha256=abcd", "sha256 digest has 4 hex digits, not 64"),
            ("md5=" + "0" * 64, "md5 digest has 64 hex digits"),
        ],
    )
    def test_bad_hash_fragment(self, fragment: str, match: str) -> None:
        assert_bad_html(html_page(f'<a href="/p/demo-1.0.tar.gz#{fragment}">x</a>'), match)

    @pytest.mark.parametrize(
        ("attrs", "expected"),
        [
            ("", None),
            ('data-requires-python=""', None),
            ("data-requires-python", None),
            ('data-requires-python="&gt;=3.8"', ">=3.8"),
            ('data-requires-python="&lt;3,&gt;=2.7"', "<3,>=2.7"),
            ('data-requires-python=">=3.6, !=3.7.*"', ">=3.6, !=3.7.*"),
            ("data-requires-python='&gt;=3.8' data-requires-python='&gt;=2'", ">=3.8"),  # first wins
        ],
    )
    def test_requires_python(self, attrs: str, expected: str | None) -> None:
        assert one_anchor(attrs).requires_python == expected

    @pytest.mark.parametrize(
        ("attrs", "expected"),
        [
            ("", False),
            ("data-yanked", True),
            ('data-yanked=""', True),
            ('data-yanked="broken build &amp; more"', "broken build & more"),
        ],
    )
    def test_yanked(self, attrs: str, expected: bool | str) -> None:
        assert one_anchor(attrs).yanked == expected

    @pytest.mark.parametrize(
        ("attrs", "expected"),
        [
            ("", False),
            ('data-core-metadata="true"', True),
            ('data-core-metadata="TRUE"', True),
            ('data-core-metadata="false"', False),
            (f'data-core-metadata="sha256={META_SHA}"', {"sha256": META_SHA}),
            (f'data-core-metadata="SHA256={META_SHA.upper()}"', {"sha256": META_SHA}),
            ('data-core-metadata="blake3=ABCD"', {"blake3": "abcd"}),
            (f'data-dist-info-metadata="sha256={META_SHA}"', {"sha256": META_SHA}),
            ('data-dist-info-metadata="true"', True),
            (f'data-core-metadata="false" data-dist-info-metadata="sha256={META_SHA}"', False),
            (f'data-core-metadata="true" data-dist-info-metadata="sha256={META_SHA}"', True),
            ('data-core-metadata="" data-dist-info-metadata="true"', True),  # empty: as if absent
            ("data-core-metadata", False),
        ],
    )
    def test_core_metadata(self, attrs: str, expected: object) -> None:
        assert one_anchor(attrs).core_metadata == expected

    @pytest.mark.parametrize(
        ("value", "match"),
        [
            ("yes", "data-core-metadata must be 'true' or '<hash>=<hex>'"),
            ("=abcd", "must be 'true' or"),
            ("sha256=zz", "data-core-metadata: sha256 digest is not hex"),
            ("sha256=abc", "sha256 digest has 3 hex digits"),
        ],
    )
    def test_bad_core_metadata_is_dropped(self, value: str, match: str) -> None:
        body = html_page(f'<a href="/p/demo-1.0.tar.gz" data-core-metadata="{value}">x</a>')
        parsed = assert_dropped(parse_project_html(body, BASE, "demo"), match)
        assert parsed.files[0].core_metadata is False

    def test_serial_comment(self) -> None:
        for comment, expected in [
            ("<!--SERIAL 42-->", 42),
            ("<!-- SERIAL 7 -->", 7),
            ("<!--SERIAL 1--><!--SERIAL 2-->", 1),
            ("<!--serial 3-->", None),
            ("<!--SERIAL x-->", None),
            ("<!--just a comment-->", None),
        ]:
            body = html_page('<a href="demo-1.0.tar.gz">x</a>').decode() + comment
            assert parse_project_html(body.encode(), BASE, "demo").last_serial == expected, comment

    @pytest.mark.parametrize(
        ("head", "expected"),
        [
            ("", None),
            ('<meta name="pypi:project-status" content="active">', ProjectStatus("active")),
            ('<meta name="pypi:project-status" content="Quarantined">', ProjectStatus("quarantined")),
            (
                '<meta name="pypi:project-status-reason" content="malware">'
                '<meta name="pypi:project-status" content="quarantined">',
                ProjectStatus("quarantined", "malware"),
            ),
            ('<meta name="pypi:project-status-reason" content="orphan reason">', None),
            ('<meta name="pypi:project-status">', None),
            (
                '<meta name="PyPI:Project-Status" content="archived">'
                '<meta name="pypi:project-status" content="deprecated">',
                ProjectStatus("archived"),
            ),
        ],
    )
    def test_project_status(self, head: str, expected: ProjectStatus | None) -> None:
        assert parse_project_html(html_page("", head), BASE, "demo").status == expected

    def test_empty_status_dropped(self) -> None:
        body = html_page("", '<meta name="pypi:project-status" content=" ">')
        assert assert_dropped(parse_project_html(body, BASE, "demo"), "status must be a non-empty").status is None

    def test_quarantined_page_keeps_its_files(self) -> None:
        head = '<meta name="pypi:project-status" content="quarantined">'
        parsed = parse_project_html(html_page('<a href="demo-1.0.tar.gz">x</a>', head), BASE, "demo")
        assert len(parsed.files) == 1

    @pytest.mark.parametrize("version", ["1.0", "1.4", "1.77"])
    def test_repository_version_accepted(self, version: str) -> None:
        head = f'<meta name="pypi:repository-version" content="{version}">'
        assert parse_project_html(html_page("", head), BASE, "demo").files == ()

    def test_other_major_repository_version_rejected(self) -> None:
        assert_bad_html(
            html_page("", '<meta name="pypi:repository-version" content="2.0">'), "unsupported api version 2.0"
        )

    def test_unreadable_repository_version_is_read_as_1_0(self) -> None:
        body = html_page('<a href="demo-1.0.tar.gz">x</a>', '<meta name="pypi:repository-version" content="one">')
        assert len(assert_dropped(parse_project_html(body, BASE, "demo"), "not a version number").files) == 1

    @pytest.mark.parametrize(("name", "expected"), [("Demo", "demo"), ("zope.interface", "zope-interface")])
    def test_name_argument_normalized(self, name: str, expected: str) -> None:
        assert parse_project_html(html_page(""), BASE, name).name == expected

    def test_bad_name_argument(self) -> None:
        assert_bad_html(html_page(""), "project name is not a valid project name", name="../x")

    def test_not_utf8(self) -> None:
        assert_bad_html(b"<a href='x\xff.whl'>x</a>", "not UTF-8")

    def test_bom_and_non_ascii(self) -> None:
        body = "\ufeff<a href='/p/d%C3%A9mo-1.0.tar.gz' data-yanked='café'>démo</a>".encode()
        (dist,) = parse_project_html(body, BASE, "demo").files
        assert dist.filename == "démo-1.0.tar.gz"
        assert dist.yanked == "café"

    @pytest.mark.parametrize("body", [b"<![foo[bar]]>", b"<a href=x.whl>x</a><![bogus[x]]>"])
    def test_malformed_declarations(self, body: bytes) -> None:
        assert_bad_html(body, "malformed HTML")

    def test_unusable_href(self) -> None:
        assert_bad_html(html_page('<a href="http://[::1/x.whl">x</a>'), "unusable link")

    def test_sloppy_html_still_parses(self) -> None:
        body = b"<a href=demo-1.0.tar.gz>one<a href=demo-2.0.tar.gz>two<p><b>unclosed"
        assert [f.filename for f in parse_project_html(body, BASE, "demo").files] == [
            "demo-1.0.tar.gz",
            "demo-2.0.tar.gz",
        ]

    def test_script_content_ignored(self) -> None:
        body = html_page('<script>document.write("<a href=evil-1.0.tar.gz>")</script><a href="demo-1.0.tar.gz">x</a>')
        assert [f.filename for f in parse_project_html(body, BASE, "demo").files] == ["demo-1.0.tar.gz"]


# --- derive_versions -----------------------------------------------------------------------------------


def dist(filename: str) -> DistFile:
    return DistFile(filename=filename, url=f"https://f.example/{filename}", hashes={})


class TestDeriveVersions:
    def test_wheels_and_sdists(self) -> None:
        files = [
            dist("demo-1.10.tar.gz"),
            dist("demo-1.9-py3-none-any.whl"),
            dist("demo-1.10-cp312-cp312-manylinux_2_17_x86_64.whl"),
            dist("demo-2.0b1.zip"),
            dist("demo-1.0+cpu-py3-none-any.whl"),
            dist("demo-1.0.post1.tar.gz"),
            dist("demo-1.0.dev3.tar.gz"),
        ]
        assert derive_versions(files) == ("1.0.dev3", "1.0+cpu", "1.0.post1", "1.9", "1.10", "2.0b1")

    def test_unparseable_and_other_kinds_skipped(self) -> None:
        files = [
            dist("demo-1.0-py2.7.egg"),
            dist("demo-1.0.win32.exe"),
            dist("demo-1.0.tar.bz2"),
            dist("demo-latest.tar.gz"),
            dist("not-a-wheel.whl"),
            dist("demo-1.0-py3-none-any.whl.metadata"),
            dist("demo-3.0.tar.gz"),
        ]
        assert derive_versions(files) == ("3.0",)

    def test_versions_are_normalized_and_unique(self) -> None:
        files = [dist("demo-1.0RC1.tar.gz"), dist("demo-1.0rc1-py3-none-any.whl"), dist("Demo-1.0.0.tar.gz")]
        assert derive_versions(files) == ("1.0rc1", "1.0.0")

    def test_equal_versions_in_different_spellings_sort_deterministically(self) -> None:
        files = [dist("demo-1.0.0.tar.gz"), dist("demo-1.0.tar.gz")]
        assert derive_versions(files) == derive_versions(reversed(files)) == ("1.0", "1.0.0")

    def test_empty(self) -> None:
        assert derive_versions([]) == ()
        assert derive_versions(iter([])) == ()


# --- root index: JSON --------------------------------------------------------------------------------

ROOT_JSON = """{
  "meta": {"_last-serial": 24000000, "api-version": "1.4", "note": "caf\u00e9 \u2713 \U0001f40d"},
  "projects": [
    {"_last-serial": 3075854, "name": "0"},
    {"name": "Django", "_last-serial": 23999999},
    {"name": "zope.interface"},
    {"name": "a_b", "_last-serial": null, "x-\u00e9t\u00e9": ["\U0001f40d", {"}": "]"}]}
  ],
  "x-unknown": {"nested": ["\\"}]", "\u00fc\u00f1\u00ee"], "n": -12.5e3, "t": true}
}
""".encode()
ROOT_JSON_ENTRIES = [
    entry("0", 3075854),
    entry("django", 23999999),
    entry("zope-interface", None),
    entry("a-b", None),
]
ROOT_JSON_META = IndexMeta(api_version="1.4", last_serial=24000000)


def parse_root(parser_type: Callable[[], Any], chunks: list[bytes]) -> tuple[list[IndexEntry], Any]:
    parser = parser_type()
    entries: list[IndexEntry] = []
    for chunk in chunks:
        entries.extend(parser.feed(chunk))
    return entries, parser.close()


def assert_bad_root_json(chunks: list[bytes], match: str) -> None:
    with pytest.raises(UpstreamError, match=match) as info:
        parse_root(IndexJsonParser, chunks)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("invalid JSON root index: ")


class TestIndexJson:
    def test_sample_has_multibyte_utf8(self) -> None:
        assert len(ROOT_JSON) > len(ROOT_JSON.decode())

    def test_whole_document(self) -> None:
        assert parse_root(IndexJsonParser, [ROOT_JSON]) == (ROOT_JSON_ENTRIES, ROOT_JSON_META)

    def test_every_split_position(self) -> None:
        for i in range(len(ROOT_JSON) + 1):
            result = parse_root(IndexJsonParser, [ROOT_JSON[:i], ROOT_JSON[i:]])
            assert result == (ROOT_JSON_ENTRIES, ROOT_JSON_META), i

    def test_every_pair_of_split_positions(self) -> None:
        body = json.dumps(
            {
                "projects": [{"name": "A", "_last-serial": 12}, {"name": "b.c"}],
                "meta": {"api-version": "1.0", "é": "✓"},
            },
            ensure_ascii=False,
        ).encode()
        expected = ([entry("a", 12), entry("b-c")], IndexMeta("1.0", None))
        for i in range(len(body) + 1):
            for j in range(i, len(body) + 1):
                assert parse_root(IndexJsonParser, [body[:i], body[i:j], body[j:]]) == expected, (i, j)

    def test_byte_by_byte(self) -> None:
        assert parse_root(IndexJsonParser, [bytes([b]) for b in ROOT_JSON]) == (ROOT_JSON_ENTRIES, ROOT_JSON_META)

    def test_entries_are_yielded_as_they_complete(self) -> None:
        parser = IndexJsonParser()
        head = b'{"meta": {"api-version": "1.1"}, "projects": [{"name": "a"}, {"name": "b"}, {"na'
        assert parser.feed(head) == [entry("a"), entry("b")]
        assert parser.feed(b'me": "c"}') == [entry("c")]
        assert parser.feed(b"]}") == []
        assert parser.close() == IndexMeta("1.1", None)

    def test_keys_in_any_order_and_empty_projects(self) -> None:
        body = b' \n{"projects":[],"x":null,"meta":{"api-version":"1.0","_last-serial":0}}\r\n\t'
        assert parse_root(IndexJsonParser, [body]) == ([], IndexMeta("1.0", 0))

    def test_compact_and_pretty_dumps(self) -> None:
        data = {"meta": {"api-version": "1.1", "_last-serial": 9}, "projects": [{"name": "Foo", "_last-serial": 1}]}
        expected = ([entry("foo", 1)], IndexMeta("1.1", 9))
        for body in (json.dumps(data, separators=(",", ":")), json.dumps(data, indent=4)):
            assert parse_root(IndexJsonParser, [body.encode()]) == expected

    def test_escaped_names(self) -> None:
        body = b'{"meta":{"api-version":"1.0"},"projects":[{"name":"\\u0046oo\\u005fBar"}]}'
        assert parse_root(IndexJsonParser, [body])[0] == [entry("foo-bar")]

    def test_tricky_strings_at_every_split(self) -> None:
        body = (
            b'{"x": "a\\\\\\"}]{[\\u00e9", "meta": {"api-version": "1.0", "k\\"}": "\\\\"}, '
            b'"projects": [{"name": "x", "junk": "}}]]\\"{{"}], "y": 12345}'
        )
        expected = ([entry("x")], IndexMeta("1.0", None))
        for i in range(len(body) + 1):
            assert parse_root(IndexJsonParser, [body[:i], body[i:]]) == expected, i

    def test_bom_accepted(self) -> None:
        body = b"\xef\xbb\xbf" + b'{"meta":{"api-version":"1.0"},"projects":[]}'
        for i in range(4):
            assert parse_root(IndexJsonParser, [body[:i], body[i:]]) == ([], IndexMeta("1.0", None))

    def test_truncated_anywhere_is_an_error(self) -> None:
        for i in range(len(ROOT_JSON.rstrip())):
            with pytest.raises(UpstreamError, match="invalid JSON root index"):
                parse_root(IndexJsonParser, [ROOT_JSON[:i]])

    @pytest.mark.parametrize(
        ("body", "match"),
        [
            (b"", "empty document: expected '{'"),
            (b"   ", "empty document"),
            (b"[]", r"expected '\{' at character 0, found '\['"),
            (b'{"meta": {"api-version": "1.0"}', "document ends early: expected ',' or '}'"),
            (b'{"meta": {"api-version": "1.0"}, "projects": [', "expected a project or ']'"),
            (b'{"meta": {"api-version": "1.0"}, "projects": [{"name": "a"}', "expected ',' or ']' in projects"),
            (b'{"meta": {"api-version": "1.0"}, "projects": [{"name": "a"},', "expected a project"),
            (b'{"meta": {"api-version": "1.0"}, "projects": [{"name": "a', "expected a project"),
            (b'{"projects": []', "expected ',' or '}'"),
            (b'{"projects": [], "x": 12', "document ends early: expected a value"),
            (b'{"projects": [], ', "expected a key"),
            (b'{"projects"', "expected ':'"),
            (b'{"projects": ', "expected a value"),
            (b'{"meta": {"api-version": "1.0"}, "projects": []} x', "expected the end of the document"),
            (b'{"meta": {"api-version": "1.0"}, "projects": []}{}', "expected the end of the document"),
            (b'{"meta": {"api-version": "1.0"}}', "projects missing"),
            (b"{}", "projects missing"),
            (b'{"meta": {"api-version": "2.0"}, "projects": []}', "unsupported api version 2.0"),
            (b'{"meta": {"api-version": "1.0"}, "meta": {"api-version": "1.0"}, "projects": []}', "meta given twice"),
            (b'{"projects": [], "projects": []}', "projects given twice"),
            (b'{"projects": {}}', "projects must be a list at character 13"),
            (b'{"projects": null}', "projects must be a list"),
            (b'{"projects": ["a"]}', r"projects\[0\] must be an object"),
            (b'{"projects": [{"name": "a"}, 5]}', r"projects\[1\] must be an object"),
            (b'{"projects": [{"name": "a"},]}', r"projects\[1\] must be an object at character 28"),
            (b'{"projects": [{"name": "a"} {"name": "b"}]}', "expected ',' or ']' in projects"),
            (b'{"projects": [,]}', r"projects\[0\] must be an object"),
            (b'{"projects": [{"name": nope}]}', "Expecting value at character 23"),
            (b'{"projects": [{"name": "a" "b"}]}', "Expecting ',' delimiter"),
            (b'{"x": tru, "projects": []}', "Expecting value at character 6"),
            (b'{"x": NaN, "projects": []}', "NaN is not valid JSON"),
            (b'{"x": 1e, "projects": []}', "Extra data|Expecting|expected"),
            (b'{"x": , "projects": []}', "Expecting value"),
            (b'{"x": "\\q", "projects": []}', "Invalid \\\\escape"),
            (b'{"x": ' + b"[" * 50_000 + b"]" * 50_000 + b', "projects": []}', "nesting too deep"),
            (b'{"x": ' + b"9" * 5000 + b', "projects": []}', "digits|limit"),
            (b'{x: 1, "projects": []}', "expected a key or '}'"),
            (b'{"a" 1}', "expected ':'"),
            (b"\xff", "not UTF-8"),
            (b'{"projects": [{"name": "a\xc3"}]}', "not UTF-8"),
            (b'{"meta":{"api-version":"1.0"},"projects":[]}\xe2\x9c', "ends inside a UTF-8 sequence"),
        ],
    )
    def test_invalid_documents(self, body: bytes, match: str) -> None:
        assert_bad_root_json([body], match)

    def test_invalid_element_detected_without_more_data(self) -> None:
        parser = IndexJsonParser()
        parser.feed(b'{"projects": [{"name": "a"}, {"name": ')
        with pytest.raises(UpstreamError, match="Expecting value"):
            parser.feed(b"oops}")  # complete but invalid: no need to wait for more data

    def test_huge_element_rejected_when_fed_at_once(self) -> None:
        big = b'{"projects": [{"name": "' + b"a" * (MAX_ELEMENT_SIZE + 10) + b'"}]}'
        assert_bad_root_json([big], "element at character 14 larger than 1 MiB")

    def test_huge_element_rejected_while_streaming(self) -> None:
        parser = IndexJsonParser()
        parser.feed(b'{"projects": [{"name": "')
        with pytest.raises(UpstreamError, match="larger than 1 MiB"):
            for _ in range(20):
                parser.feed(b"a" * 65536)

    def test_huge_number_rejected_when_fed_at_once(self) -> None:
        big = b'{"x": ' + b"1" * (MAX_ELEMENT_SIZE + 1) + b', "projects": []}'
        assert_bad_root_json([big], "element at character 6 larger than 1 MiB")

    def test_huge_unknown_value_rejected(self) -> None:
        parser = IndexJsonParser()
        parser.feed(b'{"x": [')
        with pytest.raises(UpstreamError, match="larger than 1 MiB"):
            for _ in range(40):
                parser.feed(b"1, " * 10_000)

    def test_huge_number_streamed_rejected(self) -> None:
        parser = IndexJsonParser()
        parser.feed(b'{"x": 1')
        with pytest.raises(UpstreamError, match="larger than 1 MiB"):
            for _ in range(20):
                parser.feed(b"1" * 65536)

    def test_element_just_under_the_limit_is_fine(self) -> None:
        meta = {"api-version": "1.0", "pad": "x" * (MAX_ELEMENT_SIZE - 100)}
        body = json.dumps({"meta": meta, "projects": [{"name": "a"}]}).encode()
        chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
        assert parse_root(IndexJsonParser, chunks) == ([entry("a")], IndexMeta("1.0", None))

    def test_memory_stays_bounded_while_streaming(self) -> None:
        parser = IndexJsonParser()
        parser.feed(b'{"meta": {"api-version": "1.0"}, "projects": [')
        item = b'{"name": "project-with-a-long-name", "_last-serial": 123456789}, \n'
        count = 0
        for _ in range(200):
            count += len(parser.feed(item * 1000))
            assert len(parser._buf) < 200  # only the unconsumed tail is kept
        assert count == 200 * 1000
        assert len(parser.feed(b"  " * 100_000 + b'{"name": "last"}')) == 1
        parser.feed(b"]}")
        assert parser.close() == IndexMeta("1.0", None)

    def test_whitespace_is_not_accumulated(self) -> None:
        parser = IndexJsonParser()
        parser.feed(b"{")
        for _ in range(50):
            parser.feed(b" " * 65536)
            assert len(parser._buf) == 0

    def test_large_document_many_chunk_sizes(self) -> None:
        projects = [{"name": f"Project_{i}.x", "_last-serial": i} for i in range(3000)]
        body = json.dumps({"projects": projects, "meta": {"api-version": "1.1", "_last-serial": 3000}}).encode()
        expected = [entry(f"project-{i}-x", i) for i in range(3000)]
        for size in (1, 7, 64, 1000, 65536):
            if size == 1:
                body_part = body[:5000]  # byte-by-byte over the whole thing is slow; the head suffices
                parser = IndexJsonParser()
                got = [e for b in body_part for e in parser.feed(bytes([b]))]
                got += parser.feed(body[5000:])
                assert got == expected
                assert parser.close() == IndexMeta("1.1", 3000)
                continue
            chunks = [body[i : i + size] for i in range(0, len(body), size)]
            assert parse_root(IndexJsonParser, chunks) == (expected, IndexMeta("1.1", 3000))

    def test_feed_after_close(self) -> None:
        parser = IndexJsonParser()
        parser.feed(b'{"meta":{"api-version":"1.0"},"projects":[]}')
        parser.close()
        with pytest.raises(RuntimeError):
            parser.feed(b" ")
        with pytest.raises(RuntimeError):
            parser.close()

    def test_error_is_sticky(self) -> None:
        parser = IndexJsonParser()
        with pytest.raises(UpstreamError) as first:
            parser.feed(b"[")
        with pytest.raises(UpstreamError) as again:
            parser.feed(b"{}")
        assert again.value is first.value
        with pytest.raises(UpstreamError):
            parser.close()

    def test_duplicate_names_are_passed_through(self) -> None:
        body = b'{"meta":{"api-version":"1.0"},"projects":[{"name":"Foo"},{"name":"foo"}]}'
        assert parse_root(IndexJsonParser, [body])[0] == [entry("foo"), entry("foo")]


# --- root index: HTML --------------------------------------------------------------------------------

ROOT_HTML = """<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="1.1">
    <title>Simple index</title>
  </head>
  <body>
    <!-- caf\u00e9 \u2713 \U0001f40d -->
    <a href="/simple/0/">0</a>
    <a href="/simple/django/">Django</a>
    <a href="/simple/zope-interface/">zope.interface</a>
    <a href="/simple/a-b/"></a>
    <a href="/simple/x%2Ey/">  </a>
    <a name="no-href">ignored</a>
    <a href="/">\n</a>
    <a href="/simple/caf%C3%A9s/" title="caf\u00e9">cafes</a>
  </body>
</html>
<!--SERIAL 24000000-->
""".encode()
ROOT_HTML_ENTRIES = [
    entry("0"),
    entry("django"),
    entry("zope-interface"),
    entry("a-b"),
    entry("x-y"),
    entry("cafes"),
]
ROOT_HTML_META = IndexMeta(api_version="1.1", last_serial=24000000)


def assert_bad_root_html(chunks: list[bytes], match: str) -> None:
    with pytest.raises(UpstreamError, match=match) as info:
        parse_root(IndexHtmlParser, chunks)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("invalid HTML root index: ")


class TestIndexHtml:
    def test_whole_document(self) -> None:
        assert parse_root(IndexHtmlParser, [ROOT_HTML]) == (ROOT_HTML_ENTRIES, ROOT_HTML_META)

    def test_every_split_position(self) -> None:
        for i in range(len(ROOT_HTML) + 1):
            assert parse_root(IndexHtmlParser, [ROOT_HTML[:i], ROOT_HTML[i:]]) == (
                ROOT_HTML_ENTRIES,
                ROOT_HTML_META,
            ), i

    def test_byte_by_byte(self) -> None:
        assert parse_root(IndexHtmlParser, [bytes([b]) for b in ROOT_HTML]) == (ROOT_HTML_ENTRIES, ROOT_HTML_META)

    def test_entries_are_yielded_as_they_complete(self) -> None:
        parser = IndexHtmlParser()
        assert parser.feed(b'<html><body><a href="a/">a</a><a href="b/">b</a><a href="c/">c') == [
            entry("a"),
            entry("b"),
        ]
        assert parser.feed(b"</a></body></html>") == [entry("c")]
        assert parser.close() == IndexMeta("1.0", None)

    def test_minimal_pep503_root(self) -> None:
        body = (
            b'<!DOCTYPE html><html><body><a href="/frob/">frob</a>'
            b'<a href="/spamspamspam/">spamspamspam</a></body></html>'
        )
        assert parse_root(IndexHtmlParser, [body]) == (
            [entry("frob"), entry("spamspamspam")],
            IndexMeta("1.0", None),
        )

    def test_unclosed_anchors(self) -> None:
        body = b"<html><body><a href=a/>a<br><a href=b/>b</body></html>"
        assert parse_root(IndexHtmlParser, [body])[0] == [entry("a"), entry("b")]

    @pytest.mark.parametrize(
        ("body", "match"),
        [
            (b"", "document ends early"),
            (b'<html><body><a href="a/">a</a>', r"no </body> or </html>"),
            (b'<html><body><a href="a/">a</a></body></html><a href="b/">b', "document ends early"),
            (
                b'<html><head><meta name="pypi:repository-version" content="2.0"></head></html>',
                "unsupported api version 2.0",
            ),
            (b"<html>\xff</html>", "not UTF-8"),
            (b"<html></html>\xe2\x9c", "ends inside a UTF-8 sequence"),
            (b"<![foo[bar]]></html>", "malformed HTML"),
            (b'<a href="http://[::1/">\n</a></html>', "unusable link"),
        ],
    )
    def test_invalid_documents(self, body: bytes, match: str) -> None:
        assert_bad_root_html([body], match)

    def test_unterminated_tag_is_bounded(self) -> None:
        parser = IndexHtmlParser()
        parser.feed(b'<html><body><a href="')
        with pytest.raises(UpstreamError, match="unterminated markup larger than 1 MiB"):
            for _ in range(20):
                parser.feed(b"x" * 65536)

    def test_anchor_text_is_bounded(self) -> None:
        parser = IndexHtmlParser()
        parser.feed(b'<html><body><a href="x/">')
        with pytest.raises(UpstreamError, match="anchor text too long"):
            for _ in range(20):
                parser.feed((b"x" * 1000 + b"<b>y</b>") * 100)

    def test_large_root(self) -> None:
        body = (
            b"<html><body>\n"
            + b"".join(f'<a href="/simple/p-{i}/">P_{i}</a><br/>\n'.encode() for i in range(3000))
            + b"</body></html>"
        )
        chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)]
        assert parse_root(IndexHtmlParser, chunks) == ([entry(f"p-{i}") for i in range(3000)], IndexMeta())

    def test_feed_after_close_and_sticky_errors(self) -> None:
        parser = IndexHtmlParser()
        parser.feed(b"<html></html>")
        parser.close()
        with pytest.raises(RuntimeError):
            parser.feed(b"")
        broken = IndexHtmlParser()
        with pytest.raises(UpstreamError) as first:
            broken.feed(b"\xff")
        with pytest.raises(UpstreamError) as again:
            broken.close()
        assert again.value is first.value


@pytest.mark.parametrize(
    ("item", "why"),
    [
        (b"{}", r"projects\[1\].name must be a string, not NoneType"),
        (b'{"name": 5}', r"projects\[1\].name must be a string, not int"),
        (b'{"name": "../etc"}', r"projects\[1\].name is not a valid project name"),
        (b'{"name": ""}', "not a valid project name"),
        (b'{"name": "\xc3\xa9t\xc3\xa9"}', "not a valid project name"),
    ],
)
def test_root_json_skips_a_bad_entry_and_keeps_the_rest(item: bytes, why: str) -> None:
    body = b'{"meta": {"api-version": "1.4"}, "projects": [{"name": "x", "_last-serial": 1}, ' + item
    body += b', {"name": "y", "_last-serial": 2}]}'
    parser = parse.IndexJsonParser()
    entries = parser.feed(body)
    parser.close()
    assert [e.name for e in entries] == ["x", "y"]
    assert parser.skipped.count == 1
    assert re.search(why, parser.skipped.examples[0])


@pytest.mark.parametrize("anchor", [b'<a href="../x/">../x</a>', b'<a href="x/">a b</a>'])
def test_root_html_skips_a_bad_name_and_keeps_the_rest(anchor: bytes) -> None:
    parser = parse.IndexHtmlParser()
    entries = parser.feed(b'<html><body><a href="x/">x</a>' + anchor + b'<a href="y/">y</a></body></html>')
    parser.close()
    assert [e.name for e in entries] == ["x", "y"]
    assert parser.skipped.count == 1 and "not a valid project name" in parser.skipped.examples[0]


def test_skipped_keeps_a_bounded_number_of_examples() -> None:
    skipped = parse.Skipped()
    for i in range(1000):
        skipped.note(f"bad {i}")
    assert skipped.count == 1000 and len(skipped.examples) == parse.Skipped.KEEP


@pytest.mark.parametrize("parser_type", [IndexJsonParser, IndexHtmlParser])
def test_root_names_no_directory_can_hold_are_skipped(parser_type: Callable[[], Any]) -> None:
    """A 300-character name used to reach the page writer and stop the whole run with ENAMETOOLONG."""
    names = ["ok", "x" * 300, "Y" * 256, "z" * 255]
    if parser_type is IndexJsonParser:
        body = json.dumps({"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}).encode()
    else:
        body = b"<html><body>" + b"".join(f'<a href="/simple/{n}/">{n}</a>'.encode() for n in names) + b"</body></html>"
    parser = parser_type()
    got = parser.feed(body)
    parser.close()
    assert [e.name for e in got] == ["ok", "z" * 255]
    assert parser.skipped.count == 2
    assert "longer than 255 characters" in parser.skipped.examples[0]


def test_root_json_reads_serials_given_as_decimal_strings() -> None:
    body = b'{"meta": {"api-version": "1.1", "_last-serial": "37059094"}, "projects": ['
    body += b'{"name": "a", "_last-serial": "12"}, {"name": "b", "_last-serial": 7}]}'
    parser = parse.IndexJsonParser()
    entries = parser.feed(body)
    assert parser.close() == IndexMeta("1.1", 37059094)
    assert entries == [entry("a", 12), entry("b", 7)]
    assert parser.dropped.count == 0


@pytest.mark.parametrize(
    ("item", "why"),
    [
        (b'{"name": "a", "_last-serial": -1}', r"projects\[1\]._last-serial is not a non-negative integer"),
        (b'{"name": "a", "_last-serial": true}', "_last-serial is not a non-negative integer"),
        (b'{"name": "a", "_last-serial": 1.5}', "_last-serial"),
        (b'{"name": "a", "_last-serial": "1e9"}', "_last-serial"),
        (b'{"name": "a", "_last-serial": 1000000000000000000000}', "_last-serial"),
    ],
)
def test_root_json_drops_an_unusable_serial_and_keeps_the_entry(item: bytes, why: str) -> None:
    body = b'{"meta": {"api-version": "1.4"}, "projects": [{"name": "x", "_last-serial": 1}, ' + item + b"]}"
    parser = parse.IndexJsonParser()
    entries = parser.feed(body)
    parser.close()
    assert entries == [entry("x", 1), entry("a", None)]
    assert parser.skipped.count == 0
    assert parser.dropped.count == 1 and re.search(why, parser.dropped.examples[0])


@pytest.mark.parametrize(
    ("meta", "expected", "why"),
    [
        (b"", IndexMeta("1.0", None), "meta missing"),
        (b'"meta": {}, ', IndexMeta("1.0", None), None),
        (b'"meta": [], ', IndexMeta("1.0", None), "meta is not an object"),
        (b'"meta": {"api-version": "one"}, ', IndexMeta("1.0", None), "not a version number"),
        (b'"meta": {"api-version": "1.1", "_last-serial": "x"}, ', IndexMeta("1.1", None), "_last-serial"),
    ],
)
def test_root_json_meta_read_liberally(meta: bytes, expected: IndexMeta, why: str | None) -> None:
    parser = parse.IndexJsonParser()
    assert parser.feed(b"{" + meta + b'"projects": [{"name": "a"}]}') == [entry("a")]
    assert parser.close() == expected
    assert [bool(re.search(why, line)) for line in parser.dropped.examples] == ([True] if why else [])


def test_root_html_unreadable_repository_version_is_read_as_1_0() -> None:
    parser = IndexHtmlParser()
    parser.feed(b'<html><head><meta name="pypi:repository-version" content="x"></head><body><a href="a/">a</a>')
    parser.feed(b"</body></html>")
    assert parser.close() == IndexMeta("1.0", None)
    assert parser.dropped.count == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(0, 0), ("42", 42), (" 42 ", 42), ("4" * 18, int("4" * 18)), (None, None), ("", None), ("-1", None)],
        *[("4" * 19, None), (True, None), (-1, None), (1.0, None), ("\u0664\u0662", None), ("0x2a", None)],
    ],
)
def test_parse_serial(value: object, expected: int | None) -> None:
    assert parse.parse_serial(value) == expected


class TestProvenance:
    """PEP 740: a file's ``provenance`` URL (JSON) or ``data-provenance`` (HTML)."""

    def test_json_provenance_resolved(self) -> None:
        dist = one_file(provenance="../../integrity/demo/1.0/demo-1.0-py3-none-any.whl/provenance")
        assert dist.provenance == Provenance(
            "https://example.org/integrity/demo/1.0/demo-1.0-py3-none-any.whl/provenance", {}
        )

    def test_hash_fragment_becomes_its_hashes(self) -> None:
        dist = one_file(provenance=f"https://p.example/x.provenance#sha256={sha('p').upper()}")
        assert dist.provenance == Provenance("https://p.example/x.provenance", {"sha256": sha("p")})

    def test_absent_or_null_is_none(self) -> None:
        assert one_file().provenance is None
        assert one_file(provenance=None).provenance is None

    @pytest.mark.parametrize(
        ("value", "why"),
        [(5, "provenance is not a URL"), ("", "not a URL"), ("https://p.example/x#sha256=abc", "3 hex digits")],
    )
    def test_unusable_provenance_is_dropped(self, value: object, why: str) -> None:
        assert dropped_file(why, provenance=value).provenance is None

    def test_html_data_provenance(self) -> None:
        dist = one_anchor(f'data-provenance="/integrity/demo-1.0.tar.gz/provenance#sha256={sha("p")}"')
        assert dist.provenance == Provenance(
            "https://example.org/integrity/demo-1.0.tar.gz/provenance", {"sha256": sha("p")}
        )


@pytest.mark.parametrize(
    ("links", "refused"),
    [
        (['<a href="demo-1.0-py3-none-any.whl">demo-1.0-py3-none-any.whl</a>'], True),  # http.server over wheels
        (['<a href="a/">a</a>', '<a href="a-1.0.tar.gz">a-1.0.tar.gz</a>'], True),
        (['<a href="/packages/x/A-1.0.ZIP#sha256=00">A-1.0.ZIP</a>'] * 3 + ['<a href="b/">b</a>'], True),
        (['<a href="a/">a</a>', '<a href="b/">b</a>', '<a href="c.whl/">c.whl</a>', '<a href="d.tgz">d</a>'], False),
        (['<a href="zip/">zip</a>', '<a href="wheel-whl/">wheel.whl</a>'], False),
        ([], False),
    ],
)
def test_root_html_that_links_distribution_files_is_refused(links: list[str], refused: bool) -> None:
    parser = IndexHtmlParser()
    parser.feed(("<html><body>" + "\n".join(links) + "</body></html>").encode())
    if refused:
        with pytest.raises(UpstreamError, match="links distribution files, not projects"):
            parser.close()
    else:
        parser.close()
