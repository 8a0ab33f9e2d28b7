"""mirror serve over a bucket: which URL paths become which keys, and which never reach the bucket."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mirror.serve.objects import _Missing, _validators, object_key


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/simple/", "simple"),
        ("/simple/demo/", "simple/demo"),
        ("//simple//demo/", "simple/demo"),
        ("/packages/ab/cd/x-1.0-py3-none-any.whl", "packages/ab/cd/x-1.0-py3-none-any.whl"),
        ("/packages/ab/x-1.0+local.tar.gz", "packages/ab/x-1.0+local.tar.gz"),
        ("/", ""),
    ],
)
def test_a_path_maps_to_its_key(path: str, key: str) -> None:
    assert object_key(path) == key


@pytest.mark.parametrize(
    "path",
    [
        "/../state/mirror.sqlite3",
        "/simple/../../x",
        "/simple/./demo/",
        "/packages/..\\..\\x",
        "/packages/a\\b.whl",
        "/packages/x.whl\0.txt",
        "/packages/ab/x.whl.mirror-tmp",
        "/simple/demo/index.html.mirror-tmp",
    ],
)
def test_a_path_that_is_not_ours_is_refused_before_any_request(path: str) -> None:
    with pytest.raises(_Missing):
        object_key(path)


def test_validators_come_from_the_object() -> None:
    when = datetime(2024, 3, 10, 12, 0, 1, 999000, tzinfo=UTC)
    strong = _validators({"path": "k", "size": 1, "e_tag": '"abc"', "last_modified": when, "version": None})
    assert (strong.etag, strong.last_modified) == ('"abc"', "Sun, 10 Mar 2024 12:00:01 GMT")
    # A store that hands back a bare or weak tag still yields a strong, quoted one.
    assert _validators({"path": "k", "size": 1, "e_tag": "abc", "last_modified": when, "version": None}).etag == '"abc"'
    weak = _validators({"path": "k", "size": 1, "e_tag": 'W/"abc"', "last_modified": when, "version": None})
    assert weak.etag == '"abc"'
