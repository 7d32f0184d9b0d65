"""The local object store's HTTP face: what S3 does for a presigned POST form and a presigned
GET, for the directory store (shared/core/storage.py). Only the local runtime serves it.

The form is checked as S3 checks its POST policy: our signature, not expired, exactly the
signed key and content type, a non-empty file within the size bound. A form or link that fails
any check stores or shows nothing.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, request

from shared.core import storage
from shared.core.errors import ApiError


def _directory() -> storage.Directory:
    store = storage.backend()
    if not isinstance(store, storage.Directory):
        raise ApiError(404, "NOT_FOUND", "objects are in S3, not served here")
    return store


def accept_upload(fields: dict[str, str], data: bytes, content_type: str | None) -> str:
    """Check a POST upload against its signed policy and store it; returns the key."""
    store = _directory()
    policy = store.upload_policy(fields)
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
    store.put(policy["key"], data, policy["content_type"])
    return policy["key"]


def open_download(key: str, expires: str, signature: str) -> tuple[bytes, str]:
    """A presigned download: the bytes and content type, if the link is ours and unexpired."""
    store = _directory()
    valid = expires.isascii() and expires.isdigit() and store.signed(f"{key}:{expires}", signature)
    if not valid:
        raise ApiError(403, "FORBIDDEN", "download link is invalid")
    if time.time() > int(expires):
        raise ApiError(403, "FORBIDDEN", "download link expired")
    meta = store.head(key)
    if meta is None:
        raise ApiError(404, "NOT_FOUND", "object not found")
    return store.read(key), meta["content_type"] or "application/octet-stream"


endpoints = Blueprint("objects", __name__)


@endpoints.post(storage.UPLOAD_PATH)
def upload() -> Response:
    file = request.files.get("file")
    if file is None:
        raise ApiError(400, "BAD_REQUEST", "send the image as the form field named file")
    accept_upload(request.form.to_dict(), file.read(), file.mimetype or None)
    return Response(status=204)


@endpoints.get(storage.OBJECT_PATH + "<path:key>")
def download(key: str) -> Response:
    data, content_type = open_download(
        key, request.args.get("expires", ""), request.args.get("signature", "")
    )
    return Response(data, content_type=content_type)
