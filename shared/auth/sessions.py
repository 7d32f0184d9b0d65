"""Login sessions and their rotating refresh tokens, in the database.

A login starts a session; each refresh spends the presented refresh token and issues the next.
Presenting a spent token again means it was stolen or replayed: the whole session is revoked
(TOKEN_REUSED). Refresh tokens are opaque random strings stored only as hashes; each lives
REFRESH_TTL from its issue, so a session lives as long as it is used. Whether a session is alive
is cached in front of the table (`tokens.session_key`), since every protected request asks;
checking a caller (`callers`) comes here only when the cache has no answer.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Column, ForeignKey, String, Table, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from shared.auth import accounts, tokens
from shared.core import cache, db
from shared.core.errors import unauthenticated

REFRESH_TTL = timedelta(days=14)

sessions = Table(
    "sessions",
    db.metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "user_id",
        String(36),
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", db.UtcDateTime, nullable=False),
    Column("expires_at", db.UtcDateTime, nullable=False),
    Column("revoked_at", db.UtcDateTime),
    Column("revoked_reason", String(40)),
)

refresh_tokens = Table(
    "refresh_tokens",
    db.metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "session_id",
        String(36),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("issued_at", db.UtcDateTime, nullable=False),
    Column("used_at", db.UtcDateTime),
)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_refresh(conn: Any, session_id: str) -> str:
    token = secrets.token_urlsafe(32)
    conn.execute(
        refresh_tokens.insert().values(
            token_hash=_hash(token), session_id=session_id, issued_at=db.now()
        )
    )
    return token


def _pair(user: dict[str, Any], session_id: str, refresh_token: str) -> dict[str, Any]:
    access, expires_in = tokens.issue_access(user["id"], session_id, user.get("role", "user"))
    return {
        "access_token": access,
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "user": accounts.public(user),
    }


def start(user: dict[str, Any], user_agent: str | None = None) -> dict[str, Any]:
    """A new login session for the user, audited with it: the login response."""
    session_id = str(uuid.uuid4())
    now = db.now()
    try:
        with db.transaction() as conn:
            conn.execute(
                sessions.insert().values(
                    id=session_id, user_id=user["id"], created_at=now, expires_at=now + REFRESH_TTL
                )
            )
            refresh = _new_refresh(conn, session_id)
            accounts.record_login(conn, user, session_id, user_agent)
    except IntegrityError:  # the account was deleted while this login was under way
        raise unauthenticated(message="this account no longer exists; sign in again") from None
    tokens.allow(session_id)
    return _pair(user, session_id, refresh)


def rotate(refresh_token: str) -> dict[str, Any]:
    """Spend a refresh token for a new pair; a spent one revokes its whole session."""
    now = db.now()
    with db.transaction() as conn:
        row = conn.execute(
            select(
                refresh_tokens.c.used_at,
                sessions.c.id,
                sessions.c.user_id,
                sessions.c.revoked_at,
                sessions.c.expires_at,
            )
            .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
            .where(refresh_tokens.c.token_hash == _hash(refresh_token))
        ).first()
        if row is None:
            raise unauthenticated(message="unknown refresh token")
        if row.revoked_at is not None:
            raise unauthenticated("TOKEN_REVOKED", "this session has ended; sign in again")
        if row.expires_at <= now:
            raise unauthenticated("TOKEN_EXPIRED", "refresh token expired; sign in again")
        spent = conn.execute(
            update(refresh_tokens)
            .where(
                refresh_tokens.c.token_hash == _hash(refresh_token),
                refresh_tokens.c.used_at.is_(None),
            )
            .values(used_at=now)
        ).rowcount
        if row.used_at is not None or spent == 0:
            reuse = True
        else:
            reuse = False
            new_refresh = _new_refresh(conn, row.id)
            conn.execute(  # the new refresh token lives REFRESH_TTL, and the session with it
                update(sessions).where(sessions.c.id == row.id).values(expires_at=now + REFRESH_TTL)
            )
    if reuse:
        revoke(row.id, "refresh_token_reused")
        raise unauthenticated("TOKEN_REUSED", "refresh token already used; session revoked")
    user = accounts.get(row.user_id)
    if user is None:
        raise unauthenticated("TOKEN_REVOKED", "this account no longer exists")
    return _pair(user, row.id, new_refresh)


def revoke(session_id: str, reason: str) -> None:
    """End one session: its access tokens and its refresh token stop working at once."""
    with db.transaction() as conn:
        conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=db.now(), revoked_reason=reason)
        )
    tokens.deny([session_id])


def revoke_all(user_id: str, reason: str, conn: Connection | None = None) -> list[str]:
    """End every live session of the user; inside `conn`'s transaction when one is given.

    The cache is told before that transaction commits: should it roll back, the user is signed
    out of sessions that still exist, which is the safe way to be wrong.
    """
    if conn is None:
        with db.transaction() as own:
            return revoke_all(user_id, reason, own)
    live = select(sessions.c.id).where(
        sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None)
    )
    ids = list(conn.execute(live).scalars())
    if ids:
        conn.execute(
            update(sessions)
            .where(sessions.c.id.in_(ids))
            .values(revoked_at=db.now(), revoked_reason=reason)
        )
    tokens.deny(ids)
    return ids


def revoke_refresh(refresh_token: str, user_id: str, reason: str) -> None:
    """End the session a refresh token belongs to, if it is one of `user_id`'s."""
    with db.engine().connect() as conn:
        session_id = conn.execute(
            select(sessions.c.id)
            .join(refresh_tokens, refresh_tokens.c.session_id == sessions.c.id)
            .where(
                refresh_tokens.c.token_hash == _hash(refresh_token),
                sessions.c.user_id == user_id,
            )
        ).scalar()
    if session_id is not None:
        revoke(session_id, reason)


def is_active(session_id: str) -> bool:
    """Whether the session may still use its access tokens: the cache first, then the table."""
    state = cache.client().get(tokens.session_key(session_id))
    if state is not None:
        return state == "active"
    with db.engine().connect() as conn:
        row = conn.execute(
            select(sessions.c.revoked_at, sessions.c.expires_at).where(sessions.c.id == session_id)
        ).first()
    if row is None or row.revoked_at is not None or row.expires_at <= db.now():
        tokens.deny([session_id])
        return False
    if tokens.allow(session_id):
        return True
    # Something was written while we read the table (a revocation, say): it is newer than us.
    return cache.client().get(tokens.session_key(session_id)) != "revoked"


def delete_account(user_id: str) -> bool:
    """Delete the account: every session revoked at once, then the row and, by cascade, the rest.

    The row is locked first, so a login racing this one waits and then fails its foreign key
    rather than starting a session for a user that no longer exists.
    """
    with db.transaction() as conn:
        found = conn.execute(
            select(accounts.users.c.id).where(accounts.users.c.id == user_id).with_for_update()
        ).first()
        if found is None:
            return False
        revoke_all(user_id, "account_deleted", conn)
        conn.execute(accounts.users.delete().where(accounts.users.c.id == user_id))
    return True
