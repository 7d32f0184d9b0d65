"""Object storage: S3 through boto3 when S3_BUCKET is set, else a directory under the data dir.

Clients upload with a presigned POST form bounded to one key, one content type and a maximum
length. S3 enforces that itself; locally the dev server's `/_storage/upload` calls
`accept_local_upload`, which enforces the same policy (type, size, expiry, signature), so the
mobile app's upload code is the same against both. The pipeline reads images by key, never by
a URL that could expire before the vision call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from shared.core.batching import chunked
from shared.core.errors import ApiError
from shared.core.settings import settings
from shared.core.times import rfc3339

UPLOAD_PATH = "/_storage/upload"
OBJECT_PATH = "/_storage/objects/"


# ---- backends -----------------------------------------------------------------------------


@cache
def s3_client() -> Any:
    import boto3  # heavy: only functions that touch storage pay for it, and only once
    from botocore.config import Config

    # Every wait is bounded, so an S3 outage is a quick 503 (shared/core/errors.py) that the client,
    # or the broker for events, retries. S3 sends its first byte within tens of milliseconds and
    # AWS advises latency-sensitive clients to retry what is unanswered after about 2 s: one
    # attempt gets S3_TIMEOUT (3 s) to connect and as long for each read (a stalled socket,
    # not a slow transfer: large bodies still stream). Two attempts: the retry absorbs a dropped
    # pooled connection or one 503; more would stack under the client's and broker's retries.
    # botocore's jittered backoff between them is under 50 ms (1 s when S3 says slow down), so
    # a hung S3 holds a call about 6 s, not minutes.
    # boto3 honours AWS_ENDPOINT_URL, AWS_REGION and the credential chain by itself.
    timeout = settings().s3_timeout
    return boto3.client(
        "s3",
        config=Config(
            signature_version="s3v4",
            retries={"mode": "standard", "total_max_attempts": 2},
            connect_timeout=timeout,
            read_timeout=timeout,
        ),
    )


def _root() -> Path:
    root = settings().data_dir / "objects"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _local_path(key: str) -> Path:
    root = _root().resolve()
    path = (root / key).resolve()
    if root not in path.parents:
        raise ApiError(400, "BAD_REQUEST", "invalid object key")
    return path


@cache
def _secret() -> bytes:
    """The local store's signing key, shared by every local process through the data dir."""
    path = settings().data_dir / "storage.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_suffix(f".{secrets.token_hex(4)}")
        tmp.write_bytes(secrets.token_bytes(32))
        tmp.replace(path) if not path.exists() else tmp.unlink()
    return path.read_bytes()


def _sign(text: str) -> str:
    return hmac.new(_secret(), text.encode(), hashlib.sha256).hexdigest()


def _signed(text: str, signature: str) -> bool:
    """Whether `signature` is ours for `text`. Compared as bytes: compare_digest refuses str
    with non-ASCII characters, and a form field can hold any."""
    return hmac.compare_digest(_sign(text).encode(), signature.encode())


def _bucket() -> str | None:
    return settings().s3_bucket


# ---- the API ------------------------------------------------------------------------------


def presign_upload(key: str, content_type: str, max_bytes: int, expires_in: int = 600) -> dict:
    """A POST form `{method, url, fields, expires_at}` for exactly this key, type and size."""
    expires_at = datetime.fromtimestamp(int(time.time()) + expires_in, UTC)
    if _bucket():
        form = s3_client().generate_presigned_post(
            Bucket=_bucket(),
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in,
        )
        url, fields = form["url"], form["fields"]
    else:
        policy = {
            "key": key,
            "content_type": content_type,
            "max_bytes": max_bytes,
            "expires": int(expires_at.timestamp()),
        }
        encoded = base64.urlsafe_b64encode(json.dumps(policy).encode()).decode()
        url = settings().public_url + UPLOAD_PATH
        fields = {
            "key": key,
            "Content-Type": content_type,
            "policy": encoded,
            "signature": _sign(encoded),
        }
    return {
        "method": "POST",
        "url": url,
        "fields": fields,
        "expires_at": rfc3339(expires_at),
    }


def accept_local_upload(fields: dict[str, str], data: bytes, content_type: str | None) -> str:
    """Check a local POST upload against its signed policy and store it; returns the key."""
    encoded = fields.get("policy", "")
    if not encoded or not _signed(encoded, fields.get("signature", "")):
        raise ApiError(403, "FORBIDDEN", "upload form signature is invalid")
    policy = json.loads(base64.urlsafe_b64decode(encoded))
    if time.time() > policy["expires"]:
        raise ApiError(409, "UPLOAD_EXPIRED", "upload form expired; ask for a new one")
    if fields.get("key") != policy["key"]:
        raise ApiError(403, "FORBIDDEN", "key does not match the upload form")
    declared = fields.get("Content-Type")
    if declared != policy["content_type"] or (content_type and content_type != declared):
        raise ApiError(
            415, "UNSUPPORTED_MEDIA_TYPE", f"this form accepts only {policy['content_type']}"
        )
    if not data:
        raise ApiError(400, "BAD_REQUEST", "the file field is empty")
    if len(data) > policy["max_bytes"]:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"at most {policy['max_bytes']} bytes")
    put(policy["key"], data, policy["content_type"])
    return policy["key"]


def put(key: str, data: bytes, content_type: str) -> None:
    if _bucket():
        s3_client().put_object(Bucket=_bucket(), Key=key, Body=data, ContentType=content_type)
        return
    path = _local_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_name(path.name + ".type").write_text(content_type)
    path.write_bytes(data)


def check() -> None:
    """Raise unless the store answers and is ours to use (the operators' readiness check)."""
    if _bucket():
        s3_client().head_bucket(Bucket=_bucket())
    elif not os.access(root := _root(), os.W_OK):
        raise PermissionError(f"{root} is not writable")


def head(key: str) -> dict[str, Any] | None:
    """`{"size", "content_type"}` of a stored object, or None when it is not there."""
    if _bucket():
        from botocore.exceptions import ClientError

        try:
            meta = s3_client().head_object(Bucket=_bucket(), Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return {"size": meta["ContentLength"], "content_type": meta.get("ContentType")}
    path = _local_path(key)
    if not path.is_file():
        return None
    type_file = path.with_name(path.name + ".type")
    return {
        "size": path.stat().st_size,
        "content_type": type_file.read_text() if type_file.exists() else None,
    }


def read(key: str) -> bytes:
    if _bucket():
        return s3_client().get_object(Bucket=_bucket(), Key=key)["Body"].read()
    return _local_path(key).read_bytes()


def delete(keys: list[str]) -> None:
    if not keys:
        return
    if _bucket():
        from botocore.exceptions import ClientError

        for chunk in chunked(keys, 1000):  # S3's batch limit
            answer = s3_client().delete_objects(
                Bucket=_bucket(), Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            )
            # A 200 can still list keys S3 failed to delete (Quiet lists only those): they are
            # still there, so the caller must not record them gone.
            if answer.get("Errors"):
                first = answer["Errors"][0]
                message = (
                    f"{len(answer['Errors'])} of {len(chunk)} objects not deleted; "
                    f"{first.get('Key')}: {first.get('Message')}"
                )
                error = {"Code": first.get("Code", "InternalError"), "Message": message}
                raise ClientError({"Error": error}, "DeleteObjects")
        return
    for key in keys:
        path = _local_path(key)
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".type").unlink(missing_ok=True)


def list_keys(prefix: str) -> list[str]:
    if _bucket():
        pages = (
            s3_client().get_paginator("list_objects_v2").paginate(Bucket=_bucket(), Prefix=prefix)
        )
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    root = _root()
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file()
        and not p.name.endswith((".type",))
        and str(p.relative_to(root)).startswith(prefix)
    )


def presign_download(key: str, expires_in: int = 900) -> str:
    """A short-lived URL for showing an image to its owner."""
    if _bucket():
        return s3_client().generate_presigned_url(
            "get_object", Params={"Bucket": _bucket(), "Key": key}, ExpiresIn=expires_in
        )
    expires = int(time.time()) + expires_in
    query = urlencode({"expires": expires, "signature": _sign(f"{key}:{expires}")})
    return f"{settings().public_url}{OBJECT_PATH}{quote(key)}?{query}"


def open_local_download(key: str, expires: str, signature: str) -> tuple[bytes, str]:
    """Serve a presigned local download: the bytes and content type, if the URL is valid."""
    if not (expires.isascii() and expires.isdigit()) or not _signed(f"{key}:{expires}", signature):
        raise ApiError(403, "FORBIDDEN", "download link is invalid")
    if time.time() > int(expires):
        raise ApiError(403, "FORBIDDEN", "download link expired")
    meta = head(key)
    if meta is None:
        raise ApiError(404, "NOT_FOUND", "object not found")
    return read(key), meta["content_type"] or "application/octet-stream"
