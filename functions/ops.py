"""Operator functions: reads of the ops domain for admins, on the waste path of the ALB map
(`GET /api/v1/waste/reports`). The reports themselves are written by the `report_generate`
cron task (functions/batch.py)."""

from __future__ import annotations

from shared.auth import callers
from shared.core.registry import endpoints
from shared.core.validation import obj
from shared.ops import reports

http = endpoints(authenticate=callers.caller)

REPORTS = obj(
    {
        "items": {
            "type": "array",
            "items": obj(
                {
                    "day": {"type": "string", "format": "date"},
                    "key": {"type": "string"},
                    "url": {"type": "string"},
                },
                required=("day", "key", "url"),
            ),
        }
    },
    required=("items",),
)


@http(
    "GET /api/v1/waste/reports",
    auth="admin",
    responses={200: REPORTS},
    uses=("db", "cache", "storage"),
)
def waste_reports(request, user):
    """Operators only: the stored reports, newest first, with short-lived links."""
    return {"items": reports.listing()}
