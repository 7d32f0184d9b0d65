"""Where the functions run, as the cluster's manifests and the local runtime both need it.

`growbin render` (knative/render) writes these into the routes, Triggers and dashboards; the
local server, broker and cron honour the same values. Kept here, beside the declarations, so
neither side imports the other.
"""

from __future__ import annotations

# The AWS ALB's fixed path map: every HTTP function's path starts with one of these.
ALB_PATHS = ("/api/v1/auth/", "/api/v1/users/", "/api/v1/waste/", "/api/v1/locations/")
# The Kubernetes namespace of every object; locally it names the RabbitMQ exchanges and queues
# and the PingSource source path, so local events look like the cluster's.
NAMESPACE = "growbin"
