"""Login sessions and their rotating refresh tokens.

A login starts a session; each refresh spends the presented refresh token and issues the next.
Presenting a spent token again means it was stolen or replayed: the whole session is revoked
(TOKEN_REUSED). Refresh tokens are opaque random strings stored only as hashes. Whether a
session is alive is cached in front of the table, since every protected request asks.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Column, ForeignKey, String, Table, select, update

from shared import accounts, cache, db, tokens
from shared.errors import unauthenticated

REFRESH_TTL = timedelta(days=14)
STATE_TTL = 300  # seconds a cached "active" answer may lag a revocation on another store

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


def _state_key(session_id: str) -> str:
    return f"session:{session_id}"


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


def start(user: dict[str, Any]) -> dict[str, Any]:
    """A new login session for the user: the login response."""
    session_id = str(uuid.uuid4())
    now = db.now()
    with db.transaction() as conn:
        conn.execute(
            sessions.insert().values(
                id=session_id, user_id=user["id"], created_at=now, expires_at=now + REFRESH_TTL
            )
        )
        refresh = _new_refresh(conn, session_id)
    cache.client().set(_state_key(session_id), "active", ex=STATE_TTL)
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
    if reuse:
        revoke(row.id, "refresh_token_reused")
        raise unauthenticated("TOKEN_REUSED", "refresh token already used; session revoked")
    user = accounts.get(row.user_id)
    if user is None:
        raise unauthenticated("TOKEN_REVOKED", "this account no longer exists")
    return _pair(user, row.id, new_refresh)


def revoke(session_id: str, reason: str) -> None:
    with db.transaction() as conn:
        conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=db.now(), revoked_reason=reason)
        )
    # Kept past every access token of the session, so the denial outlives the token.
    cache.client().set(_state_key(session_id), "revoked", ex=tokens.ACCESS_TTL + tokens.LEEWAY)


def revoke_all(user_id: str, reason: str) -> None:
    with db.engine().connect() as conn:
        ids = conn.execute(select(sessions.c.id).where(sessions.c.user_id == user_id)).scalars()
        ids = list(ids)
    for session_id in ids:
        revoke(session_id, reason)


def is_active(session_id: str) -> bool:
    state = cache.client().get(_state_key(session_id))
    if state is None:
        with db.engine().connect() as conn:
            row = conn.execute(
                select(sessions.c.revoked_at, sessions.c.expires_at).where(
                    sessions.c.id == session_id
                )
            ).first()
        alive = row is not None and row.revoked_at is None and row.expires_at > db.now()
        state = "active" if alive else "revoked"
        ttl = STATE_TTL if alive else tokens.ACCESS_TTL + tokens.LEEWAY
        cache.client().set(_state_key(session_id), state, ex=ttl)
    return state == "active"
