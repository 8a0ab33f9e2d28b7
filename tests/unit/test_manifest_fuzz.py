"""Fuzzing the bundle manifest parser and the tar reader: whatever the input, a value or BundleRefused.

Property tests with a fixed budget (``derandomize``: the same examples every run, no example
database). A parsed value must also be one the importer can trust: ids are plain names, paths are
made of safe segments under ``packages/`` or a page, and everything parsed prints back to the same
line. The example counts are in ``BUDGET`` and ``TAR_BUDGET``.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mirror.airgap.manifest import (
    FORMAT,
    MAX_PATH,
    Deletion,
    FileEntry,
    Forget,
    Header,
    Part,
    ProjectSerial,
    parse_entry,
    parse_header,
    part_names,
    safe_path,
)
from mirror.airgap.tarstream import Gunzip, Readable, TarStream
from mirror.errors import BundleRefused
from tests.bundles import tar_of

# Fixed-budget fuzzing takes seconds: left out of the fast loop (`-m "not slow"`), run by CI.
pytestmark = pytest.mark.slow


BUDGET = settings(
    max_examples=1000, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
TAR_BUDGET = settings(BUDGET, max_examples=500)

BUNDLE_ID = "mirror-20260301T020000Z-1a2b3c4d"
VALID: dict[str, Any] = {
    "format": FORMAT,
    "id": BUNDLE_ID,
    "origin": "ab" * 16,
    "previous": None,
    "full": True,
    "seq": 3,
    "from_serial": None,
    "to_serial": 10,
    "created": "2026-03-01T02:00:00Z",
    "compression": "none",
    "parts": [{"name": f"{BUNDLE_ID}.part-0001.tar", "size": 10, "sha256": "0" * 64}],
    "files": 1,
    "bytes": 10,
    "deletions": 0,
}
SEGMENTS = [
    "packages", "simple", "index.html", "index.v1_json", "index.v1_html", "demo", "Demo", "a", "..", ".", "",
    ".hidden", "x\ny", "a\x00b", "a\\b", "c:", "\u2028", "\x85", "é", "a" * 255, "a" * 256, "web", " ",
]  # fmt: skip
NEAR: list[object] = [
    None, True, False, 0, -1, 1, 2**63 - 1, 2**63, 1.0, "", "..", "../../web", "/abs", BUNDLE_ID, "a/b",
    "2026-03-01T02:00:00Z", "2026-02-30T02:00:00Z", "none", "gzip", "0" * 64, "0" * 63, [], {}, [{}],
    VALID["parts"], [{**VALID["parts"][0], "name": "/dev/zero"}],
]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
values = st.one_of(st.sampled_from(NEAR), json_values)
names = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True)
projects = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9._-]{0,10}[a-z0-9])?", fullmatch=True),
    st.sampled_from(["demo", "Demo", "a_b", "a..b", "-x", "x\n", ""]),
    values,
)
paths = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(st.sampled_from(SEGMENTS), st.text(max_size=12)), min_size=1, max_size=20).map("/".join),
    st.lists(st.one_of(names, st.sampled_from(SEGMENTS)), min_size=1, max_size=18).map(
        lambda s: "packages/" + "/".join(s)
    ),
    st.tuples(projects, st.sampled_from(["index.html", "index.v1_json", "index.v1_html", "x"])).map(
        lambda t: f"simple/{t[0]}/{t[1]}"
    ),
)
entries = st.one_of(
    st.fixed_dictionaries(
        {
            "path": paths,
            "size": st.one_of(st.integers(0, 2**63 - 1), values),
            "sha256": st.one_of(st.from_regex(r"[0-9a-f]{64}", fullmatch=True), values),
            "project": st.one_of(st.none(), projects),
        }
    ),
    st.fixed_dictionaries({"delete": paths}),
    st.fixed_dictionaries({"project": projects, "serial": st.one_of(st.none(), st.integers(-1, 2**63), values)}),
    st.fixed_dictionaries({"forget": projects}),
    st.dictionaries(
        st.sampled_from(["path", "size", "sha256", "project", "delete", "forget", "serial", "x"]),
        st.one_of(values, paths),
        max_size=5,
    ),
)


def dumped(data: object) -> bytes:
    return json.dumps(data).encode()


def parsed_header(line: bytes) -> Header | None:
    try:
        header = parse_header(line, "fuzz")
    except BundleRefused as refused:
        assert str(refused) and "\n" not in str(refused)
        event("refused")
        return None
    event("accepted")
    return header


def parsed_entry(line: bytes) -> object:
    try:
        entry = parse_entry(line, "fuzz: line 2")
    except BundleRefused as refused:
        assert str(refused) and "\n" not in str(refused)
        event("refused")
        return None
    event(f"accepted {type(entry).__name__}")
    return entry


def assert_safe(path: str) -> None:
    """What the importer relies on, restated independently of the parser."""
    assert len(path.encode()) <= MAX_PATH
    segments = path.split("/")
    assert segments[0] in ("packages", "simple") and len(segments) >= 2
    for segment in segments:
        assert segment and not segment.startswith(".") and len(segment.encode()) <= 255
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\\\u2028\u2029" for c in segment)


def assert_trusted(header: Header) -> None:
    for name in (header.id, header.origin, header.previous or "x"):
        assert name[0] not in ".-" and all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
    assert [p.name for p in header.parts] == part_names(header.id, header.compression, len(header.parts))
    for number in (header.seq, header.files, header.bytes, header.deletions, *(p.size for p in header.parts)):
        assert type(number) is int and 0 <= number < 2**63
    assert isinstance(header.created_at, float)
    assert parse_header(header.to_json().encode(), "again") == header


@BUDGET
@given(st.binary(max_size=2048))
def test_any_bytes_as_a_header_are_a_header_or_refused(line: bytes) -> None:
    header = parsed_header(line)
    if header is not None:
        assert_trusted(header)


@BUDGET
@given(st.dictionaries(st.sampled_from([*VALID, "extra"]), values, max_size=6), st.sets(st.sampled_from(list(VALID))))
def test_header_fields_of_any_json_value_are_a_header_or_refused(changes: dict[str, Any], dropped: set[str]) -> None:
    data = {key: value for key, value in {**VALID, **changes}.items() if key not in dropped}
    header = parsed_header(dumped(data))
    if header is not None:
        assert_trusted(header)
        assert not dropped and "extra" not in changes


@BUDGET
@given(
    st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", min_size=1, max_size=128),
    st.sampled_from(["none", "gzip"]),
    st.integers(1, 30),
    st.integers(0, 2**63 - 1),
)
def test_a_valid_header_round_trips(bundle_id: str, compression: str, count: int, seq: int) -> None:
    names = part_names(bundle_id, compression, count)
    parts = [{"name": name, "size": number, "sha256": "f" * 64} for number, name in enumerate(names)]
    data = {**VALID, "id": bundle_id, "compression": compression, "parts": parts, "seq": seq}
    header = parsed_header(dumped(data))
    if bundle_id[0] in ".-":
        assert header is None
    else:
        assert header is not None
        assert header.parts == tuple(Part(p["name"], p["size"], p["sha256"]) for p in parts)  # type: ignore[arg-type]
        assert_trusted(header)


@BUDGET
@given(st.binary(max_size=2048))
def test_any_bytes_as_an_entry_are_an_entry_or_refused(line: bytes) -> None:
    check_entry(parsed_entry(line))


@BUDGET
@given(entries)
def test_entries_of_any_json_value_are_an_entry_or_refused(data: dict[str, Any]) -> None:
    check_entry(parsed_entry(dumped(data)))


def check_entry(entry: object) -> None:
    if entry is None:
        return
    assert isinstance(entry, FileEntry | Deletion | ProjectSerial | Forget)
    if isinstance(entry, FileEntry | Deletion):
        assert_safe(entry.path)
    assert parse_entry(entry.to_json().encode(), "again") == entry


@BUDGET
@given(paths)
def test_any_path_is_safe_or_refused(path: str) -> None:
    with contextlib.suppress(BundleRefused):
        assert_safe(safe_path(path, "fuzz"))
        event("accepted")


# -- the tar reader ------------------------------------------------------------------------------

TAR = tar_of([("packages/aa/demo-1.0.whl", b"wheel" * 100), ("packages/" + "long/" * 30 + "x.whl", b"x")])
GZ = gzip.compress(TAR)


def read_all(source: Readable) -> None:
    """Every member and all its data; a member never yields more than its size."""
    tar = TarStream(source, "fuzz")
    members = 0
    try:
        while (member := tar.next()) is not None:
            members += 1
            assert member.size >= 0
            got = 0
            while chunk := tar.read(1 << 16):
                got += len(chunk)
                assert got <= member.size
    except BundleRefused as refused:
        assert "\n" not in str(refused)
        event(f"refused after {members} members")
        return
    event(f"read {members} members")


def test_the_reader_reads_what_tarfile_writes() -> None:
    names = []
    tar = TarStream(io.BytesIO(TAR), "t")
    while (member := tar.next()) is not None:
        names.append((member.name, len(tar.read(1 << 20))))
    assert names == [("web/packages/aa/demo-1.0.whl", 500), ("web/packages/" + "long/" * 30 + "x.whl", 1)]


@TAR_BUDGET
@given(st.binary(max_size=4096))
def test_any_bytes_as_a_tar_stream_are_read_or_refused(data: bytes) -> None:
    read_all(io.BytesIO(data))
    read_all(Gunzip(io.BytesIO(data), "fuzz"))


@TAR_BUDGET
@given(st.lists(st.tuples(st.integers(0, len(TAR) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_a_damaged_tar_stream_is_read_or_refused(flips: list[tuple[int, int]]) -> None:
    data = bytearray(TAR)
    for index, value in flips:
        data[index] = value
    read_all(io.BytesIO(bytes(data)))


@TAR_BUDGET
@given(st.lists(st.tuples(st.integers(0, len(GZ) - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_a_damaged_gzip_stream_is_read_or_refused(flips: list[tuple[int, int]]) -> None:
    data = bytearray(GZ)
    for index, value in flips:
        data[index] = value
    read_all(Gunzip(io.BytesIO(bytes(data)), "fuzz"))
