"""The architecture as rules a test can keep: the platform imports no domain, domains talk to
each other through named functions (never each other's tables), and nothing imports in a loop.

Imports are read from the source (every `import`, at module level or inside a function), so a
loop hidden behind a function-level import counts as a loop.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

from setuptools import find_namespace_packages
from sqlalchemy import Table

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "shared"
PLATFORM = "core"
DOMAINS = sorted(
    p.name for p in SHARED.iterdir() if (p / "__init__.py").exists() and p.name != PLATFORM
)


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(*folders: str) -> dict[str, Path]:
    return {
        _module(path): path
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "migrations" not in path.parts
    }


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for every import in the file; name is None for `import module`."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, alias.name) for alias in node.names]
    return found


def _is_module(dotted: str) -> bool:
    """Whether a dotted name is one of our modules, by the files alone (nothing is imported)."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _targets(module: str, name: str | None) -> list[str]:
    """The modules an import statement loads: `from shared.waste import jobs` loads jobs."""
    if name is not None and _is_module(f"{module}.{name}"):
        return [f"{module}.{name}"]
    return [module]


def _graph(sources: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in sources.items():
        for imported, name in _imports(path):
            for target in _targets(imported, name):
                if target in sources and target != module:
                    graph[module].add(target)
    return graph


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "shared" and len(parts) > 2 else None


def test_the_tree_has_a_platform_and_domains():
    assert (SHARED / PLATFORM / "__init__.py").exists()
    assert {"auth", "waste", "users", "locations", "ops"} <= set(DOMAINS)
    assert not list(SHARED.glob("*.py"))[1:], "modules belong in the platform or a domain"


def _domain_imports(sources: dict[str, Path]) -> list[str]:
    return [
        f"{module} imports {imported}"
        for module, path in sources.items()
        for imported, name in _imports(path)
        if (imported.startswith("shared.") and imported.split(".")[1] in DOMAINS)
        or (imported == "shared" and name in DOMAINS)
    ]


def test_the_platform_imports_no_domain_and_no_function():
    sources = _sources("shared/core")
    offenders = _domain_imports(sources) + [
        f"{module} imports {imported}"
        for module, path in sources.items()
        for imported, _ in _imports(path)
        if imported.split(".")[0] == "functions"
    ]
    assert not offenders, offenders


def test_the_eventing_runtime_imports_no_domain():
    """The brokers and the dead-letter sink deliver any event: what a domain does when its
    events are dead-lettered, it declares on its functions (`@event(on_dead_letter=...)`)."""
    offenders = _domain_imports(_sources("eventing"))
    assert not offenders, offenders


def test_the_library_never_imports_a_function_module_or_the_runtime():
    offenders = [
        f"{module} imports {imported}"
        for module, path in _sources("shared").items()
        for imported, _ in _imports(path)
        if imported.split(".")[0] in {"functions", "knative", "eventing", "bench", "tests"}
    ]
    assert not offenders, offenders


# The local runtime: what `growbin dev` runs in place of Knative, the broker and PingSources.
# eventing.dead_letters is not part of it: it is a function deployed as its own Service.
LOCAL_RUNTIME = ("knative.server", "knative.local", "eventing.broker", "eventing.cron")
RENDERERS = "knative.render"


def _reached(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` loads, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _is_local_runtime(module: str) -> bool:
    return module in LOCAL_RUNTIME or (
        module.startswith("eventing.") and module != "eventing.dead_letters"
    )


def test_renderers_and_the_local_runtime_do_not_import_each_other():
    """`growbin render` runs without the dev server, broker or cron, and they without it: what
    both need (the path map, the namespace, durations) is declared in shared.core."""
    graph = _graph(_sources("shared", "eventing", "functions", "knative"))
    modules = set(graph) | {t for targets in graph.values() for t in targets}
    offenders = [
        f"{module} loads {target}"
        for module in sorted(modules)
        for target in sorted(_reached(graph, module))
        if (module.startswith(RENDERERS) and _is_local_runtime(target))
        or (_is_local_runtime(module) and target.startswith(RENDERERS))
    ]
    assert not offenders, offenders


def _shipped() -> tuple[set[str], set[str]]:
    """(modules, data files) the wheel holds, by the same setuptools discovery the build runs
    with pyproject.toml's settings; the image installs that wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = find_namespace_packages(str(ROOT), include=config["packages"]["find"]["include"])
    modules = {
        _module(path)
        for package in packages
        for path in ROOT.joinpath(*package.split(".")).glob("*.py")
    }
    for module in config.get("py-modules", []):
        parent = module.rpartition(".")[0]
        modules |= {module, parent}  # setuptools ships the package's __init__ with its module
    data = {
        str(path.relative_to(ROOT))
        for package, patterns in config["package-data"].items()
        for pattern in patterns
        for path in ROOT.joinpath(*package.split(".")).glob(pattern)
    }
    return modules, data


def test_the_image_ships_what_runs_on_the_cluster_and_nothing_else():
    modules, data = _shipped()
    graph = _graph(_sources("shared", "eventing", "functions", "knative"))
    deployed = [m for m in _sources("functions") if m != "functions"] + ["eventing.dead_letters"]
    needed = {m for module in deployed for m in {module} | _reached(graph, module)}
    assert needed - modules == set(), "deployed code imports modules the wheel lacks"
    assert {"functions", "knative.cli", *_sources("shared")} <= modules
    dev_only = [
        m
        for m in modules
        if m.startswith((RENDERERS, "knative.openapi", "bench", "tests")) or _is_local_runtime(m)
    ]
    assert not dev_only, dev_only
    # every file the library reads beside its code (the search's names and calibration among
    # them: a search without them fails on the cluster's first query); no manifest, no dataset
    beside_code = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "shared").rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"}
    }
    assert data == beside_code
    assert "shared/waste/search/aliases.yaml" in data


def test_the_cli_loads_no_dev_only_module_when_imported():
    """The CLI is the image's entry point (`growbin migrate`, `growbin import`): it may only
    reach the local server, broker and renderers inside the commands that need them."""
    script = (
        "import sys, knative.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith(('knative', 'eventing'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "['knative', 'knative.cli']"


def _loops(graph: dict[str, set[str]]) -> list[list[str]]:
    loops: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                loops.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return loops


def test_no_import_loops_between_modules():
    loops = _loops(_graph(_sources("shared", "eventing", "functions", "knative")))
    assert not loops, [" -> ".join(loop) for loop in loops]


def test_domains_depend_on_each_other_without_loops():
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in _graph(_sources("shared")).items():
        for target in targets:
            source, dest = _package(module), _package(target)
            if source in DOMAINS and dest in DOMAINS and source != dest:
                packages[source].add(dest)

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
            for nxt in packages.get(start, ())
        )

    loops = sorted(domain for domain in DOMAINS if reaches(domain, domain))
    assert not loops, dict(packages)


def _names_used(path: Path) -> list[tuple[str, str]]:
    """(module, attribute) for every `alias.attribute` where alias is an imported module, and
    every `from module import name`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    used: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                target = _targets(node.module, alias.name)[0]
                if target != node.module:  # the name is a module of ours
                    aliases[alias.asname or alias.name] = target
                else:
                    used.append((node.module, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        name = node.value if isinstance(node, ast.Attribute) else None
        if isinstance(name, ast.Name) and name.id in aliases:
            used.append((aliases[node.value.id], node.attr))
    return used


def test_no_domain_touches_another_domains_tables():
    offenders = []
    for module, path in _sources("shared").items():
        own = _package(module)
        if own not in DOMAINS:
            continue
        for target, name in _names_used(path):
            other = _package(target)
            if other in DOMAINS and other != own:
                value = getattr(importlib.import_module(target), name, None)
                if isinstance(value, Table):
                    offenders.append(f"{module} uses {target}.{name}")
    assert not offenders, offenders


def test_the_rules_catch_what_they_forbid(tmp_path):
    """The checks above see a table used across domains and a loop, so a pass means something."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from shared.auth import accounts\nfrom shared.waste.jobs import jobs\n"
        "def f():\n    return accounts.users, jobs\n"
    )
    used = _names_used(probe)
    assert ("shared.auth.accounts", "users") in used
    assert ("shared.waste.jobs", "jobs") in used
    hidden = tmp_path / "hidden.py"
    hidden.write_text("def f():\n    from shared.auth import sessions\n")
    assert _imports(hidden) == [("shared.auth", "sessions")]
    assert _targets("shared.auth", "sessions") == ["shared.auth.sessions"]
    assert _domain_imports({"probe": hidden}) == ["probe imports shared.auth"]
    assert _domain_imports({"probe": probe}) == [
        "probe imports shared.auth",
        "probe imports shared.waste.jobs",
    ]
    assert _loops({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _loops({"a": {"b"}, "b": {"c"}}) == []
    assert _reached({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "a") == {"a", "b", "c"}
    assert _is_local_runtime("eventing.rabbitmq") and not _is_local_runtime("eventing.dead_letters")
