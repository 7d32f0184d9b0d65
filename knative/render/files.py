"""Where every object is written, in which form, and keeping the tree in step with it.

One rule says what is generated: every file `growbin render` writes is under a folder named
`manifests/` (knative/manifests, eventing/manifests, helm/manifests), and every file there is
one it writes; a file there that it would not write is stale and goes. Nothing is written by
hand in those folders, nothing is rendered anywhere else.

Each manifest is written twice: as plain YAML in knative/manifests or eventing/manifests
(kustomize-ready, every Value at its default) and as the Helm chart's template of the same path
under helm/manifests/growbin/templates (every Value a bare substitution). Around them: the
kustomizations, Chart.yaml, values.yaml and its schema, the ArgoCD Application and the OpenAPI
document. `write_all(check=True)` writes nothing and returns the files that differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from functions import load_all
from knative.openapi import document
from knative.render.argocd import argocd_application
from knative.render.dashboard import dashboard_config_map
from knative.render.eventing import (
    broker_objects,
    dead_letter_sink,
    ping_source,
    trigger,
)
from knative.render.metadata import VERSION
from knative.render.network_policies import network_policies
from knative.render.routing import routing_objects
from knative.render.services import config_objects, knative_service, migrate_job
from knative.render.values import Value, Values, resolve, substitute
from shared.core.registry import Function

ROOT = Path(__file__).resolve().parents[2]
# The folders render owns, each named manifests/: every file in them is derived.
GENERATED = ("knative/manifests", "eventing/manifests", "helm/manifests")
CHART = Path("helm/manifests/growbin")
PRODUCTION_VALUES = Path("helm/values-production.yaml")  # written by hand: beside the chart
HEADER = "# Written by `growbin render` from the function declarations: do not edit.\n"


@dataclass
class Manifest:
    """One YAML file of objects: `path` is where it sits under knative/manifests or
    eventing/manifests, and the chart template's path under templates/ (knative/config.yaml)."""

    path: str
    objects: list[dict[str, Any]]

    @property
    def plain(self) -> str:
        """The plain manifest's path from the project root: knative/manifests/config.yaml."""
        folder, _, name = self.path.partition("/")
        return f"{folder}/manifests/{name}"


def deployed(registry: dict[str, Function]) -> list[Function]:
    """The functions that run on the cluster: all but local-only ones, by name."""
    return sorted((f for f in registry.values() if not f.local_only), key=lambda f: f.name)


def manifests(registry: dict[str, Function]) -> tuple[list[Manifest], Values]:
    """Every manifest, and the Values their objects declared while they were built."""
    values = Values()
    functions = deployed(registry)
    services = [*functions, dead_letter_sink()]
    events = [f for f in functions if f.kind == "event"]
    found = [
        Manifest("knative/config.yaml", config_objects(values)),
        *(
            Manifest(f"knative/services/{f.service}.yaml", [knative_service(f, values)])
            for f in services
        ),
        Manifest("knative/routing.yaml", routing_objects(functions, values)),
        Manifest("knative/network-policies.yaml", network_policies(services, values)),
        Manifest("knative/migrate-job.yaml", [migrate_job(values)]),
        Manifest("knative/dashboard.yaml", [dashboard_config_map(functions, values)]),
        Manifest("eventing/broker.yaml", broker_objects(values)),
        Manifest("eventing/triggers.yaml", [trigger(f) for f in events]),
        Manifest("eventing/pingsources.yaml", [ping_source(f) for f in events if f.schedule]),
    ]
    return found, values


def _dump(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, allow_unicode=True, width=100)


def plain_yaml(objects: list[dict[str, Any]]) -> str:
    return HEADER + _dump([resolve(o) for o in objects])


def helm_yaml(objects: list[dict[str, Any]]) -> str:
    """The same objects with every Value as a bare `{{ .Values.path }}` substitution."""
    found: list[Value] = []

    def marker(value: Value) -> str:
        # A plain string for the YAML dumper, swapped for the template in its output.
        found.append(value)
        return f"growbin-value-{len(found) - 1}-marker"

    text = _dump([substitute(o, marker) for o in objects])
    if "{{" in text:  # helm would take it for a template action
        raise ValueError("a manifest contains '{{': helm would try to evaluate it")
    for index, value in enumerate(found):
        text = text.replace(f"growbin-value-{index}-marker", value.template)
    return HEADER + text


def _yaml_file(body: dict[str, Any], sort_keys: bool = False) -> str:
    return HEADER + yaml.safe_dump(body, sort_keys=sort_keys)


def _json_file(body: Any, ensure_ascii: bool = True) -> str:
    return json.dumps(body, indent=2, ensure_ascii=ensure_ascii) + "\n"


def kustomization(paths: list[str], extra: Iterable[str] = ()) -> str:
    return _yaml_file(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [*paths, *extra],
        }
    )


def files(registry: dict[str, Function]) -> dict[str, str | None]:
    """Every derived file by path from the project root: its content, or None where a file
    must not be (a manifest with no objects today, e.g. no cron functions)."""
    manifests_, values = manifests(registry)
    out: dict[str, str | None] = {}
    for manifest in manifests_:
        chart_path = str(CHART / "templates" / manifest.path)
        out[manifest.plain] = plain_yaml(manifest.objects) if manifest.objects else None
        out[chart_path] = helm_yaml(manifest.objects) if manifest.objects else None
    found = [m for m in manifests_ if m.objects]
    for directory, extra in (("knative", ["../../eventing/manifests"]), ("eventing", [])):
        mine = sorted(
            m.path.removeprefix(f"{directory}/") for m in found if m.path.startswith(directory)
        )
        out[f"{directory}/manifests/kustomization.yaml"] = kustomization(mine, extra)
    out["knative/manifests/argocd/application.yaml"] = plain_yaml(
        [argocd_application(CHART, PRODUCTION_VALUES)]
    )
    out["knative/manifests/openapi.json"] = _json_file(document(registry), ensure_ascii=False)
    out[str(CHART / "Chart.yaml")] = _yaml_file(
        {
            "apiVersion": "v2",
            "name": "growbin",
            "description": "growbin backend: waste sorting for Korea as Knative functions",
            "type": "application",
            "version": VERSION,
            "appVersion": VERSION,
        }
    )
    out[str(CHART / "values.yaml")] = _yaml_file(values.tree, sort_keys=True)
    out[str(CHART / "values.schema.json")] = _json_file(values.schema())
    return out


def write_all(check: bool = False) -> list[str]:
    """Write the derived files (or, with `check`, only compare); returns the ones that differ."""
    return sync(files(load_all()), ROOT, check)


def sync(wanted: dict[str, str | None], root: Path, check: bool) -> list[str]:
    """Make the files under `root` what `wanted` says, unless `check`; return what differed."""
    wanted = dict(wanted)
    for directory in GENERATED:  # files render no longer writes: functions gone, strays
        for path in sorted((root / directory).rglob("*")):
            wanted.setdefault(str(path.relative_to(root)), None)
    differ = []
    for relative, content in sorted(wanted.items()):
        path = root / relative
        if content is None:
            if path.is_file():
                differ.append(relative)
                if not check:
                    path.unlink()
        elif not path.is_file() or path.read_text(encoding="utf-8") != content:
            differ.append(relative)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
    return differ
