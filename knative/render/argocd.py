"""The ArgoCD Application: ArgoCD syncs the Helm chart with the production values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from shared.core.deployment import NAMESPACE

REPO_URL = "https://github.com/growbin/growbin-backend.git"  # the Application's source


def argocd_application(chart: Path, production_values: Path) -> dict[str, Any]:
    """The chart at `chart` in the repository, synced with the values file at
    `production_values` (ArgoCD reads value files relative to the chart, within the repository);
    the migration Job's PreSync hook runs before anything else changes."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "growbin", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {
                "repoURL": REPO_URL,
                "targetRevision": "main",
                "path": str(chart),
                "helm": {"valueFiles": [os.path.relpath(production_values, chart)]},
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": NAMESPACE},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true"],
            },
        },
    }
