"""What an operator may tune, declared once where an object uses it.

An object holds a `Value` wherever an operator may change it. The plain manifests get its
default; the Helm chart gets a bare `{{ .Values.path }}`, so the templates hold no logic (the
tests render them with real Helm and compare); values.yaml and values.schema.json are the
`Values` the objects declared while they were built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Value:
    """A setting the operator may change: its dotted path in values.yaml and its default."""

    path: str
    default: Any
    text: bool = False  # always a YAML string (annotations), whatever the value's type

    @property
    def plain(self) -> Any:
        """What the plain manifests hold: the default."""
        return str(self.default) if self.text else self.default

    @property
    def template(self) -> str:
        """What the chart holds: the substitution, quoted where YAML must read a string."""
        template = "{{ .Values." + self.path + " }}"
        return f'"{template}"' if self.text or isinstance(self.default, str) else template


class Values:
    """values.yaml as it is built: `ref` records a default and returns the Value for it."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def ref(self, path: str, default: Any, text: bool = False) -> Value:
        node = self.tree
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        if node.get(leaf, default) != default:
            raise ValueError(f"value {path} declared twice with different defaults")
        node[leaf] = default
        return Value(path, default, text)

    def schema(self) -> dict[str, Any]:
        """values.schema.json: closed, so helm refuses a misspelt or unknown setting."""
        return {"$schema": "http://json-schema.org/draft-07/schema#", **_schema(self.tree)}


def _schema(node: Any) -> dict[str, Any]:
    if isinstance(node, dict):
        return {
            "type": "object",
            "additionalProperties": False,
            "required": sorted(node),
            "properties": {k: _schema(v) for k, v in sorted(node.items())},
        }
    if isinstance(node, bool):
        return {"type": "boolean"}
    if isinstance(node, int):
        return {"type": "integer", "minimum": 0}
    # Substituted inside double quotes: a quote or backslash would break the YAML. A setting
    # whose default is empty is off until set (config.otlpEndpoint); any other must be set.
    return {"type": "string", "minLength": 1 if node else 0, "pattern": '^[^"\\\\]*$'}


def substitute(node: Any, how: Callable[[Value], Any]) -> Any:
    """A copy of `node` with every Value in it replaced by `how(value)`."""
    if isinstance(node, Value):
        return how(node)
    if isinstance(node, dict):
        return {k: substitute(v, how) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, how) for v in node]
    return node


def resolve(node: Any) -> Any:
    """`node` as the plain manifests hold it: every Value at its default."""
    return substitute(node, lambda value: value.plain)
