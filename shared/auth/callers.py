"""Who calls a protected function: the verified access token, and its session still standing.

Every protected request asks, the status poll most often, so this module loads the token code
and the cache and nothing else: the session's state is read in the same cache round trip as
the route's `along` keys (a status poll costs one round trip, not two), and the sessions table,
with SQLAlchemy and the database driver, is imported only when the cache has no state for the
session. A function that needs no database (the status poll) then starts without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shared.auth import tokens
from shared.core import cache, mirror
from shared.core.errors import ApiError, unauthenticated


def caller(
    authorization: str | None,
    admin: bool = False,
    along: Sequence[str] = (),
    read: Callable[[list[str]], list[str | None]] | None = None,
) -> tuple[tokens.Principal, list[str | None]]:
    """The caller of a protected function, from its `Authorization: Bearer` header, and the
    cached values of `along`, read with the session's state (by `read`, the cache's MGET
    unless given)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():  # the scheme is case-insensitive
        raise unauthenticated(message="send Authorization: Bearer <access_token>")
    principal = tokens.verify(token.strip())
    keys = [tokens.session_key(principal.session_id), *along]
    state, *values = (read or cache.client().mget)(keys)
    if state is None:  # nothing cached: the table answers (and the database layer loads)
        from shared.auth import sessions

        active = sessions.is_active(principal.session_id)
    else:
        active = state == "active"
    if not active:
        raise unauthenticated("TOKEN_REVOKED", "this session has ended; sign in again")
    if admin and principal.role != "admin":
        raise ApiError(403, "FORBIDDEN", "operators only")
    return principal, values


def kept_caller(
    authorization: str | None, admin: bool = False, along: Sequence[str] = ()
) -> tuple[tokens.Principal, list[str | None]]:
    """`caller` for the status poll, the app's most frequent call: the session's state and
    `along` as this process keeps them between their changes (`mirror`), so a poll between
    two stage changes makes no round trip at all."""
    return caller(authorization, admin, along, read=mirror.mget)


def authenticate(authorization: str | None, admin: bool = False) -> tokens.Principal:
    """The caller of a protected function, from its `Authorization: Bearer` header."""
    return caller(authorization, admin)[0]
