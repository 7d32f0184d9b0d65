"""Status poll — GET /api/v1/waste/status/{job_id}, the app's most frequent call.

In a module of its own so that its Service loads the token code and the cache and nothing
else: a cold instance answers a cached view without importing SQLAlchemy or a database driver.
Its caller keeps the session's state and the job's view between their changes (`mirror`): on
Redis, a poll that finds nothing changed makes no round trip.
The database layer (the jobs module) loads on the first poll the cache cannot answer: a view
not cached, or one overdue. tests/test_runtime.py keeps it that way.
"""

from __future__ import annotations

from shared.auth import callers
from shared.core.registry import HOT, endpoints
from shared.waste import progress

http = endpoints(authenticate=callers.kept_caller)


@http(
    "GET /api/v1/waste/status/{job_id}",
    scaling=HOT,
    responses={200: progress.STATUS},
    along=progress.status_along,
)
def waste_status(request, user, job_id, along):
    """Where the job is; Retry-After says when to ask again while it runs."""
    view = progress.cached(user.user_id, job_id, along[0])
    if view is None:  # not cached, or overdue: the row decides
        from shared.waste import jobs

        view = jobs.status(user.user_id, job_id, along[0])
    return view, 200, progress.retry_after(view)
