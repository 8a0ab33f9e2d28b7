"""The pure half of private projects: which file names and metadata are accepted, and the page they make."""

from __future__ import annotations

import json

import pytest
from packaging.utils import NormalizedName
from packaging.version import Version

from mirror.core import parse
from mirror.core.plan import LocalFile
from mirror.core.private import (
    SDIST,
    WHEEL,
    PrivateFile,
    check_form,
    check_metadata,
    file_path,
    page_bodies,
    parse_distribution,
    private_page,
)
from mirror.errors import Refused


@pytest.mark.parametrize(
    ("filename", "name", "version", "kind"),
    [
        ("Team_Lib-1.0-py3-none-any.whl", "team-lib", "1.0", WHEEL),
        ("teamlib-2.0rc1-1-cp312-cp312-manylinux_2_17_x86_64.whl", "teamlib", "2.0rc1", WHEEL),
        ("teamlib-1.0.tar.gz", "teamlib", "1.0", SDIST),
        ("team.lib-0.1.zip", "team-lib", "0.1", SDIST),
    ],
)
def test_distribution_names(filename: str, name: str, version: str, kind: str) -> None:
    dist = parse_distribution(filename)
    assert (dist.name, dist.version, dist.kind) == (name, Version(version), kind)


@pytest.mark.parametrize(
    ("filename", "complaint"),
    [
        ("../teamlib-1.0.tar.gz", "path-like"),
        ("sub/teamlib-1.0.tar.gz", "path-like"),
        ("..\\teamlib-1.0.tar.gz", "path-like"),
        ("", "path-like"),
        (".teamlib-1.0.tar.gz", "hidden"),
        ("teamlib-1.0.tar.gz\n", "control character"),
        ("teamlib-1.0.egg", "not a distribution"),
        ("teamlib-1.0.tar.bz2", "not a distribution"),
        ("teamlib.whl", "not a valid distribution file name"),
        ("teamlib-notaversion-py3-none-any.whl", "not a valid distribution file name"),
        ("teamlib.tar.gz", "not a valid distribution file name"),
        ("x" * 300 + "-1.0.tar.gz", "longer than"),
    ],
)
def test_refused_names(filename: str, complaint: str) -> None:
    with pytest.raises(Refused, match=complaint):
        parse_distribution(filename)


def _metadata(name: str = "teamlib", version: str = "1.0", extra: str = "") -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{extra}\n".encode()


def test_metadata_must_name_the_same_project_and_version() -> None:
    dist = parse_distribution("Team_Lib-1.0-py3-none-any.whl")
    assert check_metadata(dist, _metadata("team.lib", "1.0.0")) is None  # normalized forms agree
    assert check_metadata(dist, _metadata("team-lib", extra="Requires-Python: >= 3.9")) == ">=3.9"
    with pytest.raises(Refused, match="metadata says 'other'"):
        check_metadata(dist, _metadata("other"))
    with pytest.raises(Refused, match=r"version 1\.0, its metadata says '2\.0'"):
        check_metadata(dist, _metadata("team-lib", "2.0"))
    with pytest.raises(Refused, match="no Name or Version"):
        check_metadata(dist, b"Metadata-Version: 2.1\n\n")
    with pytest.raises(Refused, match="invalid Requires-Python"):
        check_metadata(dist, _metadata("team-lib", extra="Requires-Python: >=>3"))
    with pytest.raises(Refused, match="larger than"):
        check_metadata(dist, _metadata("team-lib") + b"x" * (5 << 20))


def test_the_form_must_agree_with_the_file_name() -> None:
    dist = parse_distribution("teamlib-1.0.tar.gz")
    check_form(dist, "TeamLib", "1.0.0", "sdist")
    check_form(dist, None, None, None)
    for name, version, filetype, complaint in (
        ("other", "1.0", "sdist", "project"),
        ("teamlib", "1.1", "sdist", "version"),
        ("teamlib", "junk", "sdist", "version"),
        ("teamlib", "1.0", "bdist_wheel", "filetype"),
    ):
        with pytest.raises(Refused, match=complaint):
            check_form(dist, name, version, filetype)


def test_the_page_links_only_what_is_held_and_renders_like_a_sync() -> None:
    sha = "ab" * 32
    wheel = file_path("teamlib-1.0-py3-none-any.whl", sha)
    assert wheel == f"packages/ab/ab/{'ab' * 30}/teamlib-1.0-py3-none-any.whl"
    sdist = file_path("teamlib-0.9.tar.gz", "cd" * 32)
    files = [
        PrivateFile(
            wheel, "teamlib-1.0-py3-none-any.whl", "1.0", ">=3.9", "2026-01-02T03:04:05.000000Z", wheel + ".metadata"
        ),
        PrivateFile(sdist, "teamlib-0.9.tar.gz", "0.9", None, "", None),
    ]
    held = {wheel: LocalFile(wheel, 10, sha), wheel + ".metadata": LocalFile(wheel + ".metadata", 3, "ef" * 32)}
    page = private_page(NormalizedName("teamlib"), files, held, 7)
    assert [f.filename for f in page.files] == ["teamlib-1.0-py3-none-any.whl"]  # the sdist is not held
    bodies = dict(page_bodies(page))
    doc = json.loads(bodies["simple/teamlib/index.v1_json"])
    assert doc["meta"]["_last-serial"] == 7
    (entry,) = doc["files"]
    assert entry["url"] == f"../../{wheel}"
    assert entry["core-metadata"] == {"sha256": "ef" * 32}
    assert entry["requires-python"] == ">=3.9" and entry["size"] == 10
    assert bodies["simple/teamlib/index.html"] == bodies["simple/teamlib/index.v1_html"]
    html = parse.parse_project_html(bodies["simple/teamlib/index.html"], "https://x/simple/teamlib/", "teamlib")
    assert html.files[0].sha256 == sha
    full = private_page(NormalizedName("teamlib"), files, {**held, sdist: LocalFile(sdist, 5, "cd" * 32)}, 8)
    assert full.versions == ("0.9", "1.0")
    assert "upload-time" not in json.loads(dict(page_bodies(full))["simple/teamlib/index.v1_json"])["files"][0]
