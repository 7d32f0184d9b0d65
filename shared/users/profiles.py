"""The user's own profile: what they may change about themselves, and leaving for good.

Deleting an account removes everything of it: stored images first and cached entries next
(while the caller's token still works, so a failure can be retried), then the sessions are
revoked and the rows deleted (jobs, results, sessions and audit rows go with the user by
cascade). A later login with the same provider account creates a fresh user.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from shared.auth import accounts, sessions
from shared.core.errors import ApiError, not_found, validation_failed
from shared.core.times import rfc3339
from shared.locations import districts
from shared.locations.districts import District
from shared.users import schedules
from shared.waste import jobs

PREFERENCES_MAX_BYTES = 2048


def view(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": user["id"],
        "nickname": user["nickname"],
        "district": user["district"],
        "district_code": _code(user["district"]),
        "language": user["language"],
        "preferences": user["preferences"] or {},
        "created_at": rfc3339(user["created_at"]),
    }


def _code(district: str | None) -> str | None:
    """The stored district's official code, when the data has one (a name stored before
    districts were canonical is resolved the same way)."""
    if not district:
        return None
    try:
        return schedules.resolve(district).code
    except ApiError:
        return None


def get(user_id: str) -> dict[str, Any]:
    user = accounts.get(user_id)
    if user is None:
        raise not_found("user")
    return view(user)


# The `district` query parameter of every call that answers for a district (`district` reads it).
DISTRICT_PARAM = {
    "type": "string",
    "minLength": 1,
    "maxLength": 40,
    "examples": ["강남구", "서울특별시 중구"],
    "description": "any unambiguous form (default: the profile's); ambiguous -> 422 with "
    "details.choices",
}


def district(
    user_id: str,
    asked: str | None,
    known: Iterable[District] | None = None,
    lacking: str | None = None,
) -> District:
    """The district a request asks for, else the profile's, among `known` (by default every
    district with a schedule): 422 when neither names one or the name is ambiguous; one the
    data does not cover is 404 "no <lacking> for ..." when `lacking` names what it lacks, else
    422."""
    text = asked or get(user_id)["district"]
    if not text:
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "set a district in the profile or ask for one",
            {"fields": {"district": "required when the profile has none"}},
        )
    missing = ApiError(404, "NOT_FOUND", f"no {lacking} for {text}") if lacking else None
    return districts.lookup(text, schedules.known_districts() if known is None else known, missing)


def update_profile(user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply the changes the schema let through, after the checks a schema cannot make."""
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    if "nickname" in changes:
        nickname = changes["nickname"].strip()
        if not 1 <= len(nickname) <= 30:
            problems["nickname"] = "1 to 30 characters, not only spaces"
        values["nickname"] = nickname
    if "district" in changes:
        district = changes["district"]
        # Stored canonical ("서울특별시 강남구"); ambiguous or unknown: 422 at once, with the
        # choices in details.
        values["district"] = schedules.resolve(district).name if district is not None else None
    if "language" in changes:
        values["language"] = changes["language"]
    if "preferences" in changes:
        encoded = json.dumps(changes["preferences"], ensure_ascii=False).encode()
        if len(encoded) > PREFERENCES_MAX_BYTES:
            problems["preferences"] = f"at most {PREFERENCES_MAX_BYTES} bytes as JSON"
        values["preferences"] = changes["preferences"]
    if problems:
        raise validation_failed(problems)
    if not accounts.update_profile(user_id, values):
        raise not_found("user")
    return get(user_id)


def delete_account(user_id: str) -> None:
    """Delete the images first, the rows last. The 204 promises the images are gone, so S3
    failing fails the call (503) while the account, its session and its history still stand
    for the client's retry, which deletes what is left; rows deleted first would leave images
    that no row points to, which nothing would ever find and delete."""
    jobs.forget_user(user_id)
    sessions.delete_account(user_id)  # sessions revoked and rows gone in one locked transaction
