"""The ArgoCD Application: ArgoCD syncs the Helm chart with the production values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.core.deployment import NAMESPACE

REPO_URL = "https://github.com/growbin/growbin-backend.git"  # the Application's source


def argocd_application(chart: Path) -> dict[str, Any]:
    """The chart at `chart` in the repository, synced with production values; the migration
    Job's PreSync hook runs before anything else changes."""
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
                "helm": {"valueFiles": ["values-production.yaml"]},
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": NAMESPACE},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true"],
                "managedNamespaceMetadata": {"labels": {"bindings.knative.dev/include": "true"}},
            },
        },
    }
