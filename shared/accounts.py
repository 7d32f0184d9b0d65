"""Users: one row per provider account, created on first login.

The same (provider, provider account id) always maps to the same user; deleting the user frees
that pair, so a later login creates a fresh user.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, String, Table, UniqueConstraint, select

from shared import db

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


def record_login(user_id: str, provider: str, user_agent: str | None) -> None:
    with db.transaction() as conn:
        conn.execute(
            login_audit.insert().values(
                id=str(uuid.uuid4()),
                user_id=user_id,
                provider=provider,
                user_agent=(user_agent or "")[:300] or None,
                logged_in_at=db.now(),
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


def rfc3339(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")
