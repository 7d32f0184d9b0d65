"""Kakao, Naver and Google sign-in through the real `requests` code, the providers mocked at HTTP.

Payloads follow the providers' documented shapes: Kakao's token and /v2/user/me answers, Naver's
token answer and its resultcode/response envelope, Google's token answer, JWKS and ID tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
import responses
from conftest import error_code, reset_clients
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from responses import matchers

from shared.auth import oauth

REDIRECT = "https://growbin.kr/auth/callback"
KAKAO_USER = {
    "id": 3141592653,
    "connected_at": "2024-05-02T01:23:45Z",
    "properties": {"nickname": "분리수거왕"},
    "kakao_account": {
        "profile_nickname_needs_agreement": False,
        "profile": {"nickname": "분리수거왕", "is_default_nickname": False},
    },
}
KAKAO_TOKENS = {
    "token_type": "bearer",
    "access_token": "kakao-access-1",
    "expires_in": 21599,
    "refresh_token": "kakao-refresh-1",
    "refresh_token_expires_in": 5183999,
    "scope": "profile_nickname",
}
NAVER_PROFILE = {
    "resultcode": "00",
    "message": "success",
    "response": {
        "id": "32742776",
        "nickname": "OpenAPI",
        "name": "오픈 API",
        "profile_image": "https://ssl.pstatic.net/static/pwe/address/nodata_33x33.gif",
    },
}
NAVER_TOKENS = {
    "access_token": "AAAAQosjWDJieBiQZc3to9YQp6HDLvrmyKC+6+iZ3gq7qrkqf50ljZC+Lgoqrg",
    "refresh_token": "c8ceMEJisO4Se7uGisHoX0f5JEii7JnipglQipkOn5Zp3tyP7dHQoP0zNKHUq2gY",
    "token_type": "bearer",
    "expires_in": "3600",
}
GOOGLE_WEB = "1234-web.apps.googleusercontent.com"
GOOGLE_IOS = "1234-ios.apps.googleusercontent.com"
GOOGLE_SUB = "110169484474386276334"
CERTS_HEADERS = {"Cache-Control": "public, max-age=19213, must-revalidate, no-transform"}


@pytest.fixture(scope="module")
def google_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwks(key, kid: str = "g-key-1") -> dict:
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": kid, "alg": "RS256", "use": "sig"}]}


def _id_token(key, kid: str = "g-key-1", **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "azp": GOOGLE_WEB,
        "aud": GOOGLE_WEB,
        "sub": GOOGLE_SUB,
        "email": "haneul@example.com",
        "email_verified": True,
        "name": "김하늘",
        "given_name": "하늘",
        "iat": now,
        "exp": now + 3600,
        **overrides,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def providers(env):
    """Every provider configured, as an operator would."""
    env.setenv("KAKAO_REST_API_KEY", "kakao-rest-key")
    env.setenv("KAKAO_CLIENT_SECRET", "kakao-secret")
    env.setenv("NAVER_CLIENT_ID", "naver-client")
    env.setenv("NAVER_CLIENT_SECRET", "naver-secret")
    env.setenv("GOOGLE_CLIENT_IDS", f"{GOOGLE_WEB}, {GOOGLE_IOS}")
    env.setenv("GOOGLE_CLIENT_SECRET", "google-secret")
    reset_clients()
    return env


@pytest.fixture
def api(providers, system):
    return system.app.test_client()


@contextmanager
def _running():
    """The local runtime on the environment as it is now (for tests that change it)."""
    from knative import local

    reset_clients()
    system = local.start(time_scale=0.01, with_cron=False, with_bins=False)
    try:
        yield system.app.test_client()
    finally:
        system.stop()


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def _login(api, provider: str, body: dict, agent: str = "growbin-ios/1.4"):
    return api.post(f"/api/v1/auth/login/{provider}", json=body, headers={"User-Agent": agent})


def _authorize(api, provider: str, redirect_uri: str = REDIRECT) -> dict[str, list[str]]:
    response = api.get(
        f"/api/v1/auth/authorize/{provider}", query_string={"redirect_uri": redirect_uri}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["expires_in"] == 600
    url = urlsplit(body["authorization_url"])
    params = parse_qs(url.query)
    assert params["state"] == [body["state"]]
    return {"base": [f"{url.scheme}://{url.netloc}{url.path}"], **params}


def _audit(user_id: str) -> list[dict]:
    from sqlalchemy import select

    from shared.auth import accounts
    from shared.core import db

    with db.engine().connect() as conn:
        rows = conn.execute(
            select(accounts.login_audit).where(accounts.login_audit.c.user_id == user_id)
        ).all()
    return [dict(row._mapping) for row in rows]


# ---- Kakao --------------------------------------------------------------------------------


def test_kakao_code_then_sdk_token_is_one_user_with_audited_logins(api, mock):
    mock.post(
        oauth.KAKAO_TOKEN,
        json=KAKAO_TOKENS,
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "authorization_code",
                    "client_id": "kakao-rest-key",
                    "client_secret": "kakao-secret",
                    "redirect_uri": "kakao1234://oauth",
                    "code": "kakao-code-1",
                    "code_verifier": "v" * 43,
                }
            )
        ],
    )
    mock.get(
        oauth.KAKAO_ME,
        json=KAKAO_USER,
        match=[matchers.header_matcher({"Authorization": "Bearer kakao-access-1"})],
    )
    mock.get(
        oauth.KAKAO_ME,
        json=KAKAO_USER,
        match=[matchers.header_matcher({"Authorization": "Bearer sdk-token"})],
    )
    first = _login(
        api,
        "kakao",
        {"code": "kakao-code-1", "redirect_uri": "kakao1234://oauth", "code_verifier": "v" * 43},
    )
    assert first.status_code == 200, first.get_data(as_text=True)
    pair = first.get_json()
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 900
    assert pair["user"]["nickname"] == "분리수거왕" and pair["user"]["provider"] == "kakao"

    second = _login(api, "kakao", {"access_token": "sdk-token"}, agent="growbin-android/1.4")
    assert second.status_code == 200, second.get_data(as_text=True)
    assert second.get_json()["user"] == pair["user"]

    me = api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200 and me.get_json() == pair["user"]

    audit = sorted(_audit(pair["user"]["id"]), key=lambda row: row["logged_in_at"])
    assert [(row["provider"], row["user_agent"]) for row in audit] == [
        ("kakao", "growbin-ios/1.4"),
        ("kakao", "growbin-android/1.4"),
    ]
    assert all(row["session_id"] and row["logged_in_at"] for row in audit)
    assert audit[0]["session_id"] != audit[1]["session_id"]


def test_kakao_without_nickname_consent_gets_a_default_nickname(api, mock):
    mock.get(oauth.KAKAO_ME, json={"id": 42, "connected_at": "2024-05-02T01:23:45Z"})
    response = _login(api, "kakao", {"access_token": "sdk-token"})
    assert response.status_code == 200
    assert response.get_json()["user"]["nickname"] == "kakao-42"


@pytest.mark.parametrize(
    ("status", "payload", "code", "provider_error"),
    [
        (
            400,
            {
                "error": "invalid_grant",
                "error_description": "authorization code not found for code=used",
                "error_code": "KOE320",
            },
            "UNAUTHENTICATED",
            "invalid_grant",
        ),
        (
            401,
            {
                "error": "invalid_client",
                "error_description": "Bad client credentials",
                "error_code": "KOE010",
            },
            "PROVIDER_ERROR",
            None,
        ),
    ],
)
def test_kakao_refuses_the_code(api, mock, status, payload, code, provider_error):
    mock.post(oauth.KAKAO_TOKEN, status=status, json=payload)
    response = _login(api, "kakao", {"code": "used", "redirect_uri": REDIRECT})
    assert error_code(response) == code
    assert response.status_code == (401 if code == "UNAUTHENTICATED" else 502)
    if provider_error:
        assert response.get_json()["error"]["details"]["provider_error"] == provider_error


def test_kakao_refuses_the_sdk_token(api, mock):
    mock.get(
        oauth.KAKAO_ME, status=401, json={"msg": "this access token does not exist", "code": -401}
    )
    response = _login(api, "kakao", {"access_token": "expired"})
    assert response.status_code == 401 and error_code(response) == "UNAUTHENTICATED"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_kakao_sdk_token_of_another_app_is_refused_when_app_id_is_set(providers, mock):
    providers.setenv("KAKAO_APP_ID", "1234567")
    with _running() as api:
        mock.get(oauth.KAKAO_TOKEN_INFO, json={"id": 3141592653, "expires_in": 7199, "app_id": 999})
        response = _login(api, "kakao", {"access_token": "from-another-app"})
        assert (
            response.status_code == 401 and "another app" in response.get_json()["error"]["message"]
        )

        mock.get(
            oauth.KAKAO_TOKEN_INFO, json={"id": 3141592653, "expires_in": 7199, "app_id": 1234567}
        )
        mock.get(oauth.KAKAO_ME, json=KAKAO_USER)
        assert _login(api, "kakao", {"access_token": "ours"}).status_code == 200


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectionError("Connection refused"),
        requests.exceptions.ConnectTimeout("connect timeout"),
        requests.exceptions.ReadTimeout("read timeout"),
    ],
    ids=["connection-error", "connect-timeout", "read-timeout"],
)
def test_kakao_unreachable_is_503_with_retry_after(api, mock, failure):
    mock.post(oauth.KAKAO_TOKEN, body=failure)
    response = _login(api, "kakao", {"code": "c", "redirect_uri": REDIRECT})
    assert response.status_code == 503 and error_code(response) == "UNAVAILABLE"
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("status", "retry_after"), [(500, "5"), (502, "5"), (503, "5"), (429, "30")]
)
def test_kakao_failing_is_503(api, mock, status, retry_after):
    mock.get(
        oauth.KAKAO_ME,
        status=status,
        body="<html>error</html>",
        headers={"Retry-After": "30"} if status == 429 else {},
    )
    response = _login(api, "kakao", {"access_token": "t"})
    assert response.status_code == 503 and error_code(response) == "UNAVAILABLE"
    assert response.headers["Retry-After"] == retry_after


@pytest.mark.parametrize(
    "kwargs",
    [
        {"body": "<html>maintenance</html>", "content_type": "text/html"},
        {"json": ["not", "an", "object"]},
        {"json": {"connected_at": "2024-05-02T01:23:45Z"}},  # no id
        {"json": {"id": True}},
        {"json": {"id": 1.5}},
        {"json": {"id": "x" * 201}},
    ],
    ids=["html", "array", "no-id", "bool-id", "float-id", "huge-id"],
)
def test_kakao_malformed_user_info_is_a_clear_502(api, mock, kwargs):
    mock.get(oauth.KAKAO_ME, **kwargs)
    response = _login(api, "kakao", {"access_token": "t"})
    assert response.status_code == 502 and error_code(response) == "PROVIDER_ERROR"
    assert "kakao" in response.get_json()["error"]["message"]


def test_kakao_odd_optional_fields_still_sign_in(api, mock):
    mock.get(oauth.KAKAO_ME, json={"id": 7, "kakao_account": "oops", "properties": ["oops"]})
    response = _login(api, "kakao", {"access_token": "t"})
    assert response.status_code == 200 and response.get_json()["user"]["nickname"] == "kakao-7"


def test_kakao_token_answer_without_access_token_is_502(api, mock):
    mock.post(oauth.KAKAO_TOKEN, json={"token_type": "bearer", "expires_in": 21599})
    response = _login(api, "kakao", {"code": "c", "redirect_uri": REDIRECT})
    assert response.status_code == 502 and error_code(response) == "PROVIDER_ERROR"


# ---- Naver --------------------------------------------------------------------------------


def test_naver_web_flow_with_state_then_sdk_token_is_one_user(api, mock):
    params = _authorize(api, "naver")
    assert params["base"] == [oauth.NAVER_AUTHORIZE]
    assert params["client_id"] == ["naver-client"] and params["response_type"] == ["code"]
    assert params["redirect_uri"] == [REDIRECT]
    assert "code_challenge" not in params  # Naver has no PKCE
    state = params["state"][0]
    mock.post(
        oauth.NAVER_TOKEN,
        json=NAVER_TOKENS,
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "authorization_code",
                    "client_id": "naver-client",
                    "client_secret": "naver-secret",
                    "redirect_uri": REDIRECT,
                    "code": "naver-code",
                    "state": state,
                }
            )
        ],
    )
    mock.get(
        oauth.NAVER_ME,
        json=NAVER_PROFILE,
        match=[
            matchers.header_matcher({"Authorization": f"Bearer {NAVER_TOKENS['access_token']}"})
        ],
    )
    mock.get(oauth.NAVER_ME, json=NAVER_PROFILE)
    first = _login(api, "naver", {"code": "naver-code", "redirect_uri": REDIRECT, "state": state})
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json()["user"]["nickname"] == "OpenAPI"
    second = _login(api, "naver", {"access_token": "naver-sdk-token"})
    assert second.get_json()["user"]["id"] == first.get_json()["user"]["id"]

    replay = _login(api, "naver", {"code": "naver-code", "redirect_uri": REDIRECT, "state": state})
    assert replay.status_code == 401 and error_code(replay) == "INVALID_STATE"


def test_naver_code_flow_needs_the_state(api):
    response = _login(api, "naver", {"code": "c", "redirect_uri": REDIRECT})
    assert (
        response.status_code == 422 and "state" in response.get_json()["error"]["details"]["fields"]
    )


def test_naver_reports_a_bad_code_inside_a_200(api, mock):
    state = _authorize(api, "naver")["state"][0]
    mock.post(
        oauth.NAVER_TOKEN,
        json={"error": "invalid_request", "error_description": "no valid data in session"},
    )
    response = _login(api, "naver", {"code": "stale", "redirect_uri": REDIRECT, "state": state})
    assert response.status_code == 401 and error_code(response) == "UNAUTHENTICATED"
    assert "no valid data in session" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (401, {"resultcode": "024", "message": "Authentication failed / 인증에 실패했습니다."}),
        (200, {"resultcode": "024", "message": "Authentication failed / 인증에 실패했습니다."}),
    ],
)
def test_naver_refuses_the_sdk_token(api, mock, status, payload):
    mock.get(oauth.NAVER_ME, status=status, json=payload)
    response = _login(api, "naver", {"access_token": "revoked"})
    assert response.status_code == 401 and error_code(response) == "UNAUTHENTICATED"


def test_naver_down_is_503(api, mock):
    mock.get(
        oauth.NAVER_ME, status=500, json={"resultcode": "500", "message": "Internal Server Error"}
    )
    response = _login(api, "naver", {"access_token": "t"})
    assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    "payload",
    [
        {"message": "success", "response": {"id": "1"}},  # no resultcode
        {"resultcode": "00", "message": "success"},  # no response
        {"resultcode": "00", "message": "success", "response": {"nickname": "x"}},  # no id
        {"resultcode": "00", "message": "success", "response": "32742776"},
    ],
    ids=["no-resultcode", "no-response", "no-id", "response-not-object"],
)
def test_naver_malformed_envelope_is_502(api, mock, payload):
    mock.get(oauth.NAVER_ME, json=payload)
    response = _login(api, "naver", {"access_token": "t"})
    assert response.status_code == 502 and error_code(response) == "PROVIDER_ERROR"


# ---- Google -------------------------------------------------------------------------------


def test_google_id_tokens_verified_with_cached_keys_are_one_user(api, mock, google_key):
    mock.get(oauth.GOOGLE_CERTS, json=_jwks(google_key), headers=CERTS_HEADERS)
    first = _login(api, "google", {"id_token": _id_token(google_key)})
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json()["user"]["nickname"] == "김하늘"
    # The iOS client's audience and the scheme-less issuer are Google's too.
    token = _id_token(google_key, aud=GOOGLE_IOS, iss="accounts.google.com")
    second = _login(api, "google", {"id_token": token})
    assert second.status_code == 200, second.get_data(as_text=True)
    assert second.get_json()["user"]["id"] == first.get_json()["user"]["id"]
    assert len(mock.calls) == 1  # the key set was fetched once, then cached


def test_google_web_flow_with_state_and_pkce(api, mock, google_key):
    params = _authorize(api, "google")
    assert params["base"] == [oauth.GOOGLE_AUTHORIZE]
    assert params["client_id"] == [GOOGLE_WEB] and params["scope"] == ["openid profile"]
    assert params["code_challenge_method"] == ["S256"]
    challenge = params["code_challenge"][0]
    sent = {}

    def token_endpoint(request):
        sent.update({k: v[0] for k, v in parse_qs(request.body).items()})
        answer = {
            "access_token": "ya29.a0AfH6SM",
            "expires_in": 3599,
            "scope": "openid https://www.googleapis.com/auth/userinfo.profile",
            "token_type": "Bearer",
            "id_token": _id_token(google_key),
        }
        return 200, {}, json.dumps(answer)

    mock.add_callback(responses.POST, oauth.GOOGLE_TOKEN, callback=token_endpoint)
    mock.get(oauth.GOOGLE_CERTS, json=_jwks(google_key), headers=CERTS_HEADERS)
    body = {"code": "4/0AX4XfWh", "redirect_uri": REDIRECT, "state": params["state"][0]}
    response = _login(api, "google", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    verifier = sent["code_verifier"]
    digest = hashlib.sha256(verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).decode().rstrip("=") == challenge
    assert sent["client_id"] == GOOGLE_WEB and sent["client_secret"] == "google-secret"
    assert sent["redirect_uri"] == REDIRECT and sent["grant_type"] == "authorization_code"


@pytest.mark.parametrize(
    "forge",
    [
        lambda key: _id_token(key, aud="someone-else.apps.googleusercontent.com"),
        lambda key: _id_token(key, iss="https://accounts.google.com.evil.example"),
        lambda key: _id_token(key, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        lambda key: _id_token(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        lambda key: _id_token(key)[:-8] + "AAAAAAAA",
        lambda key: jwt.encode(
            {"sub": GOOGLE_SUB, "aud": GOOGLE_WEB}, "secret" * 6, headers={"kid": "g-key-1"}
        ),
    ],
    ids=[
        "wrong-audience",
        "wrong-issuer",
        "expired",
        "other-key-same-kid",
        "bad-signature",
        "hs256",
    ],
)
def test_google_rejects_forged_id_tokens(api, google_key, forge):
    # Not every forgery gets as far as the key set (hs256 is refused on its header).
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(oauth.GOOGLE_CERTS, json=_jwks(google_key), headers=CERTS_HEADERS)
        response = _login(api, "google", {"id_token": forge(google_key)})
    assert response.status_code == 401 and error_code(response) == "UNAUTHENTICATED"


def test_google_key_rotation_refetches_but_forged_kids_do_not_hammer(api, mock, google_key):
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    both = {"keys": _jwks(google_key)["keys"] + _jwks(rotated, "g-key-2")["keys"]}
    mock.get(oauth.GOOGLE_CERTS, json=_jwks(google_key), headers=CERTS_HEADERS)
    mock.get(oauth.GOOGLE_CERTS, json=both, headers=CERTS_HEADERS)
    assert _login(api, "google", {"id_token": _id_token(google_key)}).status_code == 200
    # A kid we do not know, right after fetching: refused without asking Google again.
    too_soon = _login(api, "google", {"id_token": _id_token(rotated, kid="g-key-2")})
    assert too_soon.status_code == 401 and len(mock.calls) == 1
    oauth._keys["fetched"] -= 2 * oauth.REFETCH_AFTER  # a while later Google has rotated
    rotated_in = _login(api, "google", {"id_token": _id_token(rotated, kid="g-key-2")})
    assert rotated_in.status_code == 200 and len(mock.calls) == 2
    forged = _login(api, "google", {"id_token": _id_token(rotated, kid="made-up")})
    assert forged.status_code == 401 and len(mock.calls) == 2


def test_google_refuses_the_code(api, mock):
    mock.post(
        oauth.GOOGLE_TOKEN,
        status=400,
        json={"error": "invalid_grant", "error_description": "Bad Request"},
    )
    response = _login(api, "google", {"code": "used", "redirect_uri": REDIRECT})
    assert response.status_code == 401 and error_code(response) == "UNAUTHENTICATED"


def test_google_keys_unreachable_is_503(api, mock, google_key):
    mock.get(oauth.GOOGLE_CERTS, body=requests.ConnectionError("no route to host"))
    response = _login(api, "google", {"id_token": _id_token(google_key)})
    assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    "payload",
    [{"keys": []}, {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "g-key-1"}]}, {"certs": "x"}],
    ids=["empty", "hmac-only", "not-jwks"],
)
def test_google_malformed_key_set_is_502(api, mock, google_key, payload):
    mock.get(oauth.GOOGLE_CERTS, json=payload)
    response = _login(api, "google", {"id_token": _id_token(google_key)})
    assert response.status_code == 502 and error_code(response) == "PROVIDER_ERROR"


def test_google_token_answer_without_id_token_is_502(api, mock):
    mock.post(
        oauth.GOOGLE_TOKEN,
        json={"access_token": "ya29.x", "expires_in": 3599, "token_type": "Bearer"},
    )
    response = _login(api, "google", {"code": "c", "redirect_uri": REDIRECT})
    assert response.status_code == 502 and "id_token" in response.get_json()["error"]["message"]


# ---- the login body, the state, the configuration -----------------------------------------


@pytest.mark.parametrize(
    ("provider", "body", "field"),
    [
        ("kakao", {}, "code"),
        ("kakao", {"code": "c"}, "redirect_uri"),
        ("kakao", {"code": "c", "redirect_uri": REDIRECT, "access_token": "t"}, "access_token"),
        ("kakao", {"id_token": "t"}, "id_token"),
        ("google", {"access_token": "t"}, "access_token"),
        ("naver", {"access_token": "t", "state": "s"}, "state"),
        (
            "kakao",
            {"code": "c", "redirect_uri": REDIRECT, "code_verifier": "short"},
            "code_verifier",
        ),
        ("kakao", {"code": "c", "redirect_uri": "not a uri"}, "redirect_uri"),
        ("google", {"id_token": "t", "nonce": "n"}, "nonce"),
        ("naver", {"access_token": "t\r\nX-Injected: 1"}, "access_token"),
        ("kakao", {"access_token": ""}, "access_token"),
    ],
)
def test_bad_login_bodies_are_422_naming_the_field(api, provider, body, field):
    response = _login(api, provider, body)
    assert response.status_code == 422 and error_code(response) == "VALIDATION_FAILED"
    assert field in response.get_json()["error"]["details"]["fields"]


def test_unknown_provider_is_404_and_dev_is_still_dev(api):
    response = _login(api, "facebook", {"access_token": "t"})
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"
    response = api.get("/api/v1/auth/authorize/apple", query_string={"redirect_uri": REDIRECT})
    assert response.status_code == 404
    assert _login(api, "dev", {"user": "alice"}).status_code == 200


def test_states_are_single_use_per_provider_and_redirect(api, mock):
    from shared.core import cache

    kakao = _authorize(api, "kakao")
    state = kakao["state"][0]
    assert 595 <= cache.client().ttl(oauth._state_key(state)) <= 600
    wrong_redirect = _login(
        api, "kakao", {"code": "c", "redirect_uri": REDIRECT + "/x", "state": state}
    )
    assert wrong_redirect.status_code == 401 and error_code(wrong_redirect) == "INVALID_STATE"
    # That attempt spent it: a state is tried once, whatever the outcome.
    again = _login(api, "kakao", {"code": "c", "redirect_uri": REDIRECT, "state": state})
    assert error_code(again) == "INVALID_STATE"

    google_state = _authorize(api, "google")["state"][0]
    crossed = _login(api, "kakao", {"code": "c", "redirect_uri": REDIRECT, "state": google_state})
    assert crossed.status_code == 401 and "google" in crossed.get_json()["error"]["message"]

    made_up = _login(api, "kakao", {"code": "c", "redirect_uri": REDIRECT, "state": "made-up"})
    assert made_up.status_code == 401 and error_code(made_up) == "INVALID_STATE"
    assert len(mock.calls) == 0  # none of these reached Kakao


def test_kakao_web_flow_sends_the_verifier_kept_with_the_state(api, mock):
    params = _authorize(api, "kakao")
    assert params["base"] == [oauth.KAKAO_AUTHORIZE] and params["client_id"] == ["kakao-rest-key"]
    challenge = params["code_challenge"][0]
    sent = {}

    def token_endpoint(request):
        sent.update({k: v[0] for k, v in parse_qs(request.body).items()})
        return 200, {}, json.dumps(KAKAO_TOKENS)

    mock.add_callback(responses.POST, oauth.KAKAO_TOKEN, callback=token_endpoint)
    mock.get(oauth.KAKAO_ME, json=KAKAO_USER)
    body = {"code": "kakao-code", "redirect_uri": REDIRECT, "state": params["state"][0]}
    assert _login(api, "kakao", body).status_code == 200
    digest = hashlib.sha256(sent["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).decode().rstrip("=") == challenge


def test_unconfigured_provider_says_which_variable_to_set(env, client):
    for provider, variable in [
        ("kakao", "KAKAO_CLIENT_ID"),
        ("naver", "NAVER_CLIENT_ID"),
        ("google", "GOOGLE_CLIENT_IDS"),
    ]:
        body = {"id_token": "t"} if provider == "google" else {"access_token": "t"}
        response = client.post(f"/api/v1/auth/login/{provider}", json=body)
        assert response.status_code == 503 and error_code(response) == "PROVIDER_NOT_CONFIGURED"
        assert variable in response.get_json()["error"]["message"]
        assert int(response.headers["Retry-After"]) > 0  # the contract's rule for every 503
        authorize = client.get(
            f"/api/v1/auth/authorize/{provider}", query_string={"redirect_uri": REDIRECT}
        )
        assert error_code(authorize) == "PROVIDER_NOT_CONFIGURED"


def test_naver_code_flow_without_secret_names_it(env, mock):
    env.setenv("NAVER_CLIENT_ID", "naver-client")
    with _running() as api:
        state = _authorize(api, "naver")["state"][0]
        response = _login(api, "naver", {"code": "c", "redirect_uri": REDIRECT, "state": state})
    assert response.status_code == 503 and error_code(response) == "PROVIDER_NOT_CONFIGURED"
    assert "NAVER_CLIENT_SECRET" in response.get_json()["error"]["message"]
