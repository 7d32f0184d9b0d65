"""Work in bounded pieces: IN lists within the database drivers' parameter limits, deletes
within S3's 1,000 keys a request, cache deletes a round trip at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items, in order; nothing for an empty sequence."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
