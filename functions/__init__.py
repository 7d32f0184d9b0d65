"""The functions: one module per domain, one decorated function per endpoint or task.

Each module is loaded on its own on the cluster (`functions-framework --source
functions/waste.py --target waste_result`); the local runtime loads them all with `load_all`.
The status poll has a module of its own (status.py), so that it starts without the database.
"""

from __future__ import annotations

import importlib

MODULES = ("auth", "users", "waste", "status", "pipeline", "locations", "batch", "ops")


def load_all() -> dict:
    """Import every function module and return the registry their declarations filled."""
    from shared.core.registry import REGISTRY

    for name in MODULES:
        try:
            importlib.import_module(f"functions.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"functions.{name}":
                raise
    return REGISTRY
