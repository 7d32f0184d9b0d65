"""Auth functions — /api/v1/auth: sign in, rotate tokens, sign out, who am I."""

from __future__ import annotations

from shared.auth import accounts, callers, oauth, sessions
from shared.core.errors import unauthenticated
from shared.core.registry import HOT, endpoints
from shared.core.validation import obj

http = endpoints(authenticate=callers.caller)

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
# Any URI scheme: web callbacks are https, the mobile SDKs' are custom ones (kakao{key}://).
REDIRECT_URI = {
    "type": "string",
    "minLength": 1,
    "maxLength": 2048,
    "pattern": "^[A-Za-z][A-Za-z0-9+.-]*:",
}
VISIBLE_ASCII = "^[!-~]+$"  # codes and tokens never hold spaces or control characters
PROVIDER_LOGIN = obj(
    {
        "code": {"type": "string", "maxLength": 2048, "pattern": VISIBLE_ASCII},
        "redirect_uri": REDIRECT_URI,
        "code_verifier": {"type": "string", "pattern": "^[A-Za-z0-9._~-]{43,128}$"},
        "state": {"type": "string", "maxLength": 512, "pattern": VISIBLE_ASCII},
        "access_token": {"type": "string", "maxLength": 4096, "pattern": VISIBLE_ASCII},
        "id_token": {"type": "string", "maxLength": 8192, "pattern": VISIBLE_ASCII},
    },
    description="One of: {code, redirect_uri, code_verifier?, state?} (authorization code); "
    "{access_token} (kakao, naver: the mobile SDK's token); {id_token} (google).",
)
AUTHORIZE = obj({"redirect_uri": REDIRECT_URI}, required=("redirect_uri",))
AUTHORIZATION = obj(
    {
        "authorization_url": {"type": "string"},
        "state": {"type": "string"},
        "expires_in": {"type": "integer"},
    },
    required=("authorization_url", "state", "expires_in"),
)
DEV_LOGIN = obj({"user": {"type": "string", "minLength": 1, "maxLength": 30}}, required=("user",))
REFRESH = obj({"refresh_token": {"type": "string", "minLength": 1}}, required=("refresh_token",))
LOGOUT = obj({"refresh_token": {"type": "string", "minLength": 1}})


@http(
    "POST /api/v1/auth/login/{provider}",
    auth=None,
    body=PROVIDER_LOGIN,
    responses={200: TOKEN_PAIR},
    errors=(401, 502),
    uses=("db", "cache", "oauth", "signing"),
)
def auth_login(request, provider, body):
    """Sign in with Kakao, Naver or Google: an authorization code, or the provider SDK's token."""
    identity = oauth.identify(provider, body)
    user = accounts.find_or_create(provider, identity.subject, identity.nickname)
    return sessions.start(user, request.headers.get("User-Agent"))


@http(
    "GET /api/v1/auth/authorize/{provider}",
    auth=None,
    query=AUTHORIZE,
    responses={200: AUTHORIZATION},
    uses=("cache", "oauth"),
)
def auth_authorize(request, provider, query):
    """The provider's sign-in page for web clients, with a single-use state and PKCE (S256)."""
    return oauth.authorize(provider, query["redirect_uri"])


@http(
    "POST /api/v1/auth/login/dev",
    auth=None,
    body=DEV_LOGIN,
    responses={200: TOKEN_PAIR},
    uses=("db", "cache", "signing"),
    local_only=True,
)
def auth_login_dev(request, body):
    """Sign in as any named user without a provider: local mode only, 404 elsewhere."""
    user = accounts.find_or_create("dev", body["user"], body["user"])
    return sessions.start(user, request.headers.get("User-Agent"))


@http(
    "POST /api/v1/auth/refresh",
    auth=None,
    body=REFRESH,
    responses={200: TOKEN_PAIR},
    errors=(401,),
    uses=("db", "cache", "signing"),
)
def auth_refresh(request, body):
    """Spend a refresh token for a new pair; reusing a spent one revokes the session."""
    return sessions.rotate(body["refresh_token"])


@http("POST /api/v1/auth/logout", body=LOGOUT, responses={204: None})
def auth_logout(request, user, body):
    """End the caller's session (and the refresh token's, if one of the caller's): at once."""
    sessions.revoke(user.session_id, "logout")
    if "refresh_token" in body:
        sessions.revoke_refresh(body["refresh_token"], user.user_id, "logout")


@http("GET /api/v1/auth/me", scaling=HOT, responses={200: USER})
def auth_me(request, user):
    """The signed-in user."""
    found = accounts.get(user.user_id)
    if found is None:  # deleted under a session the cache still called active
        raise unauthenticated("TOKEN_REVOKED", "this account no longer exists")
    return accounts.public(found)
