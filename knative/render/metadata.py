"""What every rendered object shares: the release, the namespace and the part-of label."""

from __future__ import annotations

from typing import Any

from shared.core.deployment import NAMESPACE

VERSION = "0.1.0"  # the chart's version and the image's default tag
PART_OF = "growbin"


def labels(own: dict[str, str] | None = None) -> dict[str, str]:
    """The part-of label every object and pod carries, then its own."""
    return {"app.kubernetes.io/part-of": PART_OF, **(own or {})}


def meta(
    name: str,
    *,
    namespace: Any = NAMESPACE,
    own_labels: dict[str, str] | None = None,
    annotations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An object's metadata; in growbin's namespace unless it must live next to another."""
    found = {"name": name, "namespace": namespace, "labels": labels(own_labels)}
    if annotations:
        found["annotations"] = annotations
    return found
