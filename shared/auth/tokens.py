"""Access tokens: ES256 JWTs with a `kid`, so every function verifies with public keys alone.

Only the functions that issue tokens (`uses` "signing") hold the private key (JWT_PRIVATE_KEY);
the others get the public key set (JWT_PUBLIC_KEYS, a JWKS), which may carry old keys while
they rotate. In local mode a
key pair is made once under the data directory. Verification pins the algorithm, checks
issuer, audience, expiry and not-before.

A token stands only while its login session does, and every protected request asks, so the
session's state is cached here (`session_key`): "revoked" always overwrites; "active" is only
written where nothing is cached (`allow`), so a reader that looked at the sessions table just
before a revocation can never put a revoked session back to life. The table behind it is the
sessions module's; `callers` reads this cache first and the table only when it has no state.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm

from shared.core import cache, mirror
from shared.core.errors import unauthenticated
from shared.core.settings import settings

ALGORITHM = "ES256"
ACCESS_TTL = 15 * 60
LEEWAY = 30  # seconds of clock skew tolerated between pods
STATE_TTL = 300  # seconds a cached "active" answer may live
DENY_TTL = ACCESS_TTL + LEEWAY  # a revocation outlives every access token issued


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the verified access token says."""

    user_id: str
    session_id: str
    role: str
    token_id: str
    expires_at: int


# ---- keys ---------------------------------------------------------------------------------


def _kid(public_key: Any) -> str:
    """RFC 7638 thumbprint, so the same key always has the same id."""
    import base64
    import hashlib

    jwk = json.loads(ECAlgorithm.to_jwk(public_key))
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return (
        base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")
    )


def _load_private_pem() -> bytes | None:
    configured = settings().jwt_private_key
    if configured:
        return configured.encode()
    if not settings().local:
        return None
    path = settings().data_dir / "jwt-es256.pem"
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        try:
            # link() never replaces: of processes racing here, the first one's key is everyone's.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes()


@functools.cache
def signing_key() -> tuple[str, Any]:
    """(kid, private key) for issuing; only the token issuers (`uses` "signing") call this."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    pem = _load_private_pem()
    if pem is None:
        raise RuntimeError("JWT_PRIVATE_KEY is not set: this function cannot issue tokens")
    key = load_pem_private_key(pem, password=None)
    return _kid(key.public_key()), key


@functools.cache
def verification_keys() -> dict[str, Any]:
    """kid -> public key, from JWT_PUBLIC_KEYS (JWKS) or derived from the signing key."""
    configured = settings().jwt_public_keys
    if configured:
        keys = json.loads(configured)["keys"]
        return {
            k["kid"]: ECAlgorithm.from_jwk(json.dumps(k))
            for k in keys
            if k.get("kty") == "EC" and isinstance(k.get("kid"), str)
        }
    kid, private = signing_key()
    return {kid: private.public_key()}


def jwks() -> dict[str, Any]:
    """The public key set, as operators publish it in JWT_PUBLIC_KEYS."""
    out = []
    for kid, key in verification_keys().items():
        jwk = json.loads(ECAlgorithm.to_jwk(key))
        out.append({**jwk, "kid": kid, "use": "sig", "alg": ALGORITHM})
    return {"keys": out}


# ---- issuing and verifying ----------------------------------------------------------------


def issue_access(user_id: str, session_id: str, role: str = "user") -> tuple[str, int]:
    kid, key = signing_key()
    now = int(time.time())
    claims = {
        "iss": settings().jwt_issuer,
        "aud": settings().jwt_audience,
        "sub": user_id,
        "sid": session_id,
        "role": role,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + ACCESS_TTL,
        "typ": "access",
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid}), ACCESS_TTL


# Tokens this process has verified: the same bytes verify the same way until they expire, and
# the hot path (status polling) presents one token many times. Revocation is not kept in the
# process: the session's state is read from the cache on every call (`callers`).
_verified: dict[str, Principal] = {}
_VERIFIED_MAX = 4096


def verify(token: str) -> Principal:
    """Check signature, algorithm, kid, issuer, audience and times; no session lookup."""
    known = _verified.get(token)
    if known is not None and time.time() < known.expires_at + LEEWAY:
        return known
    principal = _verify(token)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()  # bounded memory; the next calls verify again
    _verified[token] = principal
    return principal


def _verify(token: str) -> Principal:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise unauthenticated(message="malformed token") from None
    kid = header.get("kid")
    key = verification_keys().get(kid) if isinstance(kid, str) else None
    if header.get("alg") != ALGORITHM or key is None:
        raise unauthenticated(message="token not signed by a known key")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=settings().jwt_audience,
            issuer=settings().jwt_issuer,
            leeway=LEEWAY,
            options={"require": ["iss", "aud", "exp", "nbf", "iat", "sub", "sid", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise unauthenticated("TOKEN_EXPIRED", "access token expired; refresh it") from None
    except jwt.InvalidTokenError as exc:
        raise unauthenticated(message=f"invalid token: {exc}") from None
    if claims.get("typ") != "access":
        raise unauthenticated(message="not an access token")
    return Principal(
        user_id=claims["sub"],
        session_id=claims["sid"],
        role=claims.get("role", "user"),
        token_id=claims["jti"],
        expires_at=claims["exp"],
    )


# ---- whether a token's session still stands -----------------------------------------------


def session_key(session_id: str) -> str:
    """Where a session's state ("active" or "revoked") is cached."""
    return f"session:{session_id}"


def deny(session_ids: list[str]) -> None:
    """The cache says revoked at once, past the expiry of every access token of the sessions,
    and every process that kept the sessions' state (`mirror`) hears of it with the write."""
    with cache.client().pipeline() as tx:
        for session_id in session_ids:
            tx.set(session_key(session_id), "revoked", ex=DENY_TTL)
            mirror.changed(session_key(session_id), tx)
        tx.execute()


def allow(session_id: str) -> bool:
    """Cache the session as active, unless something is cached already; whether it was. No
    process can hold a copy of a state that was not cached (`mirror` keeps none), so no one
    needs to hear of this."""
    return bool(cache.client().set(session_key(session_id), "active", ex=STATE_TTL, nx=True))
