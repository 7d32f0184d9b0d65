"""Times as the contract writes them: RFC 3339 in UTC with a `Z` (API.md: "Times are RFC 3339
UTC"). Every timestamp the code holds is timezone-aware UTC (`db.UtcDateTime`, `db.now`)."""

from __future__ import annotations

from datetime import datetime


def rfc3339(value: datetime | None) -> str | None:
    """`2026-11-26T03:04:05.123456Z`; None stays None (a time not reached yet)."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    """The aware datetime of an RFC 3339 time, `Z` or offset (as CloudEvents and our views
    write them)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
