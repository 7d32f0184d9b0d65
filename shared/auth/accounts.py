"""Users: one row per provider account, created on first login; and the login audit.

The same (provider, provider account id) always maps to the same user; deleting the user frees
that pair, so a later login creates a fresh user. Every login leaves an audit row (when, which
provider, which user agent, which session) written in the same transaction as its session.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, String, Table, UniqueConstraint, select
from sqlalchemy.engine import Connection

from shared.core import db
from shared.core.batching import chunked
from shared.core.times import rfc3339

users = Table(
    "users",
    db.metadata,
    Column("id", String(36), primary_key=True),
    Column("provider", String(20), nullable=False),
    Column("provider_user_id", String(200), nullable=False),
    Column("nickname", String(30), nullable=False),
    Column("role", String(10), nullable=False, default="user"),
    Column("district", String(40)),
    Column("language", String(10), nullable=False, default="ko"),
    Column("preferences", JSON, nullable=False, default=dict),
    Column("created_at", db.UtcDateTime, nullable=False),
    Column("updated_at", db.UtcDateTime, nullable=False),
    UniqueConstraint("provider", "provider_user_id"),
)

login_audit = Table(
    "login_audit",
    db.metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "user_id",
        String(36),
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("provider", String(20), nullable=False),
    Column("user_agent", String(300)),
    Column("logged_in_at", db.UtcDateTime, nullable=False),
    Column("session_id", String(36)),  # the session the login started (accounts_0002)
)


def find_or_create(provider: str, provider_user_id: str, nickname: str) -> dict[str, Any]:
    """The user behind a provider account, created on first sight."""
    nickname = (nickname or "").strip()[:30] or f"{provider}-{provider_user_id[-6:]}"
    with db.transaction() as conn:
        now = db.now()
        db.upsert(
            conn,
            users,
            {
                "id": str(uuid.uuid4()),
                "provider": provider,
                "provider_user_id": provider_user_id,
                "nickname": nickname,
                "role": "user",
                "language": "ko",
                "preferences": {},
                "created_at": now,
                "updated_at": now,
            },
            keys=["provider", "provider_user_id"],
        )
        row = conn.execute(
            select(users).where(
                users.c.provider == provider, users.c.provider_user_id == provider_user_id
            )
        ).one()
    return dict(row._mapping)


def get(user_id: str) -> dict[str, Any] | None:
    with db.engine().connect() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return dict(row._mapping) if row else None


def record_login(
    conn: Connection, user: dict[str, Any], session_id: str, user_agent: str | None
) -> None:
    """The audit row of a login, on the connection that starts its session."""
    # Printable characters only: a NUL in a header must not fail the insert on PostgreSQL.
    agent = "".join(ch for ch in user_agent or "" if ch.isprintable())[:300]
    conn.execute(
        login_audit.insert().values(
            id=str(uuid.uuid4()),
            user_id=user["id"],
            provider=user["provider"],
            user_agent=agent or None,
            logged_in_at=db.now(),
            session_id=session_id,
        )
    )


def public(user: dict[str, Any]) -> dict[str, Any]:
    """The user as `/auth/me` and login responses show them."""
    return {
        "id": user["id"],
        "nickname": user["nickname"],
        "provider": user["provider"],
        "created_at": rfc3339(user["created_at"]),
    }


def update_profile(user_id: str, values: dict[str, Any]) -> bool:
    """Write the user's own settings (nickname, district, language, preferences); False when
    there is no such user. The users domain validates; this only stores."""
    with db.transaction() as conn:
        found = conn.execute(
            users.update().where(users.c.id == user_id).values(**values, updated_at=db.now())
        ).rowcount
    return bool(found)


def set_role(user_id: str, role: str) -> bool:
    """Make the user an operator ("admin") or a plain "user"; False when there is no such user.
    The role travels in access tokens: the caller ends the user's sessions so it takes effect."""
    with db.transaction() as conn:
        found = conn.execute(users.update().where(users.c.id == user_id).values(role=role)).rowcount
    return bool(found)


def districts(user_ids: list[str]) -> dict[str, str | None]:
    """Each user's district, for figures that count by district."""
    out: dict[str, str | None] = {}
    with db.reading() as conn:
        for chunk in chunked(user_ids, 500):
            rows = conn.execute(select(users.c.id, users.c.district).where(users.c.id.in_(chunk)))
            out.update({row.id: row.district for row in rows})
    return out


def existing(user_ids: list[str]) -> set[str]:
    """Which of these users still have a row: cache keys of the others are orphans."""
    with db.reading() as conn:
        return set(conn.execute(select(users.c.id).where(users.c.id.in_(user_ids))).scalars())
