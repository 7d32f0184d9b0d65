"""The deployment, verified offline: every derived file fresh, every manifest valid.

Rendered once per session into a temporary directory, for the real declarations and for a set
of test-only ones (events, cron, emitters, templated paths) so the rules hold for any
declarations colleagues add. Knative and eventing objects are checked against the CRD schemas
in the datasets folder's knative-crds (strictly: a field the API server would prune is an
error), core objects with kubernetes-validate --strict, the chart linted (`--strict`) and
rendered by real Helm (helm-python-sdk's libhelm_c) against the plain manifests, the
NetworkPolicies evaluated over the flows every pod in the namespace needs, and the lot with
checkov.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import DATASETS

from functions import load_all
from knative.render.eventing import dead_letter_sink
from knative.render.files import (
    CHART,
    GENERATED,
    HEADER,
    PRODUCTION_VALUES,
    files,
    sync,
    write_all,
)
from knative.render.services import knative_service
from knative.render.values import Values, resolve
from shared.core.registry import (
    HOT,
    MODEL_BOUND,
    PING_TYPE,
    Delivery,
    Function,
    Scaling,
    seconds,
)

ROOT = Path(__file__).resolve().parent.parent
CRDS = DATASETS / "knative-crds"
KUBERNETES_VERSION = "1.31.0"
IN_CI = os.environ.get("CI") == "true"
SECRETISH = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL|REDIS_URL)", re.I)


def _noop(_event) -> None:
    return None


def _synthetic() -> dict[str, Function]:
    """Test-only declarations covering what colleagues declare: the AI chain, cron, params."""

    def event(name: str, type_: str, **kw: Any) -> Function:
        return Function(
            name=name,
            module="functions.pipeline",
            kind="event",
            summary=name,
            handler=_noop,
            filter={"type": type_},
            **kw,
        )

    def http(name: str, route: str, **kw: Any) -> Function:
        method, path = route.split(" ", 1)
        return Function(
            name=name,
            module="functions.waste",
            kind="http",
            summary=name,
            handler=_noop,
            method=method,
            path=path,
            auth="user",
            **kw,
        )

    declared = [
        http("waste_status", "GET /api/v1/waste/status/{job_id}", scaling=HOT),
        http("waste_items", "GET /api/v1/waste/items", uses=frozenset({"db"})),
        http("waste_item", "GET /api/v1/waste/items/{guide_id}", uses=frozenset()),
        http("waste_analyze", "POST /api/v1/waste/analyze", uses=frozenset({"db", "storage"})),
        http("locations_nearby", "GET /api/v1/locations/bins/nearby", uses=frozenset({"kakao"})),
        event(
            "image_analyze",
            "kr.growbin.waste.uploaded",
            emits=("kr.growbin.image.analyzed",),
            uses=frozenset({"db", "storage", "openai", "broker"}),
            scaling=MODEL_BOUND,
            timeout_seconds=90,
            delivery=Delivery(retry=3, backoff_policy="linear", timeout="PT120S"),
        ),
        event("result_save", "kr.growbin.feedback.generated", uses=frozenset({"db", "cache"})),
        Function(
            name="analytics_daily",
            module="functions.batch",
            kind="event",
            summary="daily",
            handler=_noop,
            filter={"type": PING_TYPE, "task": "analytics.daily"},
            schedule="10 0 * * *",
            scaling=Scaling(min=0, max=1, threads=1),
            uses=frozenset({"db"}),
        ),
    ]
    return {f.name: f for f in declared}


REGISTRIES = {"declared": load_all, "synthetic": _synthetic}


@pytest.fixture(scope="session", params=sorted(REGISTRIES))
def deploy(request, tmp_path_factory):
    """(registry, directory with every derived file written) for one set of declarations."""
    registry = REGISTRIES[request.param]()
    root = tmp_path_factory.mktemp(f"render-{request.param}")
    sync(files(registry), root, check=False)
    return registry, root


def plain_objects(root: Path) -> dict[str, list[dict[str, Any]]]:
    """The objects of knative/manifests and eventing/manifests, by file as the chart names its
    templates (knative/config.yaml), as kustomize would apply them."""
    found = {}
    for directory in ("knative", "eventing"):
        manifests = root / directory / "manifests"
        kustomization = yaml.safe_load((manifests / "kustomization.yaml").read_text())
        for resource in kustomization["resources"]:
            path = manifests / resource
            if path.is_file():
                found[f"{directory}/{resource}"] = list(yaml.safe_load_all(path.read_text()))
    return found


def all_objects(root: Path) -> list[dict[str, Any]]:
    return [o for objects in plain_objects(root).values() for o in objects]


def by_kind(objects: list[dict[str, Any]], kind: str, api: str = "") -> dict[str, dict]:
    return {
        o["metadata"]["name"]: o
        for o in objects
        if o["kind"] == kind and o["apiVersion"].startswith(api)
    }


def subscribed(objects: list[dict[str, Any]]) -> dict[str, dict]:
    """The Triggers by the Service they deliver to (their own names carry a filter digest)."""
    return {t["spec"]["subscriber"]["ref"]["name"]: t for t in by_kind(objects, "Trigger").values()}


# ---- the rules every deployment keeps, as a checker that can be shown to fail ---------------


def problems(registry: dict[str, Function], objects: list[dict[str, Any]]) -> list[str]:
    """What is wrong with a deployment of `registry`; empty when it is right."""
    found = []
    services = by_kind(objects, "Service", "serving.knative.dev")
    triggers = subscribed(objects)
    routes = by_kind(objects, "HTTPRoute")
    pings = by_kind(objects, "PingSource")
    for trigger in triggers.values():
        if "filters" in trigger["spec"]:
            found.append(f"Trigger {trigger['metadata']['name']} uses spec.filters")
    for function in registry.values():
        if function.local_only:
            if function.service in services:
                found.append(f"{function.name} is local-only but deployed")
            continue
        if function.service not in services:
            found.append(f"{function.name} has no Knative Service")
            continue
        if function.kind == "http":
            route = routes.get(function.service)
            if route is None or not _route_serves(route, function):
                found.append(f"{function.name} has no route for {function.method} {function.path}")
        else:
            trigger = triggers.get(function.service)
            attributes = (trigger or {}).get("spec", {}).get("filter", {}).get("attributes")
            if attributes != function.filter:
                found.append(f"{function.name} has no Trigger filtering {function.filter}")
        if function.schedule:
            ping = pings.get(function.service)
            if ping is None or ping["spec"]["ceOverrides"]["extensions"] != {
                "task": function.filter["task"]
            }:
                found.append(f"{function.name} has no PingSource for its task")
    return found


def _route_serves(route: dict[str, Any], function: Function) -> bool:
    """Whether a Gateway API route sends `function`'s method and path to its Service."""
    concrete = re.sub(r"\{\w+\}", "x", function.path)
    for rule in route["spec"]["rules"]:
        rewrite = [f["urlRewrite"]["hostname"] for f in rule.get("filters", [])]
        if rewrite != [f"{function.service}.growbin.svc.cluster.local"]:
            continue
        for match in rule["matches"]:
            path = match["path"]
            if match.get("method") != function.method:
                continue
            if path["type"] == "Exact" and path["value"] == concrete:
                return True
            if path["type"] == "PathPrefix" and concrete.startswith(path["value"] + "/"):
                return True
            if path["type"] == "RegularExpression" and re.fullmatch(path["value"], concrete):
                return True
    return False


def test_every_function_has_its_service_trigger_and_route(deploy):
    registry, root = deploy
    assert problems(registry, all_objects(root)) == []


def test_the_checker_fails_on_a_missing_service_route_trigger_or_spec_filters(deploy):
    registry, root = deploy
    objects = all_objects(root)
    deployed = [f for f in registry.values() if not f.local_only]
    http = next(f for f in deployed if f.kind == "http")
    without_service = [
        o for o in objects if not (o["kind"] == "Service" and o["metadata"]["name"] == http.service)
    ]
    assert f"{http.name} has no Knative Service" in problems(registry, without_service)
    without_route = [
        o
        for o in objects
        if not (o["kind"] == "HTTPRoute" and o["metadata"]["name"] == http.service)
    ]
    assert any("has no route" in p for p in problems(registry, without_route))
    events = [f for f in deployed if f.kind == "event"]
    if events:
        mutated = copy.deepcopy(objects)
        trigger = next(o for o in mutated if o["kind"] == "Trigger")
        trigger["spec"]["filters"] = [{"prefix": {"type": "kr.growbin"}}]
        del trigger["spec"]["filter"]
        found = problems(registry, mutated)
        assert any("uses spec.filters" in p for p in found)
        assert any("has no Trigger" in p for p in found)


# ---- derived files are fresh -----------------------------------------------------------------


def test_derived_files_match_the_declarations():
    stale = write_all(check=True)
    assert stale == [], f"stale derived files, run `growbin render`: {stale}"


def test_check_reports_changed_and_left_over_files(tmp_path):
    registry = _synthetic()
    wanted = files(registry)
    sync(wanted, tmp_path, check=False)
    assert sync(wanted, tmp_path, check=True) == []
    (tmp_path / "knative/manifests/openapi.json").write_text("{}")
    registry.pop("waste_items")
    stale = sync(files(registry), tmp_path, check=True)
    assert "knative/manifests/openapi.json" in stale
    service = "knative/manifests/services/waste-items.yaml"
    assert service in stale  # the function is gone, its file not
    assert "helm/manifests/growbin/templates/knative/services/waste-items.yaml" in stale
    assert (tmp_path / service).exists()  # check writes nothing
    sync(files(registry), tmp_path, check=False)
    assert not (tmp_path / service).exists()


def test_render_writes_only_into_the_manifests_folders():
    """One rule says what is generated: a folder named manifests/, and nothing else."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    named = {
        str(Path(*path.parts[: path.parts.index("manifests") + 1]))
        for path in map(Path, tracked)
        if "manifests" in path.parts[:-1]
    }
    assert named == set(GENERATED)
    # a rendered file left where render no longer writes (an old path, a branch rendered before)
    inside = tuple(f"{g}/" for g in GENERATED)
    left = [
        path
        for path in tracked
        if not path.startswith(inside)
        and (ROOT / path).is_file()
        and (ROOT / path).read_bytes().startswith(HEADER.encode())
    ]
    assert not left, left
    for registry in REGISTRIES.values():
        outside = [
            p for p in files(registry()) if not p.startswith(tuple(f"{g}/" for g in GENERATED))
        ]
        assert not outside, outside
    assert not PRODUCTION_VALUES.is_relative_to(CHART)  # the chart folder is all derived


def test_argocd_syncs_the_chart_with_the_production_values(deploy):
    """ArgoCD reads value files relative to the chart: both paths must land on real files."""
    _, root = deploy
    application = yaml.safe_load((root / "knative/manifests/argocd/application.yaml").read_text())
    source = application["spec"]["source"]
    assert (root / source["path"] / "Chart.yaml").is_file()
    [values] = source["helm"]["valueFiles"]
    assert (ROOT / source["path"] / values).resolve() == (ROOT / PRODUCTION_VALUES).resolve()
    assert (ROOT / PRODUCTION_VALUES).is_file()


def test_a_file_render_does_not_write_is_stale_in_a_manifests_folder(tmp_path):
    wanted = files(_synthetic())
    sync(wanted, tmp_path, check=False)
    strays = ["eventing/manifests/extra.yaml", f"{CHART}/values-production.yaml"]
    kept = tmp_path / PRODUCTION_VALUES  # hand-written, outside: none of render's business
    for stray in [*strays, str(PRODUCTION_VALUES)]:
        (tmp_path / stray).write_text("written by hand\n")
    assert sync(wanted, tmp_path, check=True) == strays
    sync(wanted, tmp_path, check=False)
    assert not any((tmp_path / stray).exists() for stray in strays)
    assert kept.read_text() == "written by hand\n"


def test_cli_check_exits_non_zero_when_stale(tmp_path, monkeypatch, capsys):
    from knative import cli

    monkeypatch.setattr("knative.render.files.ROOT", tmp_path)
    assert cli.main(["render", "--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert cli.main(["render"]) == 0
    assert cli.main(["render", "--check"]) == 0


# ---- schema validation -----------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """A CRD schema as the API server applies it: unknown fields are pruned, so reject them."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in CRDS.glob("*.yaml"):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                    # the API server takes these on every object, listed or not
                    schema.setdefault("properties", {}).update(
                        {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                        }
                    )
                    schema = _strict(schema)
                    schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


CRD_SCHEMAS = _crd_schemas()
CORE_GROUPS = ("v1", "batch/v1", "networking.k8s.io/v1", "apps/v1")


def crd_errors(obj: dict[str, Any]) -> list[str]:
    schema = CRD_SCHEMAS[(obj["apiVersion"], obj["kind"])]
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]


def test_knative_and_eventing_objects_match_their_crds(deploy):
    registry, root = deploy
    checked = set()
    for obj in all_objects(root):
        if (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS:
            assert crd_errors(obj) == [], obj["metadata"]["name"]
            checked.add(obj["kind"])
    expected = {"Service", "Broker", "RabbitmqBrokerConfig"}
    if any(f.kind == "event" for f in registry.values()):
        expected.add("Trigger")
    if any(f.schedule for f in registry.values()):
        expected.add("PingSource")
    assert checked == expected


def test_crd_validation_is_strict():
    service = knative_service(_synthetic()["waste_status"], Values())
    service = resolve(service)
    assert crd_errors(service) == []
    service["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # a typo
    assert any("readinesProbe" in e for e in crd_errors(service))


def test_core_objects_pass_kubernetes_validate_strict(deploy):
    import kubernetes_validate

    _, root = deploy
    core = [o for o in all_objects(root) if o["apiVersion"] in CORE_GROUPS]
    assert {o["kind"] for o in core} >= {"ConfigMap", "ServiceAccount", "Job", "NetworkPolicy"}
    for obj in core:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    broken = copy.deepcopy(next(o for o in core if o["kind"] == "NetworkPolicy"))
    broken["spec"]["podSelectors"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_objects_without_a_schema_here_keep_their_contract(deploy):
    """Gateway API, RabbitmqCluster and ReferenceGrant have no CRD schema offline: check the
    fields the design depends on."""
    _, root = deploy
    objects = all_objects(root)
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS or obj["apiVersion"] in CORE_GROUPS:
            continue
        assert obj["apiVersion"] in (
            "gateway.networking.k8s.io/v1",
            "gateway.networking.k8s.io/v1beta1",
            "rabbitmq.com/v1beta1",
        ), obj["apiVersion"]
        assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
    gateway = by_kind(objects, "Gateway")["growbin-edge"]
    assert gateway["spec"]["listeners"][0]["allowedRoutes"] == {"namespaces": {"from": "Same"}}
    for route in by_kind(objects, "HTTPRoute").values():
        assert route["spec"]["parentRefs"] == [{"name": "growbin-edge"}]
        for rule in route["spec"]["rules"]:
            assert len(rule["matches"]) >= 1 and len(rule["backendRefs"]) == 1
            # RegularExpression only where two templates share a prefix (status/{job_id}
            # and status/{job_id}/events): each then matches its own paths and not the other's.
            assert {m["path"]["type"] for m in rule["matches"]} <= {
                "Exact",
                "PathPrefix",
                "RegularExpression",
            }
    grants = by_kind(objects, "ReferenceGrant")
    backends = {
        b["namespace"]
        for r in by_kind(objects, "HTTPRoute").values()
        for rule in r["spec"]["rules"]
        for b in rule["backendRefs"]
    }
    assert backends <= {g["metadata"]["namespace"] for g in grants.values()}
    rabbit = by_kind(objects, "RabbitmqCluster")["growbin-rabbitmq"]
    assert rabbit["spec"]["replicas"] == 3


# ---- what the design asks of each object ---------------------------------------------------


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container["env"]}


def test_services_scale_on_concurrency_with_pinned_workers(deploy):
    registry, root = deploy
    services = by_kind(all_objects(root), "Service", "serving.knative.dev")
    for function in registry.values():
        if function.local_only:
            continue
        template = services[function.service]["spec"]["template"]
        notes = template["metadata"]["annotations"]
        spec = template["spec"]
        container = spec["containers"][0]
        env = _env(container)
        workers, threads = int(env["WORKERS"]["value"]), int(env["THREADS"]["value"])
        assert spec["containerConcurrency"] == workers * threads == function.scaling.concurrency
        assert notes["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
        assert notes["autoscaling.knative.dev/metric"] == "concurrency"
        assert notes["autoscaling.knative.dev/target"] == str(function.scaling.concurrency)
        assert notes["autoscaling.knative.dev/min-scale"] == str(function.scaling.min)
        assert notes["autoscaling.knative.dev/max-scale"] == str(function.scaling.max)
        if function.scaling == HOT:
            assert notes["autoscaling.knative.dev/min-scale"] == "1"
        assert spec["timeoutSeconds"] > function.timeout_seconds
        assert env["FUNCTION_TARGET"]["value"] == function.name
        assert env["FUNCTION_SOURCE"]["value"] == function.source
        assert container["resources"]["requests"] == {
            "cpu": function.resources.cpu,
            "memory": function.resources.memory,
        }
        for probe in ("readinessProbe", "livenessProbe"):
            if function.kind == "event":  # a cloud_event target answers GET with 405
                assert set(container[probe]) >= {"tcpSocket"} and "httpGet" not in container[probe]
        for name, var in env.items():
            if SECRETISH.search(name):
                assert "value" not in var and "secretKeyRef" in var["valueFrom"], name
        assert container["securityContext"]["runAsNonRoot"] is True


def test_function_sources_exist_for_functions_framework():
    for function in [*load_all().values(), dead_letter_sink()]:
        assert (ROOT / function.source).is_file(), function.source


def test_triggers_deliver_with_retries_and_dead_letters(deploy):
    registry, root = deploy
    objects = all_objects(root)
    triggers = subscribed(objects)
    sink = by_kind(objects, "Service", "serving.knative.dev")["dead-letter-sink"]
    assert _env(sink["spec"]["template"]["spec"]["containers"][0])["FUNCTION_SOURCE"] == {
        "name": "FUNCTION_SOURCE",
        "value": "eventing/dead_letters.py",
    }
    for function in registry.values():
        if function.kind != "event":
            continue
        trigger = triggers[function.service]
        # the load the dispatcher may put in flight reaches max-scale: the autoscaler wants
        # in-flight / (concurrency x utilization) pods
        parallelism = int(
            trigger["metadata"]["annotations"]["rabbitmq.eventing.knative.dev/parallelism"]
        )
        scaling = function.scaling
        reachable = parallelism / (scaling.concurrency * scaling.utilization / 100)
        assert reachable >= scaling.max, function.name
        delivery = trigger["spec"]["delivery"]
        assert delivery["retry"] == function.delivery.retry
        assert delivery["backoffPolicy"] == function.delivery.backoff_policy
        assert delivery["backoffDelay"] == function.delivery.backoff_delay
        assert delivery["timeout"] == function.delivery.timeout
        assert delivery["deadLetterSink"]["ref"]["name"] == "dead-letter-sink"
        assert delivery["deadLetterSink"]["uri"] == (
            f"/{function.name}?attempts={function.delivery.retry + 1}"
        )
        assert trigger["spec"]["broker"] == "growbin"
        # the dispatcher must not give up on (and retry) a delivery still being worked on
        assert seconds(function.delivery.timeout) >= function.timeout_seconds, function.name


def test_broker_is_rabbitmq_with_quorum_queues_on_three_nodes(deploy):
    _, root = deploy
    objects = all_objects(root)
    broker = by_kind(objects, "Broker")["growbin"]
    assert broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == (
        "RabbitMQBroker"
    )
    config = by_kind(objects, "RabbitmqBrokerConfig")[broker["spec"]["config"]["name"]]
    assert config["spec"]["queueType"] == "quorum"
    cluster = config["spec"]["rabbitmqClusterReference"]["name"]
    assert by_kind(objects, "RabbitmqCluster")[cluster]["spec"]["replicas"] == 3


def sink_binding_mutation(service: dict[str, Any], sink: str) -> dict[str, Any]:
    """What a SinkBinding's webhook does to a Service it binds: K_SINK set in every
    container's env, replaced in place when present, appended when not."""
    mutated = copy.deepcopy(service)
    for container in mutated["spec"]["template"]["spec"]["containers"]:
        env = container.setdefault("env", [])
        for var in env:
            if var["name"] == "K_SINK":
                var.clear()
                var.update({"name": "K_SINK", "value": sink})
                break
        else:
            env.append({"name": "K_SINK", "value": sink})
    return mutated


def test_emitters_own_their_sink_so_gitops_converges(deploy):
    """ArgoCD self-heal reverted a SinkBinding's K_SINK on every sync (each sync reran the
    PreSync migration). The emitters now carry the Broker's address themselves: binding them
    changes nothing ArgoCD would see, and nothing in the render mutates another object."""
    registry, root = deploy
    objects = all_objects(root)
    assert not by_kind(objects, "SinkBinding")
    broker = by_kind(objects, "Broker")["growbin"]["metadata"]
    # eventing-rabbitmq's address: Service <broker>-broker-ingress, port 80, no path
    address = f"http://{broker['name']}-broker-ingress.{broker['namespace']}.svc.cluster.local"
    services = by_kind(objects, "Service", "serving.knative.dev")
    for function in registry.values():
        if function.local_only or "broker" not in function.uses:
            continue
        service = services[function.service]
        assert sink_binding_mutation(service, address) == service, function.name
    application = yaml.safe_load((root / "knative/manifests/argocd/application.yaml").read_text())
    assert "bindings.knative.dev/include" not in json.dumps(application)


def test_the_convergence_check_sees_a_sink_the_manifest_does_not_own(deploy):
    _, root = deploy
    services = by_kind(all_objects(root), "Service", "serving.knative.dev")
    service = services["dead-letter-sink"]  # emits nothing: no K_SINK of its own
    assert sink_binding_mutation(service, "http://broker") != service


def test_emitters_get_k_sink_and_cron_goes_through_the_broker(deploy):
    registry, root = deploy
    objects = all_objects(root)
    services = by_kind(objects, "Service", "serving.knative.dev")
    ingress_rules = by_kind(objects, "NetworkPolicy")["broker-ingress"]["spec"]["ingress"]
    for function in registry.values():
        if function.local_only:
            continue
        container = services[function.service]["spec"]["template"]["spec"]["containers"][0]
        assert ("K_SINK" in _env(container)) == ("broker" in function.uses), function.name
        # and its pods may reach the Broker's ingress, which admits them
        pod = services[function.service]["spec"]["template"]["metadata"]["labels"]
        admitted = [
            peer["podSelector"]["matchLabels"]
            for rule in ingress_rules
            for peer in rule["from"]
            if "matchLabels" in peer.get("podSelector", {})
        ]
        admits = any(all(pod.get(k) == v for k, v in m.items()) for m in admitted)
        assert admits == ("broker" in function.uses), function.name
        if function.schedule:
            ping = by_kind(objects, "PingSource")[function.service]["spec"]
            assert ping["timezone"] == "Asia/Seoul"
            assert ping["schedule"] == function.schedule
            assert ping["sink"]["ref"] == {
                "apiVersion": "eventing.knative.dev/v1",
                "kind": "Broker",
                "name": "growbin",
            }


def test_network_policies_allow_only_what_each_function_uses(deploy):
    registry, root = deploy
    policies = by_kind(all_objects(root), "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress", "Egress"]
    assert not deny["ingress"] and not deny["egress"]
    ports = {"db": 5432, "cache": 6379, "broker": 8080}
    for function in registry.values():
        if function.local_only:
            continue
        egress = policies[f"{function.service}-egress"]["spec"]["egress"]
        reached = {p["port"] for rule in egress for p in rule.get("ports", [])}
        for use, port in ports.items():
            assert (port in reached) == (use in function.uses), (function.name, use)
        external = bool(function.uses & {"storage", "openai", "kakao", "oauth"})
        assert (443 in reached) == external, function.name
        for rule in egress:
            for peer in rule["to"]:
                if "ipBlock" in peer and peer["ipBlock"]["cidr"] == "0.0.0.0/0":
                    assert "169.254.0.0/16" in peer["ipBlock"]["except"]  # no metadata API


def test_alb_carries_only_the_api_and_checks_the_gateways_health(deploy):
    """Operator tools stay off the internet-facing ALB; the ALB health-checks Istio's status
    port (the listener answers 404 on `/`); Istio provisions no second load balancer."""
    _, root = deploy
    objects = all_objects(root)
    ingress = by_kind(objects, "Ingress")["growbin-alb"]
    paths = {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert paths == {"/api/v1/auth", "/api/v1/users", "/api/v1/waste", "/api/v1/locations"}
    notes = ingress["metadata"]["annotations"]
    assert notes["alb.ingress.kubernetes.io/healthcheck-port"] == "15021"
    assert notes["alb.ingress.kubernetes.io/healthcheck-path"] == "/healthz/ready"
    gateway = by_kind(objects, "Gateway")["growbin-edge"]
    assert gateway["metadata"]["annotations"]["networking.istio.io/service-type"] == "ClusterIP"
    for route in by_kind(objects, "HTTPRoute").values():
        for rule in route["spec"]["rules"]:
            for backend in rule["backendRefs"]:
                assert backend["name"] == "knative-local-gateway", route["metadata"]["name"]
    # Grafana's dashboard sidecar searches its own namespace unless configured otherwise
    dashboard = by_kind(objects, "ConfigMap")["growbin-dashboard"]["metadata"]
    assert dashboard["namespace"] == "monitoring" and dashboard["labels"]["grafana_dashboard"]


def test_migration_job_runs_before_new_revisions(deploy):
    _, root = deploy
    job = by_kind(all_objects(root), "Job")["growbin-migrate"]
    notes = job["metadata"]["annotations"]
    assert notes["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert notes["argocd.argoproj.io/hook"] == "PreSync"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["growbin", "migrate"]


def test_ambiguous_routes_fail_the_render():
    registry = _synthetic()
    twin = dataclasses.replace(registry["waste_item"], name="waste_item_twin")
    with pytest.raises(ValueError, match="would share the route"):
        files({**registry, twin.name: twin})


# ---- the Helm chart, through real Helm ------------------------------------------------------


def real_helm():
    """helm-python-sdk: Helm v4's own library (libhelm_c), so lint and template are real Helm."""
    try:
        import helm_python

        helm_python.helm_sdk_version()
    except (ImportError, OSError) as error:
        if IN_CI:
            pytest.fail(f"CI must run real Helm: helm-python-sdk cannot load ({error})")
        pytest.skip(f"helm-python-sdk cannot load here ({error}); `pip install -e .[dev]`")
    return helm_python


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) else value
    return out


def chart_objects(root: Path, values: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """`helm template growbin <chart> -n growbin` with `values`, by template path."""
    helm = real_helm()
    rendered = helm.Chart.load(root / CHART).render(values, name="growbin", namespace="growbin")
    prefix = f"{CHART.name}/templates/"
    return {
        path.removeprefix(prefix): [o for o in yaml.safe_load_all(text) if o is not None]
        for path, text in sorted(rendered.items())
        if path.startswith(prefix) and path.endswith(".yaml")
    }


def production_values(root: Path) -> dict[str, Any]:
    """values.yaml with helm/values-production.yaml over it; per-function keys only for the
    functions this set of declarations has (the synthetic set lacks auth_me)."""
    defaults = yaml.safe_load((root / CHART / "values.yaml").read_text())
    production = yaml.safe_load((ROOT / PRODUCTION_VALUES).read_text())
    functions = production.pop("functions", {})
    values = merged(defaults, production)
    for name, tuned in functions.items():
        if name in values["functions"]:
            values["functions"][name] = merged(values["functions"][name], tuned)
    return values


def test_helm_lint_strict_passes_with_default_and_production_values(deploy):
    _, root = deploy
    helm = real_helm()
    for values in (None, production_values(root)):
        report = helm.lint(root / CHART, values, strict=True, namespace="growbin")
        serious = [m for m in report["messages"] if m["severity"] >= 2]
        assert report["errors"] == [] and serious == [], report
    # and the schema is Helm's to enforce, not only jsonschema's
    with pytest.raises(helm.HelmError):
        helm.Chart.load(root / CHART).render({"imag": "x"}, name="growbin", namespace="growbin")


def _leaves(node: Any, path: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        return {k: v for key, val in node.items() for k, v in _leaves(val, f"{path}/{key}").items()}
    if isinstance(node, list):
        return {k: v for i, val in enumerate(node) for k, v in _leaves(val, f"{path}/{i}").items()}
    return {path: node}


def test_chart_with_default_values_is_the_plain_manifests(deploy):
    _, root = deploy
    assert chart_objects(root, {}) == plain_objects(root)


def test_production_values_change_only_what_they_say(deploy):
    _, root = deploy
    chart = root / CHART
    production = yaml.safe_load((ROOT / PRODUCTION_VALUES).read_text())
    values = production_values(root)
    jsonschema.validate(values, json.loads((chart / "values.schema.json").read_text()))
    changed = {str(v) for v in _leaves(production).values()}
    before = _leaves(plain_objects(root))
    after = _leaves({f: o for f, o in chart_objects(root, values).items()})
    assert before.keys() == after.keys()
    differ = {k: after[k] for k in before if before[k] != after[k]}
    assert differ, "production values changed nothing"
    assert {str(v) for v in differ.values()} <= changed


def test_values_schema_rejects_unknown_keys_and_quotes(deploy):
    _, root = deploy
    chart = root / CHART
    schema = json.loads((chart / "values.schema.json").read_text())
    values = yaml.safe_load((chart / "values.yaml").read_text())
    jsonschema.validate(values, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**values, "imag": "x"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**values, "host": 'a"b'}, schema)


def test_kustomize_builds_the_same_objects(deploy):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (for `kubectl kustomize`) is not installed")
    _, root = deploy
    built = subprocess.run(
        [kubectl, "kustomize", str(root / "knative/manifests")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    key = lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, yaml.safe_load_all(built))) == sorted(map(key, all_objects(root)))


# ---- checkov, once -----------------------------------------------------------------------------


def _checkov() -> str | None:
    for candidate in (
        os.environ.get("CHECKOV"),
        str(ROOT / ".venv" / "checkov" / "bin" / "checkov"),
        shutil.which("checkov"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def test_checkov_finds_nothing_unjustified(tmp_path_factory):
    checkov = _checkov()
    if checkov is None:
        if IN_CI:
            pytest.fail("checkov is not installed: ./task installs it into .venv/checkov")
        pytest.skip("checkov is not installed (./task installs it into .venv/checkov)")
    root = tmp_path_factory.mktemp("checkov")
    registry = {**load_all(), **_synthetic()}
    sync(files(registry), root, check=False)
    # templates are not manifests; the Application is ArgoCD's
    for directory in ("helm", "knative/manifests/argocd"):
        shutil.rmtree(root / directory)
    (root / "knative/manifests/openapi.json").unlink()
    # checkov does not know Knative Services: give it each revision's pod as a Pod, with the
    # Service's skip annotations, so its container checks apply to the functions too.
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**s["metadata"], "name": f"{s['metadata']['name']}-revision"},
            "spec": {
                k: v
                for k, v in s["spec"]["template"]["spec"].items()
                if k not in ("containerConcurrency", "timeoutSeconds")
            },
        }
        for s in by_kind(all_objects(root), "Service", "serving.knative.dev").values()
    ]
    (root / "revision-pods.yaml").write_text(yaml.safe_dump_all(pods))
    result = subprocess.run(
        [checkov, "-d", str(root), "--framework", "kubernetes", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    passed = {c["resource"] for r in reports for c in r["results"]["passed_checks"]}
    assert any(r.startswith("Pod.") for r in passed), result.stderr[-2000:]
    assert failed == []


# ---- the image -------------------------------------------------------------------------------


def test_dockerfile_final_stage_is_slim_non_root_and_without_build_tools():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) >= 2, "multi-stage"
    final = stages[-1]
    assert final.startswith("python:${PYTHON_VERSION}-slim")
    user = re.findall(r"^USER (\S+)", final, flags=re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    for tool in ("gcc", "build-essential", "make ", "g++", "apt-get install", "pip install"):
        assert tool not in final, tool
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert re.search(r"pip install (--\S+ )*\.( \\)?$", stages[0], flags=re.M), "non-editable"
    assert "-e ." not in text
    assert 'CMD ["functions-framework"]' in final


# ---- the dead-letter sink --------------------------------------------------------------------


def test_dead_letter_sink_records_once_per_trigger_and_event(env):
    from cloudevents.http import CloudEvent
    from flask import Flask

    from eventing import dead_letters
    from shared.core import db

    db.migrate()
    event = CloudEvent(
        {
            "type": "kr.growbin.waste.uploaded",
            "source": "/growbin",
            "id": "evt-1",
            "knativeerrorcode": "500",
            "knativeerrordest": "http://image-analyze.growbin.svc.cluster.local",
        },
        {"job_id": "j1"},
    )
    app = Flask("sink")
    for _ in range(2):  # at least once: a redelivered dead letter changes nothing
        with app.test_request_context("/image_analyze?attempts=4", method="POST"):
            dead_letters.dead_letter_sink(event)
    (letter,) = dead_letters.listing()
    assert letter["trigger"] == "image_analyze" and letter["attempts"] == 4
    assert "knativeerrorcode=500" in letter["error"]
    assert "knativeerrorcode" not in letter["event"]  # replayed as it was first sent


# What each `uses` name reaches, by the accessor every caller goes through (module attributes,
# looked up at call time, so patching them sees every use).
ACCESSORS = {
    "db": ("shared.core.db", "engine"),
    "cache": ("shared.core.cache", "client"),
    "storage": ("shared.core.storage", "backend"),
    "broker": ("shared.core.events", "sink"),
    "signing": ("shared.auth.tokens", "signing_key"),
}


def touching(monkeypatch) -> set[str]:
    """The dependencies reached from now on: each accessor records its `uses` name."""
    import importlib

    touched: set[str] = set()
    for use, (module_name, attribute) in ACCESSORS.items():
        module = importlib.import_module(module_name)
        original = getattr(module, attribute)

        def recording(*args, _use=use, _original=original, **kwargs):
            touched.add(_use)
            return _original(*args, **kwargs)

        for cached in ("cache_clear", "cache_info"):  # the fixtures reset cached clients
            if hasattr(original, cached):
                setattr(recording, cached, getattr(original, cached))
        monkeypatch.setattr(module, attribute, recording)
    return touched


def test_dead_letter_sink_reaches_only_what_its_service_is_given(env):
    """A dead-lettered pipeline stage fails the job through jobs.fail, which writes the cached
    status too: without `cache` in the sink's uses (REDIS_URL, egress to Redis) the poller
    kept reading `queued` on the cluster until TIMED_OUT."""
    from cloudevents.http import CloudEvent
    from flask import Flask

    from eventing import dead_letters
    from functions import load_all
    from shared.auth import accounts
    from shared.core import db
    from shared.waste import jobs

    load_all()
    db.migrate()
    user = accounts.find_or_create("kakao", "dl-1", "sink")
    job = jobs.create(user["id"], "image/jpeg", 1000, None)
    touched = touching(env)
    event = CloudEvent(
        {"type": "kr.growbin.waste.uploaded", "source": "/growbin", "id": "evt-dl"},
        {"job_id": job["id"]},
    )
    with Flask("sink").test_request_context("/image_analyze?attempts=6", method="POST"):
        dead_letters.dead_letter_sink(event)
    assert jobs.status(user["id"], job["id"])["status"] == "failed"
    assert touched == {"db", "cache"}
    assert touched <= dead_letter_sink().uses
    service = knative_service(dead_letter_sink(), Values())
    container = service["spec"]["template"]["spec"]["containers"][0]
    assert {"DATABASE_URL", "REDIS_URL"} <= set(_env(container))


def test_dependency_tracking_sees_each_use(env):
    """The tracker itself: each accessor, once called, is recorded under its own name."""
    from shared.core import cache, db

    touched = touching(env)
    db.migrate()
    assert touched == {"db"}
    cache.client().set("k", "v")
    assert touched == {"db", "cache"}


def test_readiness_leaves_the_period_unset_for_fast_cold_starts(deploy):
    """Knative probes aggressively at startup only when readiness periodSeconds is unset."""
    _, root = deploy
    for service in by_kind(all_objects(root), "Service", "serving.knative.dev").values():
        container = service["spec"]["template"]["spec"]["containers"][0]
        assert "periodSeconds" not in container["readinessProbe"], service["metadata"]["name"]
        assert "tcpSocket" in container["readinessProbe"]


def test_the_region_is_set_where_botocore_reads_it(deploy, monkeypatch):
    """botocore reads AWS_DEFAULT_REGION; AWS_REGION alone leaves the region unset."""
    import botocore.session

    _, root = deploy
    config = by_kind(all_objects(root), "ConfigMap")["growbin-config"]["data"]
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    for name, value in config.items():
        monkeypatch.setenv(name, value)
    assert botocore.session.get_session().get_config_variable("region") == "ap-northeast-2"


def test_a_changed_filter_names_a_new_trigger():
    """eventing-rabbitmq rejects edits to spec.filter: a new filter must be a new object,
    which helm and ArgoCD (prune) create while deleting the old one."""
    from knative.render.eventing import trigger

    function = _synthetic()["result_save"]
    moved = dataclasses.replace(function, filter={"type": "kr.growbin.feedback.v2"})
    tasked = dataclasses.replace(function, filter={**function.filter, "task": "x"})
    names = {trigger(f)["metadata"]["name"] for f in (function, moved, tasked)}
    assert len(names) == 3
    assert trigger(function)["metadata"]["name"] == trigger(function)["metadata"]["name"]
    # a delivery change is an ordinary edit of the same object
    slower = dataclasses.replace(function, delivery=Delivery(retry=9))
    assert trigger(slower)["metadata"]["name"] == trigger(function)["metadata"]["name"]
    assert all(len(name) <= 63 for name in names)


# ---- every pod in the namespace, including the ones controllers put there --------------------
# A small NetworkPolicy evaluator (podSelector, namespaceSelector, ipBlock, ports) run over the
# flows each pod needs. Pods are (namespace labels, pod labels) or an address.

GROWBIN_NS = {"kubernetes.io/metadata.name": "growbin"}


def _ns(name: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": name}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        if operator == "Exists" and key not in labels:
            return False
        if operator == "In" and labels.get(key) not in expression["values"]:
            return False
    return True


def _in_block(address: str, block: dict[str, Any]) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address)
    return ip in ipaddress.ip_network(block["cidr"]) and not any(
        ip in ipaddress.ip_network(e) for e in block.get("except", [])
    )


def _peer_matches(peer: dict[str, Any], other: Any) -> bool:
    if "ipBlock" in peer:
        return isinstance(other, str) and _in_block(other, peer["ipBlock"])
    if isinstance(other, str):
        return False
    namespace, labels = other
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], namespace):
            return False
    elif namespace != GROWBIN_NS:
        return False
    return _selects(peer.get("podSelector", {}), labels)


def allowed(policies, pod_labels, direction: str, other: Any, port: int, udp=False) -> bool:
    """Whether the namespace's policies let a growbin pod with `pod_labels` talk to `other`
    (`direction` "Egress": pod -> other:port; "Ingress": other -> pod:port)."""
    protocol = "UDP" if udp else "TCP"
    key, peers = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    selecting = [
        p["spec"]
        for p in policies
        if _selects(p["spec"]["podSelector"], pod_labels) and direction in p["spec"]["policyTypes"]
    ]
    assert selecting, f"no {direction} policy selects {pod_labels}"  # default-deny always does
    for spec in selecting:
        for rule in spec.get(key, []):
            ports = rule.get("ports")
            if ports and not any(
                p.get("protocol", "TCP") == protocol and p.get("port") in (None, port)
                for p in ports
            ):
                continue
            if peers not in rule or any(_peer_matches(peer, other) for peer in rule[peers]):
                return True
    return False


def _namespace_pods(registry, objects):
    """Every pod that runs in growbin: ours, and the ones Istio, eventing-rabbitmq and the
    RabbitMQ operator create there (labels as those controllers set them)."""
    services = by_kind(objects, "Service", "serving.knative.dev")
    pods = {
        "edge-gateway": {
            "gateway.networking.k8s.io/gateway-name": "growbin-edge",
            "istio.io/gateway-name": "growbin-edge",
        },
        "broker-ingress": {
            "eventing.knative.dev/broker": "growbin",
            "eventing.knative.dev/brokerRole": "ingress",
        },
        "trigger-dispatcher": {
            "eventing.knative.dev/broker": "growbin",
            "eventing.knative.dev/brokerRole": "dispatcher",
            "eventing.knative.dev/trigger": "any",
        },
        "broker-dlq-dispatcher": {
            "eventing.knative.dev/broker": "growbin",
            "eventing.knative.dev/brokerRole": "dispatcher-dlq",
        },
        "rabbitmq": {"app.kubernetes.io/name": "growbin-rabbitmq"},
        "migrate": {"growbin.kr/job": "migrate"},
    }
    for service in services.values():
        labels = service["spec"]["template"]["metadata"]["labels"]
        pods[service["metadata"]["name"]] = {**labels, "serving.knative.dev/service": "x"}
    return pods


ISTIOD = (_ns("istio-system"), {"app": "istiod", "istio": "pilot"})
KNATIVE_LOCAL_GATEWAY = (_ns("istio-system"), {"istio": "ingressgateway"})
ACTIVATOR = (_ns("knative-serving"), {"app": "activator"})
KUBE_DNS = (_ns("kube-system"), {"k8s-app": "kube-dns"})
NODE_LOCAL_DNS = "169.254.20.10"
PROMETHEUS = (_ns("monitoring"), {"app.kubernetes.io/name": "prometheus"})
ALB = "10.0.3.17"  # an ALB node in the VPC


def test_every_pod_in_the_namespace_gets_the_traffic_it_needs(deploy):
    """default-deny covers every pod in growbin, including the Gateway's pods (Istio) and
    the Broker's ingress and dispatchers (eventing-rabbitmq): each needs its own policy."""
    registry, root = deploy
    objects = all_objects(root)
    policies = list(by_kind(objects, "NetworkPolicy").values())
    pods = _namespace_pods(registry, objects)
    mine = lambda name: (GROWBIN_NS, pods[name])  # noqa: E731
    needs = [
        # the public entry: ALB -> gateway pods (listener, health), gateway -> istiod, Knative
        ("edge-gateway", "Ingress", ALB, 80),
        ("edge-gateway", "Ingress", ALB, 15021),
        ("edge-gateway", "Egress", ISTIOD, 15012),
        ("edge-gateway", "Egress", KNATIVE_LOCAL_GATEWAY, 8081),
        # eventing-rabbitmq's pods between themselves, RabbitMQ and Knative
        ("broker-ingress", "Egress", mine("rabbitmq"), 5672),
        ("trigger-dispatcher", "Egress", mine("rabbitmq"), 5672),
        ("trigger-dispatcher", "Egress", ACTIVATOR, 8012),
        ("trigger-dispatcher", "Egress", KNATIVE_LOCAL_GATEWAY, 8081),
        ("broker-dlq-dispatcher", "Egress", mine("rabbitmq"), 5672),
        ("broker-dlq-dispatcher", "Egress", ACTIVATOR, 8012),
        ("broker-dlq-dispatcher", "Egress", KNATIVE_LOCAL_GATEWAY, 8081),
        ("rabbitmq", "Ingress", mine("broker-dlq-dispatcher"), 5672),
        ("rabbitmq", "Ingress", mine("trigger-dispatcher"), 5672),
        ("rabbitmq", "Ingress", mine("broker-ingress"), 5672),
        ("migrate", "Egress", "10.0.40.5", 5432),
        ("dead-letter-sink", "Egress", "10.0.40.5", 5432),
        ("dead-letter-sink", "Egress", "10.0.41.6", 6379),  # jobs.fail caches the status
        ("dead-letter-sink", "Ingress", ACTIVATOR, 8012),
        ("dead-letter-sink", "Ingress", KNATIVE_LOCAL_GATEWAY, 8012),
    ]
    for function in registry.values():
        if function.local_only:
            continue
        needs.append((function.service, "Ingress", ACTIVATOR, 8012))
        needs.append((function.service, "Ingress", PROMETHEUS, 9091))
        if "broker" in function.uses:
            needs.append((function.service, "Egress", mine("broker-ingress"), 8080))
            needs.append(("broker-ingress", "Ingress", mine(function.service), 8080))
    failures = [
        f"{pod} {direction} {other} :{port}"
        for pod, direction, other, port in needs
        if not allowed(policies, pods[pod], direction, other, port)
    ]
    for pod in pods:  # DNS, from kube-dns or the node's NodeLocal DNSCache
        for dns in (KUBE_DNS, NODE_LOCAL_DNS):
            if not allowed(policies, pods[pod], "Egress", dns, 53, udp=True):
                failures.append(f"{pod} DNS {dns}")
    assert failures == []


def test_the_policy_evaluator_denies_what_no_policy_allows(deploy):
    _, root = deploy
    policies = list(by_kind(all_objects(root), "NetworkPolicy").values())
    stranger = {"app": "something-else"}
    assert not allowed(policies, stranger, "Ingress", ALB, 80)
    assert not allowed(policies, stranger, "Egress", ISTIOD, 15012)
    dlq = {"eventing.knative.dev/brokerRole": "dispatcher-dlq"}
    assert allowed(policies, dlq, "Egress", ACTIVATOR, 8012)
    # the old selector, dispatchers by exact role, left the DLQ dispatcher with nothing
    old = [p for p in policies if p["metadata"]["name"] != "broker-dispatchers"]
    assert not allowed(old, dlq, "Egress", ACTIVATOR, 8012)
    gateway = {"gateway.networking.k8s.io/gateway-name": "growbin-edge"}
    without = [p for p in policies if p["metadata"]["name"] != "edge-gateway"]
    assert not allowed(without, gateway, "Ingress", ALB, 80)
    assert not allowed(policies, gateway, "Egress", "52.95.1.1", 443)


def test_task_passes_render_its_flags_and_the_docs_put_them_after_the_separator():
    """`./task render --check` failed with `unknown flag`: go-task parses flags before `--`
    as its own; the render task must hand CLI_ARGS on, and the docs must say `-- --check`."""
    taskfile = yaml.safe_load((ROOT / "Taskfile.yml").read_text())
    (command,) = taskfile["tasks"]["render"]["cmds"]
    assert command.endswith("growbin render {{.CLI_ARGS}}")
    for doc in ("README.md", "ARCHITECTURE.md"):
        for match in re.finditer(r"\./task (\w[\w-]*)((?: +\S+)*)", (ROOT / doc).read_text()):
            words = match[2].split()
            flags = words[: words.index("--")] if "--" in words else words
            assert not any(re.match(r"--?[a-z]", w) for w in flags), (doc, match[0])


def test_only_token_issuers_get_the_private_key(deploy):
    """auth-me, auth-logout and auth-authorize never sign: the JWT private key is mounted only
    where the declaration `uses` "signing"."""
    registry, root = deploy
    services = by_kind(all_objects(root), "Service", "serving.knative.dev")
    for function in registry.values():
        if function.local_only:
            continue
        env = _env(services[function.service]["spec"]["template"]["spec"]["containers"][0])
        assert ("JWT_PRIVATE_KEY" in env) == ("signing" in function.uses), function.name
    declared = load_all()
    signers = {f.name for f in declared.values() if "signing" in f.uses and not f.local_only}
    assert signers == {"auth_login", "auth_refresh"}


def test_signing_is_reached_by_issuing_and_not_by_verifying(env):
    """What `uses` "signing" stands for: starting or rotating a session signs; checking a token
    with the published keys (as every other function does on the cluster) does not."""
    from shared.auth import accounts, callers, sessions, tokens
    from shared.core import db

    db.migrate()
    user = accounts.find_or_create("kakao", "sign-1", "signer")
    env.setenv("JWT_PUBLIC_KEYS", json.dumps(tokens.jwks()))
    from conftest import reset_clients

    reset_clients()
    touched = touching(env)
    pair = sessions.start(user, "test")
    assert "signing" in touched
    touched.clear()
    tokens.verification_keys.cache_clear()
    callers.authenticate(f"Bearer {pair['access_token']}")
    assert "signing" not in touched


def test_emitted_events_say_their_data_is_json():
    """Binary mode carries the data's type in Content-Type; without it the subscriber cannot
    tell JSON from bytes."""
    from cloudevents.conversion import to_binary

    from shared.core import events

    headers, body = to_binary(events.make("kr.growbin.x", {"job_id": "j"}, task="t"))
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"job_id": "j"}


def _locked(name: str) -> dict[str, tuple[str, list[str]]]:
    """A lock file's pins: normalised name -> (version, hashes)."""
    from packaging.utils import canonicalize_name

    text = (ROOT / name).read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement, *options = line.split()
        package, version = requirement.split("==")
        pins[canonicalize_name(package)] = (
            version,
            [o for o in options if o.startswith("--hash=")],
        )
    return pins


def test_the_image_and_ci_install_locked_hashed_versions_only():
    """The image resolved the newest releases at build time: it (and CI's venv) now installs
    exactly the lock files' versions, each with its sha256, and ships neither pip nor
    setuptools."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for lock, requirements in (
        ("requirements.lock", project["dependencies"]),
        (
            "requirements-dev.lock",
            project["dependencies"] + project["optional-dependencies"]["dev"],
        ),
    ):
        pins = _locked(lock)
        assert all(hashes for _, hashes in pins.values()), lock
        for text in requirements:
            requirement = Requirement(text)
            version, _ = pins[canonicalize_name(requirement.name)]
            assert requirement.specifier.contains(version, prereleases=True), (lock, text)
    runtime, dev = _locked("requirements.lock"), _locked("requirements-dev.lock")
    assert {k: v[0] for k, v in runtime.items()} == {k: dev[k][0] for k in runtime}
    dockerfile = (ROOT / "Dockerfile").read_text()
    build, final = re.split(r"^FROM ", dockerfile, flags=re.M)[1:][-2:]
    assert "--require-hashes --no-deps -r requirements.lock" in build
    assert re.search(r"pip install --no-deps --no-build-isolation --compile \.", build)
    assert "pip uninstall --yes setuptools pip" in build
    assert "site-packages/pip*" in final and "site-packages/setuptools*" in final
    bootstrap = (ROOT / "task").read_text()
    assert "--require-hashes -r requirements-dev.lock" in bootstrap
    assert "-e '.[dev]'" not in bootstrap


# ---- Gateway API and ArgoCD objects against kubernetes-models' schemas (node) ----------------

MODELS = ROOT / "tests" / "models"  # package.json pins @kubernetes-models/gateway-api, argo-cd


def _models_validator() -> list[str]:
    """The node command that validates objects, after `npm ci` when the models are missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        if IN_CI:
            pytest.fail("CI must validate Gateway API and ArgoCD objects: node and npm missing")
        pytest.skip("node/npm not installed: Gateway API and ArgoCD schemas unchecked")
    if not (MODELS / "node_modules" / "@kubernetes-models").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=MODELS, check=True, timeout=300
        )
    return [node, str(MODELS / "validate.js")]


def models_errors(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """(kind/name) -> the schema error, None when valid, "no schema" when not covered."""
    command = _models_validator()
    result = subprocess.run(
        command,
        input="\n".join(json.dumps(o) for o in objects),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return {
        f"{r['kind']}/{r['name']}": r["error"] for r in map(json.loads, result.stdout.splitlines())
    }


def test_gateway_api_and_argocd_objects_match_their_schemas(deploy):
    _, root = deploy
    objects = [
        o for o in all_objects(root) if o["apiVersion"].startswith("gateway.networking.k8s.io/")
    ]
    objects += list(
        yaml.safe_load_all((root / "knative/manifests/argocd/application.yaml").read_text())
    )
    found = models_errors(objects)
    assert len(found) == len(objects)
    assert {k: v for k, v in found.items() if v is not None} == {}
    kinds = {key.split("/")[0] for key in found}
    assert {"Gateway", "HTTPRoute", "ReferenceGrant", "Application"} <= kinds


def test_the_models_check_rejects_a_bad_route(deploy):
    _, root = deploy
    route = next(iter(by_kind(all_objects(root), "HTTPRoute").values()))
    bad = copy.deepcopy(route)
    bad["spec"]["rules"][0]["matches"][0]["method"] = "FETCH"
    (error,) = models_errors([bad]).values()
    assert error and "method" in error


# ---- what each function reaches, read from its code -------------------------------------------
# The runtime check above records what one dead-lettered stage reaches; this one reads every
# deployed function's code: the handler and what it calls in functions/, shared/ and eventing/,
# plus the caller check for authenticated routes and, for the dead-letter sink, the reactions
# it runs. Reaching an accessor module (db, cache, storage, events) or the signing key needs the
# matching `uses`, else its Service lacks the Secret and its policy the egress.

REACHED_MODULES = {
    "shared.core.db": "db",
    "shared.core.cache": "cache",
    "shared.core.storage": "storage",
    "shared.core.events": "broker",
}
REACHED_FUNCTIONS = {"shared.auth.tokens.signing_key": "signing"}
# Not followed, with the reason: verification derives its key from the signing key only when
# JWT_PUBLIC_KEYS is unset (local mode); every Service that verifies gets JWT_PUBLIC_KEYS, and
# test_signing_is_reached_by_issuing_and_not_by_verifying checks that at run time.
NOT_FOLLOWED = {"shared.auth.tokens.verification_keys"}
OWN_CODE = ("functions", "shared", "eventing")


def _imported_inside(tree: Any) -> dict[str, Any]:
    """The names a function imports in its body (`from shared.auth import sessions` where the
    database layer loads only on a cache miss): what they reach counts like a module global's."""
    import ast
    import importlib

    found: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith(OWN_CODE):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                value = getattr(module, alias.name, None)
                if value is None:
                    value = importlib.import_module(f"{node.module}.{alias.name}")
                found[alias.asname or alias.name] = value
    return found


def reached(function: Any, seen: set | None = None) -> set[str]:
    """The `uses` names a Python function's code can reach, following the calls it names."""
    import ast
    import inspect
    import textwrap
    import types

    seen = set() if seen is None else seen
    function = inspect.unwrap(function)
    if not isinstance(function, types.FunctionType) or function.__code__ in seen:
        return set()
    seen.add(function.__code__)
    qualified = f"{function.__module__}.{function.__name__}"
    if not function.__module__.startswith(OWN_CODE) or qualified in NOT_FOLLOWED:
        return set()
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    names = {**function.__globals__, **_imported_inside(tree)}
    found: set[str] = set()
    for node in ast.walk(tree):
        target = None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = names.get(node.value.id)
            if isinstance(module, types.ModuleType):
                if module.__name__ in REACHED_MODULES and not node.attr[:1].isupper():
                    found.add(REACHED_MODULES[module.__name__])
                target = getattr(module, node.attr, None)
        elif isinstance(node, ast.Name):
            target = names.get(node.id)
        if target is not None:
            qualified = f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', '')}"
            if qualified in REACHED_FUNCTIONS:
                found.add(REACHED_FUNCTIONS[qualified])
            found |= reached(target, seen)
    return found


def needs(function: Function, registry: dict[str, Function]) -> set[str]:
    from shared.auth import callers

    found = reached(function.handler)
    if function.auth:  # the route wrapper checks the caller before the handler runs
        found |= reached(callers.caller)
    if function.name == dead_letter_sink().name:
        for declared in registry.values():
            if declared.on_dead_letter is not None:
                found |= reached(declared.on_dead_letter)
    return found


def test_every_function_is_given_what_its_code_reaches():
    registry = load_all()
    functions = [f for f in registry.values() if not f.local_only] + [dead_letter_sink()]
    missing = {
        f.name: sorted(needs(f, registry) - f.uses)
        for f in functions
        if needs(f, registry) - f.uses
    }
    assert missing == {}


def test_the_reach_check_catches_an_undeclared_dependency():
    from eventing import dead_letters
    from shared.waste import pipeline

    sink = dataclasses.replace(dead_letter_sink(), uses=frozenset({"db"}))  # before issue 16
    registry = {
        "stage": dataclasses.replace(dead_letter_sink(), on_dead_letter=pipeline.dead_lettered)
    }
    assert "cache" in needs(sink, registry) - sink.uses
    assert reached(dead_letters.dead_letter_sink) == {"db"}  # the recording alone
