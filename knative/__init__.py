"""Knative: the CLI, the local server, and the renderers of the manifests (in manifests/)."""
