"""Auth functions — /api/v1/auth: sign in, rotate tokens, sign out, who am I."""

from __future__ import annotations

from shared import accounts, sessions
from shared.errors import not_found
from shared.registry import HOT, http
from shared.validation import obj

USER = obj(
    {
        "id": {"type": "string"},
        "nickname": {"type": "string"},
        "provider": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
    },
    required=("id", "nickname", "provider", "created_at"),
)
TOKEN_PAIR = obj(
    {
        "access_token": {"type": "string"},
        "refresh_token": {"type": "string"},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
        "user": USER,
    },
    required=("access_token", "refresh_token", "token_type", "expires_in", "user"),
)
DEV_LOGIN = obj({"user": {"type": "string", "minLength": 1, "maxLength": 30}}, required=("user",))
REFRESH = obj({"refresh_token": {"type": "string", "minLength": 1}}, required=("refresh_token",))
LOGOUT = obj({"refresh_token": {"type": "string"}})


@http(
    "POST /api/v1/auth/login/dev",
    auth=None,
    body=DEV_LOGIN,
    responses={200: TOKEN_PAIR},
    local_only=True,
)
def auth_login_dev(request, body):
    """Sign in as any named user without a provider: local mode only, 404 elsewhere."""
    user = accounts.find_or_create("dev", body["user"], body["user"])
    accounts.record_login(user["id"], "dev", request.headers.get("User-Agent"))
    return sessions.start(user)


@http(
    "POST /api/v1/auth/refresh",
    auth=None,
    body=REFRESH,
    responses={200: TOKEN_PAIR},
    errors=(401,),
)
def auth_refresh(request, body):
    """Spend a refresh token for a new pair; reusing a spent one revokes the session."""
    return sessions.rotate(body["refresh_token"])


@http("POST /api/v1/auth/logout", body=LOGOUT, responses={204: None})
def auth_logout(request, user, body):
    """End the caller's session: its access and refresh tokens stop working at once."""
    sessions.revoke(user.session_id, "logout")


@http("GET /api/v1/auth/me", scaling=HOT, responses={200: USER})
def auth_me(request, user):
    """The signed-in user."""
    found = accounts.get(user.user_id)
    if found is None:
        raise not_found("user")
    return accounts.public(found)
