"""Every deployment file, derived from the function declarations: `growbin render`.

From `shared.core.registry.REGISTRY` (plus the cluster's dead-letter sink) each module builds the
objects its name says, and `files` writes them, each under a folder named manifests/: plain
manifests into knative/manifests and eventing/manifests (both kustomize-ready), the same objects
as the Helm chart in helm/manifests/growbin, and knative/manifests/openapi.json. Nothing here is
written by hand twice, and nothing here imports the local server, broker or cron.

    metadata          the release, namespace and labels every object shares
    values            what an operator may tune: a `Value`, its default in the plain
                      manifests, a bare `{{ .Values.path }}` in the chart, values.schema.json
    services          a Knative Service per function, the ConfigMap and ServiceAccount they
                      run with, the migration Job that runs before them
    eventing          the RabbitMQ-backed Broker, a Trigger per event function, a PingSource
                      per cron function, the dead-letter sink
    routing           the ALB Ingress into the Gateway, an HTTPRoute per HTTP function
    network_policies  default deny, then exactly the traffic each declaration `uses`
    dashboard         the Grafana dashboard
    argocd            the ArgoCD Application that syncs the chart
    files             which file each object goes to, and `write_all` / `sync`, which write
                      them or, with `check`, list the ones that differ

ARCHITECTURE.md ("Deployment") says why the objects look the way they do.
"""
