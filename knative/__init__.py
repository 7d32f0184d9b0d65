"""Knative: the Services and routes rendered from the declarations, and the local server."""
