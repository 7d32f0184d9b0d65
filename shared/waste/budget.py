"""The deployment-wide model budget: tokens per minute and per day, counted in the cache.

Every model call's real usage is added to the current window's counter (INCRBY, with an expiry
so the key goes when its window does), in Redis on the cluster, so every process sees the same
spend; in memory locally. Windows are fixed and aligned on the clock (UTC minutes and days), so
the wait until one frees up is the rest of it. Past a limit, `ai` refuses the call before it is
made (`ModelError` MODEL_BUDGET_EXHAUSTED) and `POST /waste/analyze` refuses analyses that
would need the model: a spent budget is a 503 now, not a storm of failed jobs later.
"""

from __future__ import annotations

import contextlib
import time
from typing import NamedTuple

from shared.core import cache, telemetry
from shared.core.errors import log_event
from shared.core.settings import settings

CODE = "MODEL_BUDGET_EXHAUSTED"
WINDOWS = (("minute", 60), ("day", 86_400))


class Spent(NamedTuple):
    """A window whose limit is reached, and how long until it frees up."""

    window: str
    used: int
    limit: int
    retry_after: int


def _limits() -> list[tuple[str, int, int]]:
    """(window, seconds, limit) of the windows with a limit set."""
    s = settings()
    limits = {"minute": s.model_tokens_per_minute, "day": s.model_tokens_per_day}
    return [(name, seconds, limits[name]) for name, seconds in WINDOWS if limits[name]]


def _key(window: str, seconds: int, now: float) -> str:
    return f"model-budget:{window}:{int(now) // seconds}"


def spend(tokens: int) -> None:
    """Count what a model call used in every limited window. Never fails the call: the answer
    is paid for, so a cache down this instant costs a missed count, not a second payment."""
    if tokens <= 0:
        return
    now = time.time()
    try:
        c = cache.client()
        for window, seconds, _limit in _limits():
            key = _key(window, seconds, now)
            if c.incr(key, tokens) == tokens:  # the window's first spend: the key ends with it
                c.expire(key, seconds - int(now) % seconds + 1)
    except Exception as exc:
        log_event("warning", "model_budget_not_counted", tokens=tokens, error=repr(exc))


def exhausted() -> Spent | None:
    """The spent window that frees up last, or None while every window has budget left. The
    first time a window is found spent, one log line says so (one per window, not per call)."""
    now = time.time()
    spent = []
    for window, seconds, limit in _limits():
        key = _key(window, seconds, now)
        used = int(cache.client().get(key) or 0)
        if used >= limit:
            spent.append(Spent(window, used, limit, max(1, seconds - int(now) % seconds)))
            _log_once(key, spent[-1])
    last = max(spent, key=lambda s: s.retry_after, default=None)
    if last is not None:  # the caller refuses: the guard tripped
        telemetry.count(telemetry.BUDGET_REFUSALS, window=last.window)
    return last


def _log_once(key: str, spent: Spent) -> None:
    with contextlib.suppress(Exception):  # the refusal matters, not its log line
        if not cache.client().set(f"{key}:logged", "1", ex=spent.retry_after + 1, nx=True):
            return
    log_event(
        "warning",
        "model_budget_exhausted",
        window=spent.window,
        used=spent.used,
        limit=spent.limit,
        retry_after=spent.retry_after,
    )
