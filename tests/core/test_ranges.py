"""Range headers for one file (RFC 9110 §14): single ranges honoured, several served whole, invalid ones refused."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mirror.core.ranges import MAX_DIGITS, ByteRange, Unsatisfiable, parse_range

FUZZ_EXAMPLES = 2000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", ByteRange(0, 9)),
        ("bytes=10-", ByteRange(10, 99)),
        ("bytes=-10", ByteRange(90, 99)),
        ("bytes=-500", ByteRange(0, 99)),
        ("bytes=90-500", ByteRange(90, 99)),
        ("BYTES=0-9", ByteRange(0, 9)),  # §14.1: units are case-insensitive
        ("bytes= 0-9 ", ByteRange(0, 9)),  # list elements allow whitespace around them
        ("bytes=0-9,", ByteRange(0, 9)),  # §5.6.1.2: empty list elements are ignored
        ("bytes=0-0, 5-6", None),  # several ranges: the whole file
        ("items=0-5", None),  # an unknown unit is ignored (§14.2)
        ("bytes =0-5", None),  # "bytes " is not the bytes unit
        ("bytes", None),
        ("", None),
        (f"bytes=0-{'9' * MAX_DIGITS}", ByteRange(0, 99)),
    ],
)
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=100-",  # starts at the end
        "bytes=-0",  # a zero-length suffix
        "bytes=200-300",
        "bytes=5-2",  # last before first: invalid (§14.1.1)
        "bytes=a-b",
        "bytes=-",
        "bytes=",
        "bytes=,",
        "bytes=0-1-2",
        "bytes=\u0663-",  # an Arabic-Indic three: isdigit() says yes, HTTP's DIGIT says no
        "bytes=0-\u0661\u0660",
        "bytes=+5-",
        "bytes=0x10-",
        f"bytes={'1' * 5000}-",  # once a traceback: int() refuses 4,300+ digits
        f"bytes=0-{'9' * (MAX_DIGITS + 1)}",
        f"bytes=-{'9' * 5000}",
        "bytes=0-1, x-y",  # one invalid range spoils the set
    ],
)
def test_unsatisfiable_or_invalid_is_416(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 100)


def test_content_range() -> None:
    assert ByteRange(10, 19).content_range(100) == "bytes 10-19/100"
    assert ByteRange(10, 19).length == 10


def test_empty_file() -> None:
    assert parse_range("bytes=0-0, 1-1", 0) is None
    for header in ("bytes=0-", "bytes=-1"):
        with pytest.raises(Unsatisfiable):
            parse_range(header, 0)


# -- fuzzing: any header, any size; a range inside the file, None, or Unsatisfiable ---------------

_RANGEISH = st.text(alphabet="0123456789-, =\t\u0663xbytesBYTES", max_size=40)


@settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.one_of(st.text(max_size=200), _RANGEISH.map(lambda s: "bytes=" + s), _RANGEISH),
    size=st.integers(0, 2**40),
)
@example(header="bytes=" + "1" * 5000 + "-", size=100)
def test_fuzz_parse_range(header: str, size: int) -> None:
    try:
        found = parse_range(header, size)
    except Unsatisfiable:
        return
    if found is not None:
        assert 0 <= found.start <= found.end < size
        assert found.length == found.end - found.start + 1


@pytest.mark.slow  # fixed-budget fuzzing: out of the fast loop, run by CI
@settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None)
@given(first=st.integers(0, 10**MAX_DIGITS - 1), last=st.integers(0, 10**MAX_DIGITS - 1), size=st.integers(1, 2**40))
def test_fuzz_valid_single_ranges(first: int, last: int, size: int) -> None:
    """Every well-formed single range gets the RFC's answer."""
    header = f"bytes={first}-{last}"
    if last < first or first >= size:
        with pytest.raises(Unsatisfiable):
            parse_range(header, size)
        return
    assert parse_range(header, size) == ByteRange(first, min(last, size - 1))
