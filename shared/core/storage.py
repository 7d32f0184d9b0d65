"""Object storage: S3 through boto3 when S3_BUCKET is set, else a directory under the data dir.

The store is chosen once, at first use, from the settings (`backend()`); the functions below
are what the rest of the code calls, and each is one line over it. Clients upload with a
presigned POST form bounded to one key, one content type and a maximum length. S3 enforces
that itself; the directory store's form is signed here and enforced by the local runtime
(knative/objects.py plays S3's part), so the mobile app's upload code is the same against both.
The pipeline reads images by key, never by a URL that could expire before the vision call.
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
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from shared.core.batching import chunked
from shared.core.errors import ApiError
from shared.core.settings import settings
from shared.core.times import rfc3339

# Where the local runtime serves the directory store's upload form and signed downloads.
UPLOAD_PATH = "/_storage/upload"
OBJECT_PATH = "/_storage/objects/"


class Store(Protocol):
    """What an object store does for us; `S3` and `Directory` are the two."""

    def presign_upload(
        self, key: str, content_type: str, max_bytes: int, expires_in: int, expires_at: datetime
    ) -> tuple[str, dict[str, str]]:
        """The form's URL and fields."""
        ...

    def presign_download(self, key: str, expires_in: int) -> str: ...

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def head(self, key: str) -> dict[str, Any] | None: ...

    def read(self, key: str) -> bytes: ...

    def delete(self, keys: list[str]) -> None: ...

    def list_keys(self, prefix: str) -> list[str]: ...

    def check(self) -> None: ...


@cache
def backend() -> Store:
    """The store, decided once per process from the settings."""
    bucket = settings().s3_bucket
    return S3(bucket) if bucket else Directory(settings().data_dir)


# ---- the API ------------------------------------------------------------------------------


def presign_upload(key: str, content_type: str, max_bytes: int, expires_in: int = 600) -> dict:
    """A POST form `{method, url, fields, expires_at}` for exactly this key, type and size."""
    expires_at = datetime.fromtimestamp(int(time.time()) + expires_in, UTC)
    url, fields = backend().presign_upload(key, content_type, max_bytes, expires_in, expires_at)
    return {
        "method": "POST",
        "url": url,
        "fields": fields,
        "expires_at": rfc3339(expires_at),
    }


def presign_download(key: str, expires_in: int = 900) -> str:
    """A short-lived URL for showing an image to its owner."""
    return backend().presign_download(key, expires_in)


def put(key: str, data: bytes, content_type: str) -> None:
    backend().put(key, data, content_type)


def head(key: str) -> dict[str, Any] | None:
    """`{"size", "content_type"}` of a stored object, or None when it is not there."""
    return backend().head(key)


def read(key: str) -> bytes:
    return backend().read(key)


def delete(keys: list[str]) -> None:
    if keys:
        backend().delete(keys)


def list_keys(prefix: str) -> list[str]:
    return backend().list_keys(prefix)


def check() -> None:
    """Raise unless the store answers and is ours to use (the operators' readiness check)."""
    backend().check()


# ---- S3 -----------------------------------------------------------------------------------


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
    # boto3 honours AWS_ENDPOINT_URL, AWS_DEFAULT_REGION (not AWS_REGION) and the credential
    # chain by itself.
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


class S3:
    """One bucket; the client is `s3_client()`, so recovering from an outage needs no restart."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def presign_upload(
        self, key: str, content_type: str, max_bytes: int, expires_in: int, expires_at: datetime
    ) -> tuple[str, dict[str, str]]:
        form = s3_client().generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in,
        )
        return form["url"], form["fields"]

    def presign_download(self, key: str, expires_in: int) -> str:
        return s3_client().generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )

    def put(self, key: str, data: bytes, content_type: str) -> None:
        s3_client().put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            meta = s3_client().head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return {"size": meta["ContentLength"], "content_type": meta.get("ContentType")}

    def read(self, key: str) -> bytes:
        return s3_client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def delete(self, keys: list[str]) -> None:
        from botocore.exceptions import ClientError

        for chunk in chunked(keys, 1000):  # S3's batch limit
            answer = s3_client().delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
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

    def list_keys(self, prefix: str) -> list[str]:
        pages = (
            s3_client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        )
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def check(self) -> None:
        s3_client().head_bucket(Bucket=self.bucket)


# ---- a directory --------------------------------------------------------------------------


class Directory:
    """Objects as files under `data_dir/objects`, each with a `.type` file for its content type.

    Its forms and download links are signed with a key kept in the data dir, so every local
    process (the dev server, `growbin invoke --local`) signs and checks alike.
    """

    def __init__(self, data_dir: Path) -> None:
        self._root = data_dir / "objects"
        self._key_file = data_dir / "storage.key"

    @property
    def root(self) -> Path:
        self._root.mkdir(parents=True, exist_ok=True)
        return self._root

    def path(self, key: str) -> Path:
        root = self.root.resolve()
        path = (root / key).resolve()
        if root not in path.parents:
            raise ApiError(400, "BAD_REQUEST", "invalid object key")
        return path

    @cached_property
    def _secret(self) -> bytes:
        path = self._key_file
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            tmp = path.with_suffix(f".{secrets.token_hex(4)}")
            tmp.write_bytes(secrets.token_bytes(32))
            tmp.replace(path) if not path.exists() else tmp.unlink()
        return path.read_bytes()

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def signed(self, text: str, signature: str) -> bool:
        """Whether `signature` is ours for `text`. Compared as bytes: compare_digest refuses str
        with non-ASCII characters, and a form field can hold any."""
        return hmac.compare_digest(self._sign(text).encode(), signature.encode())

    def presign_upload(
        self, key: str, content_type: str, max_bytes: int, expires_in: int, expires_at: datetime
    ) -> tuple[str, dict[str, str]]:
        policy = {
            "key": key,
            "content_type": content_type,
            "max_bytes": max_bytes,
            "expires": int(expires_at.timestamp()),
        }
        encoded = base64.urlsafe_b64encode(json.dumps(policy).encode()).decode()
        fields = {
            "key": key,
            "Content-Type": content_type,
            "policy": encoded,
            "signature": self._sign(encoded),
        }
        return settings().public_url + UPLOAD_PATH, fields

    def upload_policy(self, fields: dict[str, str]) -> dict[str, Any]:
        """The policy a form we signed carries (`key`, `content_type`, `max_bytes`, `expires`);
        403 when the signature is not ours."""
        encoded = fields.get("policy", "")
        if not encoded or not self.signed(encoded, fields.get("signature", "")):
            raise ApiError(403, "FORBIDDEN", "upload form signature is invalid")
        return json.loads(base64.urlsafe_b64decode(encoded))

    def presign_download(self, key: str, expires_in: int) -> str:
        expires = int(time.time()) + expires_in
        query = urlencode({"expires": expires, "signature": self._sign(f"{key}:{expires}")})
        return f"{settings().public_url}{OBJECT_PATH}{quote(key)}?{query}"

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_name(path.name + ".type").write_text(content_type)
        path.write_bytes(data)

    def head(self, key: str) -> dict[str, Any] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        type_file = path.with_name(path.name + ".type")
        return {
            "size": path.stat().st_size,
            "content_type": type_file.read_text() if type_file.exists() else None,
        }

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self.path(key)
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".type").unlink(missing_ok=True)

    def list_keys(self, prefix: str) -> list[str]:
        root = self.root
        return sorted(
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file()
            and not p.name.endswith((".type",))
            and str(p.relative_to(root)).startswith(prefix)
        )

    def check(self) -> None:
        if not os.access(root := self.root, os.W_OK):
            raise PermissionError(f"{root} is not writable")
