"""The platform's small helpers: RFC 3339 times as the contract writes them, bounded batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.core.batching import chunked
from shared.core.times import parse_rfc3339, rfc3339


def test_rfc3339_writes_utc_with_a_z_and_reads_it_back():
    at = datetime(2026, 11, 26, 3, 4, 5, 123456, tzinfo=UTC)
    assert rfc3339(at) == "2026-11-26T03:04:05.123456Z"
    assert rfc3339(None) is None
    assert parse_rfc3339("2026-11-26T03:04:05.123456Z") == at
    assert parse_rfc3339("2026-11-26T12:04:05.123456+09:00") == at
    assert parse_rfc3339("2026-11-26T12:04:05+09:00").utcoffset() == timedelta(hours=9)
    assert parse_rfc3339(rfc3339(at)).utcoffset() == timedelta(0)


def test_chunked_keeps_order_and_bounds_each_piece():
    assert [list(c) for c in chunked(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 500)) == []
    assert [list(c) for c in chunked(["a", "b"], 2)] == [["a", "b"]]
