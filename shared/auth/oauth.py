"""Sign-in with Kakao, Naver and Google: who the provider says the caller is.

Two ways in, as the contract has them: an authorization code that this server exchanges (with
the app's redirect_uri, its PKCE code_verifier and, for web clients, the `state` that
`authorize` issued), or what the provider's mobile SDK handed the app (a Kakao or Naver access
token, checked against the provider's user-info API; a Google ID token, verified against
Google's published keys). Either way the answer is an `Identity`: the provider's stable account
id and a nickname for a first login.

Provider failures map onto the contract, never onto a 500: the provider says no -> 401
UNAUTHENTICATED; the provider is unreachable, slow, rate-limiting or failing -> 503 UNAVAILABLE
with Retry-After; it answers something we cannot read -> 502 PROVIDER_ERROR; this server has no
client id for it -> 503 PROVIDER_NOT_CONFIGURED naming the variable to set. `requests` is
imported on first use, off the cold-start path.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlencode

from shared.core import cache as shared_cache
from shared.core.errors import ApiError, log_event, unavailable, validation_failed
from shared.core.settings import settings

PROVIDERS = ("kakao", "naver", "google")
TIMEOUT = (3.05, 5.0)  # seconds to connect, to read: a login waits on at most two calls
STATE_TTL = 600  # an authorize state is good for 10 minutes, once
LEEWAY = 30  # seconds of clock skew tolerated on Google ID tokens
MAX_SUBJECT = 200  # users.provider_user_id

KAKAO_AUTHORIZE = "https://kauth.kakao.com/oauth/authorize"
KAKAO_TOKEN = "https://kauth.kakao.com/oauth/token"
KAKAO_ME = "https://kapi.kakao.com/v2/user/me"
KAKAO_TOKEN_INFO = "https://kapi.kakao.com/v1/user/access_token_info"
NAVER_AUTHORIZE = "https://nid.naver.com/oauth2.0/authorize"
NAVER_TOKEN = "https://nid.naver.com/oauth2.0/token"
NAVER_ME = "https://openapi.naver.com/v1/nid/me"
GOOGLE_AUTHORIZE = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"
GOOGLE_CERTS = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")

AUTHORIZE_URLS = {"kakao": KAKAO_AUTHORIZE, "naver": NAVER_AUTHORIZE, "google": GOOGLE_AUTHORIZE}
PKCE = frozenset({"kakao", "google"})  # Naver's authorize endpoint has no PKCE
SDK_TOKEN = {"kakao": "access_token", "naver": "access_token", "google": "id_token"}
CLIENT_ID_VARIABLE = {
    "kakao": "KAKAO_CLIENT_ID (or KAKAO_REST_API_KEY)",
    "naver": "NAVER_CLIENT_ID",
    "google": "GOOGLE_CLIENT_IDS",
}


@dataclass(frozen=True)
class Identity:
    provider: str
    subject: str  # the provider's id for the account: the same account, the same subject
    nickname: str | None


# ---- errors in the contract's shape -------------------------------------------------------


def _rejected(provider: str, why: str, **details: Any) -> ApiError:
    return ApiError(
        401,
        "UNAUTHENTICATED",
        f"{provider} did not accept this sign-in: {why}",
        {"provider": provider, **details},
        headers={"WWW-Authenticate": "Bearer"},
    )


def _down(provider: str, why: str, retry_after: int = 5) -> ApiError:
    log_event("warning", "oauth_provider_unavailable", provider=provider, reason=why)
    return unavailable(f"{provider} sign-in is unavailable ({why}); try again shortly", retry_after)


def _malformed(provider: str, what: str) -> ApiError:
    log_event("error", "oauth_provider_malformed", provider=provider, reason=what)
    return ApiError(
        502,
        "PROVIDER_ERROR",
        f"{provider} answered with something this server cannot read: {what}",
        {"provider": provider},
    )


def _not_configured(provider: str, variable: str) -> ApiError:
    return ApiError(
        503,
        "PROVIDER_NOT_CONFIGURED",
        f"{provider} sign-in is not configured on this server: set {variable}",
        {"provider": provider, "variable": variable},
        # every 503 carries Retry-After; configuration takes an operator, so ask much later
        headers={"Retry-After": "3600"},
    )


def _invalid_state(provider: str, why: str) -> ApiError:
    return ApiError(
        401,
        "INVALID_STATE",
        f"{why}; start the sign-in again from GET /api/v1/auth/authorize/{provider}",
        headers={"WWW-Authenticate": "Bearer"},
    )


# ---- configuration ------------------------------------------------------------------------


def _known(provider: str) -> None:
    if provider not in PROVIDERS:
        raise ApiError(
            404, "NOT_FOUND", f"no sign-in provider {provider!r}; use {', '.join(PROVIDERS)}"
        )


def _client_id(provider: str) -> str:
    config = settings()
    client_id = {
        "kakao": config.kakao_client_id,
        "naver": config.naver_client_id,
        "google": config.google_client_ids[0] if config.google_client_ids else None,
    }[provider]
    if not client_id:
        raise _not_configured(provider, CLIENT_ID_VARIABLE[provider])
    return client_id


# ---- HTTP to the providers ----------------------------------------------------------------


@cache
def _session() -> Any:
    """One connection pool per process: a login's calls reuse the TLS connections."""
    import requests

    return requests.Session()


def _retry_after(response: Any) -> int:
    value = response.headers.get("Retry-After", "")
    return min(int(value), 300) if value.isdigit() and int(value) > 0 else 5


def _call(provider: str, method: str, url: str, **kwargs: Any) -> Any:
    """One request to a provider; unreachable, slow, rate-limited or 5xx is 503."""
    import requests

    try:
        response = _session().request(method, url, timeout=TIMEOUT, **kwargs)
    except requests.Timeout:
        raise _down(provider, "it did not answer in time") from None
    except requests.RequestException as exc:
        raise _down(provider, f"it could not be reached: {type(exc).__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise _down(provider, f"it answered {response.status_code}", _retry_after(response))
    return response


def _json_object(provider: str, response: Any) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise _malformed(provider, f"a {response.status_code} answer that is not JSON") from None
    if not isinstance(data, dict):
        raise _malformed(provider, "a JSON answer that is not an object")
    return data


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _subject(provider: str, value: Any) -> str:
    """The account id as a string: Kakao sends a number, Naver and Google strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SUBJECT:
        raise _malformed(provider, "no usable account id")
    return value.strip()


def _exchange(
    provider: str,
    url: str,
    body: dict[str, Any],
    secret: str | None,
    verifier: str | None = None,
    state: str | None = None,
) -> dict[str, Any]:
    """Trade an authorization code for the provider's tokens (RFC 6749 4.1.3, RFC 7636 4.5)."""
    form = {
        "grant_type": "authorization_code",
        "client_id": _client_id(provider),
        "client_secret": secret,
        "redirect_uri": body["redirect_uri"],
        "code": body["code"],
        "code_verifier": verifier,
        "state": state,
    }
    response = _call(
        provider,
        "POST",
        url,
        data={k: v for k, v in form.items() if v},
        headers={"Accept": "application/json"},
    )
    if response.status_code in (400, 401, 403):
        try:
            data = response.json()
        except ValueError:
            data = None
        _raise_for_grant_error(
            provider, data if isinstance(data, dict) else {}, response.status_code
        )
    if response.status_code != 200:
        raise _malformed(provider, f"token endpoint answered {response.status_code}")
    data = _json_object(provider, response)
    _raise_for_grant_error(provider, data, 200)  # Naver reports errors inside a 200
    return data


def _raise_for_grant_error(provider: str, data: dict[str, Any], status: int) -> None:
    error = data.get("error")
    if not error and status == 200:
        return
    error = str(error or f"http_{status}")
    if error == "invalid_client":
        # Our credentials, not the user's code: operators must fix the configuration.
        raise _malformed(provider, f"it refused this server's client credentials ({error})")
    description = _text(data.get("error_description")) or "the authorization code was refused"
    raise _rejected(provider, description, provider_error=error)


def _bearer_get(provider: str, url: str, access_token: str) -> dict[str, Any]:
    """GET a user-info endpoint with the user's access token; a refused token is 401."""
    response = _call(provider, "GET", url, headers={"Authorization": f"Bearer {access_token}"})
    if response.status_code in (400, 401, 403):
        raise _rejected(
            provider, "the access token was refused", provider_status=response.status_code
        )
    if response.status_code != 200:
        raise _malformed(provider, f"{url} answered {response.status_code}")
    return _json_object(provider, response)


def _access_token(provider: str, tokens: dict[str, Any]) -> str:
    token = _text(tokens.get("access_token"))
    if token is None:
        raise _malformed(provider, "no access_token in the token response")
    return token


# ---- Kakao --------------------------------------------------------------------------------


def _kakao_profile(access_token: str) -> Identity:
    data = _bearer_get("kakao", KAKAO_ME, access_token)
    account = data.get("kakao_account")
    profile = account.get("profile") if isinstance(account, dict) else None
    properties = data.get("properties")
    nickname = _text(profile.get("nickname")) if isinstance(profile, dict) else None
    if nickname is None and isinstance(properties, dict):
        nickname = _text(properties.get("nickname"))
    return Identity("kakao", _subject("kakao", data.get("id")), nickname)


def _kakao_check_app(access_token: str) -> None:
    """Refuse SDK tokens that Kakao issued to another app (token substitution)."""
    app_id = settings().kakao_app_id
    if not app_id:
        return
    data = _bearer_get("kakao", KAKAO_TOKEN_INFO, access_token)
    if "app_id" not in data:
        raise _malformed("kakao", "no app_id in the token info")
    if str(data["app_id"]) != app_id:
        raise _rejected("kakao", "the access token was issued to another app")


def _kakao(body: dict[str, Any], verifier: str | None) -> Identity:
    if "access_token" in body:
        _kakao_check_app(body["access_token"])
        return _kakao_profile(body["access_token"])
    tokens = _exchange("kakao", KAKAO_TOKEN, body, settings().kakao_client_secret, verifier)
    return _kakao_profile(_access_token("kakao", tokens))


# ---- Naver --------------------------------------------------------------------------------


def _naver_profile(access_token: str) -> Identity:
    data = _bearer_get("naver", NAVER_ME, access_token)
    result = data.get("resultcode")
    if not isinstance(result, str):
        raise _malformed("naver", "no resultcode in the profile envelope")
    if result != "00":
        raise _rejected("naver", _text(data.get("message")) or "refused", provider_error=result)
    profile = data.get("response")
    if not isinstance(profile, dict):
        raise _malformed("naver", "no response object in the profile envelope")
    nickname = _text(profile.get("nickname")) or _text(profile.get("name"))
    return Identity("naver", _subject("naver", profile.get("id")), nickname)


def _naver(body: dict[str, Any], state: str | None) -> Identity:
    if "access_token" in body:
        return _naver_profile(body["access_token"])
    secret = settings().naver_client_secret
    if not secret:
        raise _not_configured("naver", "NAVER_CLIENT_SECRET")
    if state is None:
        # Naver's token endpoint requires the state its authorize endpoint was given.
        raise validation_failed({"state": "naver's code flow needs the state from /authorize"})
    tokens = _exchange("naver", NAVER_TOKEN, body, secret, state=state)
    return _naver_profile(_access_token("naver", tokens))


# ---- Google -------------------------------------------------------------------------------

_keys_lock = threading.Lock()
_keys: dict[str, Any] = {"by_kid": {}, "expires": 0.0, "fetched": 0.0}
REFETCH_AFTER = 60  # an unknown kid refetches the key set at most once a minute


def forget_keys() -> None:
    """Drop the cached Google key set (tests; a new process starts without it)."""
    with _keys_lock:
        _keys.update(by_kid={}, expires=0.0, fetched=0.0)


def _fetch_google_keys() -> tuple[dict[str, Any], int]:
    import jwt
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    response = _call("google", "GET", GOOGLE_CERTS)
    if response.status_code != 200:
        raise _malformed("google", f"the key set answered {response.status_code}")
    data = _json_object("google", response)
    try:
        key_set = jwt.PyJWKSet.from_dict(data)
    except (jwt.PyJWTError, TypeError, ValueError, KeyError):
        raise _malformed("google", "the key set is not a JWKS") from None
    # Only RSA keys: an "oct" entry must never become an HMAC secret for RS256 tokens.
    by_kid = {k.key_id: k.key for k in key_set.keys if k.key_id and isinstance(k.key, RSAPublicKey)}
    if not by_kid:
        raise _malformed("google", "the key set has no RSA signing keys")
    match = re.search(r"max-age=(\d+)", response.headers.get("Cache-Control", ""))
    max_age = min(max(int(match.group(1)), 60), 86400) if match else 3600
    return by_kid, max_age


def _google_key(kid: str) -> Any:
    """Google's public key `kid`, from the key set cached for its Cache-Control max-age."""
    now = time.monotonic()
    with _keys_lock:
        by_kid, expires, fetched = _keys["by_kid"], _keys["expires"], _keys["fetched"]
    fresh = now < expires
    if kid in by_kid and fresh:
        return by_kid[kid]
    if fresh and now - fetched < REFETCH_AFTER:
        return None  # unknown kid, keys just fetched: do not let forged kids hammer Google
    try:
        by_kid, max_age = _fetch_google_keys()
    except ApiError:
        if kid in by_kid:  # Google briefly unreachable: the keys we had still verify
            return by_kid[kid]
        raise
    with _keys_lock:
        _keys.update(by_kid=by_kid, expires=now + max_age, fetched=now)
    return by_kid.get(kid)


def _google_identity(id_token: str) -> Identity:
    """Verify a Google ID token: RS256 by a published key, our audience, Google's issuer, time."""
    import jwt

    audiences = settings().google_client_ids
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        raise _rejected("google", "the id_token is not a JWT") from None
    kid = header.get("kid")
    if header.get("alg") != "RS256" or not isinstance(kid, str):
        raise _rejected("google", "the id_token is not signed the way Google signs")
    key = _google_key(kid)
    if key is None:
        raise _rejected("google", "the id_token is signed by a key Google does not publish")
    try:
        claims = jwt.decode(
            id_token,
            key,
            algorithms=["RS256"],
            audience=list(audiences),
            issuer=GOOGLE_ISSUERS,
            leeway=LEEWAY,
            options={"require": ["iss", "aud", "sub", "exp", "iat"]},
        )
    except jwt.ExpiredSignatureError:
        raise _rejected("google", "the id_token has expired") from None
    except jwt.PyJWTError as exc:
        raise _rejected("google", f"the id_token is invalid ({exc})") from None
    nickname = _text(claims.get("name")) or _text(claims.get("given_name"))
    return Identity("google", _subject("google", claims.get("sub")), nickname)


def _google(body: dict[str, Any], verifier: str | None) -> Identity:
    if "id_token" in body:
        return _google_identity(body["id_token"])
    tokens = _exchange("google", GOOGLE_TOKEN, body, settings().google_client_secret, verifier)
    id_token = _text(tokens.get("id_token"))
    if id_token is None:
        raise _malformed("google", "no id_token in the token response (is the openid scope set?)")
    return _google_identity(id_token)


# ---- the login body and the web flow's state ----------------------------------------------


def _check_form(provider: str, body: dict[str, Any]) -> None:
    """Exactly one way in, and only the fields that way takes (the schema checked the types)."""
    given = [name for name in ("code", "access_token", "id_token") if name in body]
    sdk = SDK_TOKEN[provider]
    if len(given) != 1:
        expected = f"send code (with redirect_uri) or {sdk}"
        raise validation_failed({name: expected for name in given} or {"code": expected})
    if given[0] in ("access_token", "id_token") and given[0] != sdk:
        raise validation_failed({given[0]: f"{provider} signs in with code or {sdk}"})
    if given[0] == "code":
        if "redirect_uri" not in body:
            raise validation_failed({"redirect_uri": "required with code"})
    else:
        extra = sorted({"redirect_uri", "code_verifier", "state"} & set(body))
        if extra:
            raise validation_failed({name: "only with code" for name in extra})


def _state_key(state: str) -> str:
    return f"oauth:state:{hashlib.sha256(state.encode()).hexdigest()}"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def authorize(provider: str, redirect_uri: str) -> dict[str, Any]:
    """The provider's sign-in URL for a web client, with a single-use state and PKCE (S256).

    The code verifier stays here, under the state: the browser never holds it, and the login
    that presents the state gets it back.
    """
    _known(provider)
    params = {
        "response_type": "code",
        "client_id": _client_id(provider),
        "redirect_uri": redirect_uri,
        "state": secrets.token_urlsafe(32),
    }
    record = {"provider": provider, "redirect_uri": redirect_uri}
    if provider in PKCE:
        record["code_verifier"] = secrets.token_urlsafe(48)  # 64 characters, RFC 7636 4.1
        params["code_challenge"] = _challenge(record["code_verifier"])
        params["code_challenge_method"] = "S256"
    if provider == "google":
        params["scope"] = "openid profile"
    shared_cache.set_json(_state_key(params["state"]), record, STATE_TTL)
    return {
        "authorization_url": f"{AUTHORIZE_URLS[provider]}?{urlencode(params)}",
        "state": params["state"],
        "expires_in": STATE_TTL,
    }


def _spend_state(provider: str, state: str, redirect_uri: str) -> dict[str, Any]:
    """The record `authorize` kept for this state, which no later login can present again."""
    key = _state_key(state)
    record = shared_cache.get_json(key)
    # Whoever deletes the key spent the state; a concurrent second login finds nothing to delete.
    if record is None or shared_cache.client().delete(key) != 1:
        raise _invalid_state(
            provider, "this state was not issued here, has expired or was already used"
        )
    if record.get("provider") != provider:
        raise _invalid_state(
            provider, f"this state was issued for {record.get('provider')} sign-in"
        )
    if record.get("redirect_uri") != redirect_uri:
        raise _invalid_state(provider, "this state was issued for another redirect_uri")
    return record


def identify(provider: str, body: dict[str, Any]) -> Identity:
    """Who signed in, from a login body: an authorization code or the provider SDK's token."""
    _known(provider)
    _client_id(provider)  # every way in needs the provider configured, so that is said first
    _check_form(provider, body)
    verifier = body.get("code_verifier")
    state = body.get("state")
    if state is not None:
        record = _spend_state(provider, state, body["redirect_uri"])
        verifier = verifier or record.get("code_verifier")
    if provider == "kakao":
        return _kakao(body, verifier)
    if provider == "naver":
        return _naver(body, state)
    return _google(body, verifier)
