"""hypothesis on the parsers every request passes through: whatever arrives, the answer is one
of the contract's client errors, never an exception that would become a 500.

- validation: JSON bodies and query strings against every schema the functions declare;
  what is accepted is valid by an independent validator (jsonschema) and can be stored and
  sent back as UTF-8 JSON.
- history cursors: encode/decode round-trips; garbage is 400.
- the local object store's upload policy and download links: garbage is 400/403/413/415.
- access tokens: any string, and any header/claims under a bad signature, is 401.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import jsonschema
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from functions import load_all
from shared.core.errors import ApiError

settings.register_profile(
    "growbin-properties",
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples on every run
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # `env`: a data dir, no state
)
PROPERTIES = settings.get_profile("growbin-properties")

_declared = [f for f in load_all().values() if f.kind == "http"]
BODIES = [f.body for f in _declared if f.body is not None]
QUERIES = [f.query for f in _declared if f.query is not None]
# A body field that takes any object (profile preferences): where NaN could slip through.
FREE_SCHEMA, FREE_FIELD = next(
    (schema, name)
    for schema in BODIES
    for name, field in schema.get("properties", {}).items()
    if field.get("type") == "object" and "properties" not in field
)

# Any character, lone surrogates included: "\ud800" is valid JSON text.
ANY_TEXT = st.text(st.characters(exclude_categories=[]), max_size=20)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | ANY_TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


def refused(call, statuses: set[int]) -> ApiError | None:
    """Run `call`: it may answer, or refuse with an ApiError among `statuses`; nothing else."""
    try:
        call()
    except ApiError as exc:
        assert exc.status in statuses, (exc.status, exc.code, exc.message)
        json.dumps(exc.body(), ensure_ascii=False).encode()  # the answer itself can be sent
        return exc
    return None


def _answerable(value) -> None:
    """What is accepted can be stored and sent back: strict UTF-8 JSON, no NaN."""
    json.dumps(value, ensure_ascii=False, allow_nan=False).encode()


# ---- validation ---------------------------------------------------------------------------


@PROPERTIES
@given(schema=st.sampled_from(BODIES), raw=st.binary(max_size=300))
@example(schema=BODIES[0], raw=b"[" * 100_000)  # nested past the recursion limit
@example(schema=FREE_SCHEMA, raw=b'{"%s": {"a": NaN}}' % FREE_FIELD.encode())
@example(schema=FREE_SCHEMA, raw=b'{"%s": {"a": -Infinity}}' % FREE_FIELD.encode())
@example(schema=FREE_SCHEMA, raw=b'{"%s": {"a": "\\ud800"}}' % FREE_FIELD.encode())
def test_json_bodies_of_any_bytes_are_parsed_or_refused(schema, raw):
    from shared.core.validation import json_body

    if refused(lambda: json_body(raw, schema), {400, 422}) is None:
        checked = json_body(raw, schema)
        jsonschema.validate(checked, schema)
        _answerable(checked)


@PROPERTIES
@given(data=st.data())
def test_json_bodies_of_any_value_are_accepted_only_when_valid(data):
    from shared.core.validation import json_body

    schema = data.draw(st.sampled_from(BODIES))
    names = st.sampled_from(list(schema["properties"])) | ANY_TEXT  # its fields, and others
    data = data.draw(JSON_VALUES | st.dictionaries(names, JSON_VALUES, max_size=3))
    raw = json.dumps(data, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")
    if refused(lambda: json_body(raw, schema), {400, 422}) is None:
        checked = json_body(raw, schema)
        jsonschema.validate(checked, schema)
        _answerable(checked)


def _query_strategy(schema):
    names = st.sampled_from(list(schema["properties"])) | st.text(max_size=6)
    values = (
        st.text(max_size=40)
        | st.integers().map(str)
        | st.floats(allow_nan=True, allow_infinity=True).map(str)
        | st.sampled_from(["", " 7 ", "1_000", "١٢", "9" * 5000, "1e400", "-0", "true"])
    )
    return st.dictionaries(names, values, max_size=4)


@PROPERTIES
@given(data=st.data())
def test_query_strings_are_coerced_or_refused(data):
    from shared.core.validation import query_args

    schema = data.draw(st.sampled_from(QUERIES))
    args = data.draw(_query_strategy(schema))
    if refused(lambda: query_args(args, schema), {400, 422}) is None:
        checked = query_args(args, schema)
        jsonschema.validate(checked, schema)
        _answerable(checked)


# ---- history cursors ----------------------------------------------------------------------


@PROPERTIES
@given(
    # What a stored row can hold: a time with a UTC equivalent (not within 14 hours of year 1
    # or 9999's end) and an id without NUL or a lone surrogate; decode_cursor refuses the rest.
    at=st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC) | st.timezones(),
    ),
    job_id=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=1,
        max_size=40,
    ),
)
def test_cursors_round_trip(at, job_id):
    from shared.waste.history import decode_cursor, encode_cursor

    decoded_at, decoded_id = decode_cursor(encode_cursor(at, job_id))
    # the same instant (== between zones is False inside a DST fold, by Python's rules)
    assert decoded_at.astimezone(UTC) == at.astimezone(UTC) and decoded_id == job_id


def _crafted_cursor(stamp: str, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{stamp}|{job_id}".encode()).decode()


@PROPERTIES
@given(
    cursor=st.text(max_size=60)
    | st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode())
    | st.builds(_crafted_cursor, st.text(max_size=30), st.text(max_size=10))
    | st.builds(
        _crafted_cursor,
        st.datetimes().map(lambda d: d.isoformat()),  # naive: no offset to compare with
        st.text(max_size=10),
    )
)
def test_cursors_from_anywhere_decode_or_are_refused(cursor):
    from shared.waste.history import decode_cursor

    if refused(lambda: decode_cursor(cursor), {400}) is None:
        at, job_id = decode_cursor(cursor)
        assert at.tzinfo is not None and isinstance(job_id, str)


# ---- the local object store ---------------------------------------------------------------

FORM_FIELDS = st.dictionaries(
    st.sampled_from(["key", "Content-Type", "policy", "signature"]) | st.text(max_size=8),
    st.text(max_size=60),
    max_size=5,
)


@PROPERTIES
@given(fields=FORM_FIELDS, data=st.binary(max_size=64), content_type=st.none() | st.text())
def test_upload_forms_nobody_signed_are_refused(env, fields, data, content_type):
    from knative import objects

    assert refused(lambda: objects.accept_upload(fields, data, content_type), {400, 403, 413, 415})


@PROPERTIES
@given(
    changes=st.dictionaries(
        st.sampled_from(["key", "Content-Type", "signature"]), st.text(max_size=40), max_size=2
    ),
    data=st.binary(max_size=64),
    content_type=st.none() | st.sampled_from(["image/jpeg", "image/png", "text/plain"]),
)
def test_signed_upload_forms_accept_exactly_what_they_allow(env, changes, data, content_type):
    from knative import objects
    from shared.core import storage

    form = storage.presign_upload("uploads/u/j", "image/jpeg", 32)
    fields = {**form["fields"], **changes}
    error = refused(lambda: objects.accept_upload(fields, data, content_type), {400, 403, 413, 415})
    if error is None:
        assert not changes or all(form["fields"][k] == v for k, v in changes.items())
        assert content_type in (None, "image/jpeg") and 0 < len(data) <= 32
        assert storage.read("uploads/u/j") == data


@PROPERTIES
@given(key=st.text(max_size=30), expires=st.text(max_size=12), signature=st.text(max_size=70))
@example(key="k", expires="²", signature="é")
def test_download_links_nobody_signed_are_refused(env, key, expires, signature):
    from knative import objects

    assert refused(lambda: objects.open_download(key, expires, signature), {400, 403})


# ---- access tokens ------------------------------------------------------------------------


def _b64(value) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else None
    raw = text.encode() if text is not None else value
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.fixture
def kid(env):
    from shared.auth import tokens

    return tokens.signing_key()[0]


@PROPERTIES
@given(token=st.text(max_size=300))
def test_any_string_as_a_token_is_401(kid, token):
    from shared.auth import callers, tokens

    assert refused(lambda: tokens.verify(token), {401})
    assert refused(lambda: callers.authenticate(f"Bearer {token}"), {401})
    assert refused(lambda: callers.authenticate(token), {401})


@PROPERTIES
@given(data=st.data())
def test_any_header_and_claims_under_a_bad_signature_are_401(kid, data):
    from shared.auth import tokens

    header = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "alg": st.sampled_from(["ES256", "none", "HS256", "RS256"]) | JSON_VALUES,
                "kid": st.just(kid) | JSON_VALUES,
                "typ": st.just("JWT") | JSON_VALUES,
            },
        )
        | JSON_VALUES
    )
    claims = data.draw(JSON_VALUES | st.dictionaries(st.sampled_from(["sub", "exp"]), JSON_VALUES))
    signature = data.draw(st.binary(max_size=64))
    token = f"{_b64(header)}.{_b64(claims)}.{_b64(signature)}"
    assert refused(lambda: tokens.verify(token), {401})
