"""Each setting is declared once (shared/core/settings.VARIABLES): the README's configuration
table is its rows, and settings.py reads exactly the declared variables."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

from shared.core import settings as settings_module
from shared.core.settings import VARIABLES

HEADER = "| variable | default | what |"


def table() -> list[str]:
    """The README's configuration table as the declaration writes it."""
    rows = [HEADER, "|---|---|---|"]
    for variable in VARIABLES:
        default = variable.shown or (f"`{variable.default}`" if variable.default else "-")
        rows.append(f"| `{variable.name}` | {default} | {variable.what} |")
    return rows


def test_the_readme_table_is_the_declaration():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER)
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    expected = table()
    assert lines[start:end] == expected, "README's configuration table should read:\n" + "\n".join(
        expected
    )


def test_settings_reads_exactly_the_declared_variables():
    tree = ast.parse(Path(settings_module.__file__).read_text(encoding="utf-8"))
    read = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "_env"
        and isinstance(node.args[0], ast.Constant)
    }
    declared = [variable.name for variable in VARIABLES]
    assert len(declared) == len(set(declared))
    assert read == set(declared)


def test_a_declared_default_is_the_value_when_unset_or_empty(env):
    env.setenv("OPENAI_TIMEOUT", "")
    env.setenv("BROKER_NAME", "night")
    settings_module.settings.cache_clear()
    current = settings_module.settings()
    assert current.openai_timeout == 20.0 and current.image_retention_days == 30
    assert current.broker_name == "night" and current.mode == "local"
