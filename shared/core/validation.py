"""Request validation against the JSON Schemas the functions declare.

The same schema dicts feed the OpenAPI document, so what is documented is what is enforced.
Schemas compile once, on first use (fastjsonschema: cheap to import, fast to run, about 1.4 ms
to compile one), keeping cold starts free of the work.
"""

from __future__ import annotations

import json
import math
from typing import Any

import fastjsonschema

from shared.core.errors import bad_request, validation_failed

# Compiled validators by the schema's id, each beside the schema itself: holding the schema
# keeps it alive, so its id cannot be given to another dict while the entry exists (an id is
# reused only after its object is collected). Keying on the canonical JSON would serialise the
# schema on every request (about 18 us for the largest); the schemas are module constants, so
# this holds one entry per declaration.
_compiled: dict[int, tuple[dict[str, Any], Any]] = {}
# Keywords whose failure means "wrong type or shape" (400) rather than "bad value" (422).
_SHAPE_RULES = {"type"}


def obj(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """A closed object schema: unknown fields are refused rather than silently dropped."""
    schema = {"type": "object", "properties": properties, "additionalProperties": False, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def _validator(schema: dict[str, Any]):
    entry = _compiled.get(id(schema))
    if entry is None:
        entry = _compiled[id(schema)] = (schema, fastjsonschema.compile(schema))
    return entry[1]


def _field(exc: fastjsonschema.JsonSchemaValueException) -> str:
    path = [str(p) for p in (exc.path or [])][1:]  # the first element is "data"
    if exc.rule == "required" and isinstance(exc.value, dict):
        missing = [name for name in exc.definition.get("required", []) if name not in exc.value]
        path.extend(missing[:1])
    if exc.rule == "additionalProperties" and isinstance(exc.value, dict):
        known = set((exc.definition or {}).get("properties", {}))
        extra = sorted(set(exc.value) - known)
        if extra:
            path.append(extra[0])
    return ".".join(path) or "body"


def check(schema: dict[str, Any], data: Any) -> Any:
    """Validate data; 400 for the wrong shape, 422 naming the field for a bad value."""
    try:
        return _validator(schema)(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        field = _field(exc)
        message = exc.message.replace("data.", "").replace("data ", "body ")
        if exc.rule in _SHAPE_RULES:
            raise bad_request(message, fields={field: message}) from None
        raise validation_failed({field: message}) from None


class _Unstorable(ValueError):
    """A JSON number no store or response can hold (NaN, Infinity, 1e400)."""


def _no_constant(name: str) -> Any:
    raise _Unstorable(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):  # "1e400": valid JSON, but Infinity once parsed
        raise _Unstorable(f"{text} is out of range for a number")
    return value


def unstorable(data: Any, where: str = "") -> str | None:
    """The field (dotted) of the first text, key or value, holding a NUL character, or None.

    PostgreSQL text cannot hold NUL (psycopg raises DataError) while SQLite stores it: refusing
    it at the edge answers the same on both backends.
    """
    if isinstance(data, str):
        return (where or "body") if "\x00" in data else None
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{where}.{key}" if where else str(key)
            if "\x00" in str(key):
                return name
            found = unstorable(value, name)
            if found:
                return found
    if isinstance(data, list):
        for index, value in enumerate(data):
            found = unstorable(value, f"{where}.{index}" if where else str(index))
            if found:
                return found
    return None


def storable(data: Any, where: str = "") -> Any:
    """`data`, if it holds no NUL character; else 422 naming the field."""
    field = unstorable(data, where)
    if field:
        raise validation_failed({field: "must not contain NUL characters"})
    return data


def json_body(raw: bytes, schema: dict[str, Any]) -> Any:
    """Parse a JSON request body and validate it; an empty body is read as {}.

    Only what can be stored and sent back is accepted: Python's parser also takes NaN and
    Infinity, lone surrogates ("\\ud800") and nesting deep enough to exhaust the stack, none of
    which PostgreSQL, UTF-8 or a JSON response can carry (400). A number too large for a float
    (1e400) and a NUL character are well-formed JSON that no store holds: 422.
    """
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
            json.dumps(data, ensure_ascii=False).encode()
        except _Unstorable as exc:
            raise validation_failed({"body": str(exc)}) from None
        except (UnicodeError, ValueError, RecursionError) as exc:  # JSONDecodeError: ValueError
            raise bad_request(f"malformed JSON: {exc}") from None
    return check(schema, storable(data))


def accepts_empty_body(schema: dict[str, Any]) -> bool:
    """Whether a request may leave the body out: `json_body` reads an empty one as {}."""
    try:
        _validator(schema)({})
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def query_args(args: dict[str, str], schema: dict[str, Any]) -> dict[str, Any]:
    """Coerce query strings to the schema's scalar types, then validate."""
    storable(args)
    props = schema.get("properties", {})
    data: dict[str, Any] = {}
    for name, raw in args.items():
        kind = props.get(name, {}).get("type")
        try:
            if kind == "integer":
                data[name] = int(raw)
            elif kind == "number":
                value = float(raw)
                if value != value or value in (float("inf"), float("-inf")):
                    raise ValueError(raw)
                data[name] = value
            elif kind == "boolean":
                data[name] = raw.lower() in ("1", "true", "yes")
            else:
                data[name] = raw
        except ValueError:
            raise bad_request(f"{name} must be {kind}", fields={name: f"must be {kind}"}) from None
    checked = check(schema, data)
    return checked if checked is not None else data
