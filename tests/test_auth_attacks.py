"""Attacks on our own tokens: every one refused with the right code, none with a 500.

Forgeries are made with the real signing key where that is the point (wrong issuer, audience,
times) and without it where that is the point (alg none, HS256 keyed with the public key, another
key under our kid). The session attacks (logout, refresh-token reuse, deleted account) run on the
embedded default and on the real PostgreSQL and Redis.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from conftest import error_code
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ME = "/api/v1/auth/me"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _segment(value: dict) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _login(client, name: str = "alice") -> dict:
    response = client.post("/api/v1/auth/login/dev", json={"user": name})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _me(client, token: str):
    return client.get(ME, headers={"Authorization": f"Bearer {token}"})


def _refresh(client, refresh_token: str):
    return client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


def _claims(access_token: str) -> dict:
    return jwt.decode(access_token, options={"verify_signature": False})


def _signed(claims: dict, **header) -> str:
    """Claims signed with the real key, under its kid unless the header says otherwise."""
    from shared.auth import tokens

    kid, key = tokens.signing_key()
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, **header})


def _public_pem() -> bytes:
    from shared.auth import tokens

    _kid, key = tokens.signing_key()
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _alg_none(claims: dict) -> str:
    from shared.auth import tokens

    kid, _key = tokens.signing_key()
    return f"{_segment({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_segment(claims)}."


def _hs256_with_public_key(claims: dict) -> str:
    # PyJWT refuses to HMAC with a PEM key, as a careful library should: sign by hand.
    from shared.auth import tokens

    kid, _key = tokens.signing_key()
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_segment(claims)}"
    mac = hmac.new(_public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _other_key_known_kid(claims: dict) -> str:
    from shared.auth import tokens

    kid, _key = tokens.signing_key()
    stranger = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": kid})


def _embedded_jwk(claims: dict) -> str:
    """The attacker's own key carried in the header (jwk), under our kid: must be ignored."""
    from jwt.algorithms import ECAlgorithm

    from shared.auth import tokens

    kid, _key = tokens.signing_key()
    stranger = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(stranger.public_key()))
    return jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": kid, "jwk": jwk})


def _tampered(access_token: str, **changes) -> str:
    header, payload, signature = access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{_segment({**claims, **changes})}.{signature}"


def _with_kid(kid) -> str:
    """A header whose kid is not a string: must be a 401, not a TypeError."""
    return f"{_segment({'alg': 'ES256', 'kid': kid})}.{_segment({'sub': 'x'})}.c2ln"


NOW = int(time.time())
FORGERIES = {
    # name: (make(valid_claims, valid_token, other_user_id) -> token, expected code)
    "alg-none": (lambda c, t, o: _alg_none(c), "UNAUTHENTICATED"),
    "hs256-keyed-with-public-pem": (lambda c, t, o: _hs256_with_public_key(c), "UNAUTHENTICATED"),
    "wrong-kid": (lambda c, t, o: _signed(c, kid="not-our-key"), "UNAUTHENTICATED"),
    "no-kid": (lambda c, t, o: _tampered_header(t, kid=None), "UNAUTHENTICATED"),
    "kid-not-a-string": (lambda c, t, o: _with_kid(["a", "b"]), "UNAUTHENTICATED"),
    "kid-object": (lambda c, t, o: _with_kid({"$ne": ""}), "UNAUTHENTICATED"),
    "other-key-with-known-kid": (lambda c, t, o: _other_key_known_kid(c), "UNAUTHENTICATED"),
    "embedded-jwk": (lambda c, t, o: _embedded_jwk(c), "UNAUTHENTICATED"),
    "expired": (
        lambda c, t, o: _signed({**c, "iat": NOW - 3600, "nbf": NOW - 3600, "exp": NOW - 600}),
        "TOKEN_EXPIRED",
    ),
    "not-yet-valid": (lambda c, t, o: _signed({**c, "nbf": NOW + 3600}), "UNAUTHENTICATED"),
    "issued-in-the-future": (lambda c, t, o: _signed({**c, "iat": NOW + 3600}), "UNAUTHENTICATED"),
    "wrong-issuer": (
        lambda c, t, o: _signed({**c, "iss": "https://evil.example"}),
        "UNAUTHENTICATED",
    ),
    "no-issuer": (lambda c, t, o: _signed(_without(c, "iss")), "UNAUTHENTICATED"),
    "wrong-audience": (lambda c, t, o: _signed({**c, "aud": "someone-else"}), "UNAUTHENTICATED"),
    "no-audience": (lambda c, t, o: _signed(_without(c, "aud")), "UNAUTHENTICATED"),
    "no-expiry": (lambda c, t, o: _signed(_without(c, "exp")), "UNAUTHENTICATED"),
    "tampered-subject": (lambda c, t, o: _tampered(t, sub=o), "UNAUTHENTICATED"),
    "tampered-role": (lambda c, t, o: _tampered(t, role="admin"), "UNAUTHENTICATED"),
    "signature-stripped": (lambda c, t, o: t.rsplit(".", 1)[0] + ".", "UNAUTHENTICATED"),
    "not-an-access-token": (lambda c, t, o: _signed({**c, "typ": "refresh"}), "UNAUTHENTICATED"),
    "unknown-session": (lambda c, t, o: _signed({**c, "sid": "no-such-session"}), "TOKEN_REVOKED"),
    "garbage": (lambda c, t, o: "not.a.jwt", "UNAUTHENTICATED"),
    "non-ascii": (lambda c, t, o: "토큰.토큰.토큰", "UNAUTHENTICATED"),
}


def _without(claims: dict, name: str) -> dict:
    return {k: v for k, v in claims.items() if k != name}


def _tampered_header(token: str, **changes) -> str:
    header, payload, signature = token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    fields = {k: v for k, v in {**fields, **changes}.items() if v is not None}
    return f"{_segment(fields)}.{payload}.{signature}"


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_access_tokens_are_refused(client, name):
    make, expected = FORGERIES[name]
    alice = _login(client, "alice")
    bob = _login(client, "bob")
    token = make(_claims(alice["access_token"]), alice["access_token"], bob["user"]["id"])
    response = _me(client, token)
    assert response.status_code == 401, (name, response.get_data(as_text=True))
    assert error_code(response) == expected, (name, response.get_json())
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert _me(client, alice["access_token"]).status_code == 200  # the real one still works


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic YWxpY2U6c2VjcmV0", "Token abc", "Bearer a b c"],
)
def test_malformed_authorization_headers_are_401(client, header):
    response = client.get(ME, headers={"Authorization": header})
    assert response.status_code == 401 and error_code(response) == "UNAUTHENTICATED"


def test_the_bearer_scheme_is_case_insensitive(client):
    token = _login(client)["access_token"]
    response = client.get(ME, headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200


def test_refresh_and_access_tokens_are_not_interchangeable(client):
    pair = _login(client)
    as_access = _me(client, pair["refresh_token"])
    assert as_access.status_code == 401 and error_code(as_access) == "UNAUTHENTICATED"
    as_refresh = _refresh(client, pair["access_token"])
    assert as_refresh.status_code == 401 and error_code(as_refresh) == "UNAUTHENTICATED"
    assert _me(client, pair["access_token"]).status_code == 200


# ---- session attacks, on both backends ----------------------------------------------------


@pytest.fixture
def api(system_on):
    return system_on.app.test_client()


def test_login_refresh_logout_end_to_end(api):
    pair = _login(api, "alice")
    assert _me(api, pair["access_token"]).get_json()["nickname"] == "alice"

    rotated = _refresh(api, pair["refresh_token"])
    assert rotated.status_code == 200, rotated.get_data(as_text=True)
    new = rotated.get_json()
    assert new["refresh_token"] != pair["refresh_token"] and new["user"] == pair["user"]
    assert _me(api, new["access_token"]).status_code == 200
    assert _me(api, pair["access_token"]).status_code == 200  # same session, still alive

    out = api.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {new['access_token']}"}
    )
    assert out.status_code == 204 and out.get_data() == b""
    for token in (new["access_token"], pair["access_token"]):
        response = _me(api, token)
        assert response.status_code == 401 and error_code(response) == "TOKEN_REVOKED"
    dead = _refresh(api, new["refresh_token"])
    assert dead.status_code == 401 and error_code(dead) == "TOKEN_REVOKED"


def test_reused_refresh_token_revokes_the_whole_session(api):
    pair = _login(api, "alice")
    other_device = _login(api, "alice")  # another session of the same user: untouched
    stolen = pair["refresh_token"]
    legit = _refresh(api, stolen).get_json()

    replay = _refresh(api, stolen)
    assert replay.status_code == 401 and error_code(replay) == "TOKEN_REUSED"
    for token in (pair["access_token"], legit["access_token"]):
        response = _me(api, token)
        assert response.status_code == 401 and error_code(response) == "TOKEN_REVOKED"
    for token in (legit["refresh_token"], stolen):
        response = _refresh(api, token)
        assert response.status_code == 401 and error_code(response) == "TOKEN_REVOKED"
    assert _me(api, other_device["access_token"]).status_code == 200


def test_logout_with_a_refresh_token_ends_that_session_only_if_it_is_yours(api):
    phone = _login(api, "alice")
    tablet = _login(api, "alice")
    mallory = _login(api, "mallory")
    headers = {"Authorization": f"Bearer {phone['access_token']}"}
    # Someone else's refresh token in the body changes nothing for them.
    body = {"refresh_token": mallory["refresh_token"]}
    assert api.post("/api/v1/auth/logout", headers=headers, json=body).status_code == 204
    assert _me(api, mallory["access_token"]).status_code == 200

    tablet_headers = {"Authorization": f"Bearer {tablet['access_token']}"}
    phone_again = _login(api, "alice")
    body = {"refresh_token": phone_again["refresh_token"]}
    assert api.post("/api/v1/auth/logout", headers=tablet_headers, json=body).status_code == 204
    assert error_code(_me(api, tablet["access_token"])) == "TOKEN_REVOKED"
    assert error_code(_me(api, phone_again["access_token"])) == "TOKEN_REVOKED"


def test_tokens_of_a_deleted_user_are_dead(api):
    from shared.auth import callers, sessions
    from shared.core.errors import ApiError

    pair = _login(api, "alice")
    rotated = _refresh(api, pair["refresh_token"]).get_json()
    assert _me(api, rotated["access_token"]).status_code == 200  # the cache now says "active"

    assert sessions.delete_account(pair["user"]["id"]) is True
    assert sessions.delete_account(pair["user"]["id"]) is False
    for token in (pair["access_token"], rotated["access_token"]):
        response = _me(api, token)
        assert response.status_code == 401 and error_code(response) == "TOKEN_REVOKED"
        # What every other function relies on, without looking the user up as /me does.
        with pytest.raises(ApiError) as refused:
            callers.authenticate(f"Bearer {token}")
        assert refused.value.code == "TOKEN_REVOKED"
    response = _refresh(api, rotated["refresh_token"])
    assert response.status_code == 401
    # The same name signs in again as a new user.
    again = _login(api, "alice")
    assert again["user"]["id"] != pair["user"]["id"]


def test_a_revocation_is_not_undone_by_a_reader_that_saw_the_table_before_it(api):
    """is_active read "alive" from the table, then revoke ran: the late "active" must not win."""
    from shared.auth import sessions, tokens
    from shared.core import cache

    pair = _login(api, "alice")
    session_id = _claims(pair["access_token"])["sid"]
    cache.client().delete(tokens.session_key(session_id))
    real_set = cache.client().set
    client = cache.client()

    def revoke_then_set(key, value, **kwargs):
        if value == "active":  # is_active has read the table; the revocation lands now
            client.set = real_set
            sessions.revoke(session_id, "logout")
        return real_set(key, value, **kwargs)

    try:
        client.set = revoke_then_set
        assert sessions.is_active(session_id) is False
    finally:
        client.set = real_set
    assert error_code(_me(api, pair["access_token"])) == "TOKEN_REVOKED"


def test_a_login_racing_the_deletion_of_its_account_is_refused_not_500(api):
    """The login found the user, then the account was deleted: the session insert must fail."""
    from shared.auth import accounts, sessions
    from shared.core.errors import ApiError

    user = accounts.find_or_create("dev", "carol", "carol")
    assert sessions.delete_account(user["id"])
    with pytest.raises(ApiError) as refused:
        sessions.start(user, "growbin-ios/1.4")
    assert refused.value.status == 401 and refused.value.code == "UNAUTHENTICATED"
