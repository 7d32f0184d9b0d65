"""The Kakao Local API: addresses to coordinates (for the street-bin import) and recycling
places around a point (for nearby). Used only when KAKAO_REST_API_KEY is set.

Geocoding is a batch job's work: answers are kept in the `geocodes` table (found ones for
good, "not found" for 30 days), calls are paced to GEOCODE_PER_SECOND, a 429 waits and
retries, and a key Kakao refuses or an outage stops the batch early with what it has.

Places serve a user who is waiting: each lookup has a one-second budget with tight timeouts,
answers are cached for a day per ~1 km cell, and a failure opens a short circuit breaker so
the next requests do not wait on Kakao either. A failure never fails nearby; it only leaves
Kakao's places out.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import Boolean, Column, Double, Table, Text, select

from shared.core import cache as shared_cache
from shared.core import db
from shared.core.batching import chunked
from shared.core.errors import log_event
from shared.core.settings import settings
from shared.locations import geo

ADDRESS_URL = "https://dapi.kakao.com/v2/local/search/address.json"
KEYWORD_URL = "https://dapi.kakao.com/v2/local/search/keyword.json"
PLACE_PREFIX = "kakao:"
PLACE_KEYWORDS = ("재활용센터", "자원순환센터")
PLACES_TIMEOUT = (0.3, 0.7)  # connect, read: a user is waiting
PLACES_BUDGET_S = 1.0  # for all keywords of one lookup together
PLACES_TTL = 24 * 3600
PLACES_CELL_DEG = 0.01  # cache cell: lookups are centred on the cell, widened by its size
PLACES_DOWN_TTL = 60  # after a failure, skip Kakao for this long
GEOCODE_TIMEOUT = (3.0, 10.0)
GEOCODE_PER_SECOND = 10.0
GEOCODE_RETRY_NOT_FOUND = timedelta(days=30)
GEOCODE_MAX_FAILURES = 5  # consecutive errors before a batch gives up

geocodes = Table(
    "geocodes",
    db.metadata,
    Column("query", Text, primary_key=True),
    Column("found", Boolean, nullable=False),
    Column("lat", Double),
    Column("lng", Double),
    Column("address", Text),  # the address Kakao matched
    Column("fetched_at", db.UtcDateTime, nullable=False),
)


class KakaoUnavailable(Exception):
    """Kakao did not answer usefully (down, slow, refused the key, over quota)."""

    def __init__(self, message: str, status: int | None = None, retry_after: str | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def configured() -> bool:
    return bool(settings().kakao_rest_api_key)


def _key(suffix: str) -> str:
    """A cache key of this API key's namespace: a rotated key starts cold, as it should."""
    api_key = settings().kakao_rest_api_key or ""
    return f"kakao:{hashlib.sha256(api_key.encode()).hexdigest()[:8]}:{suffix}"


@cache
def _session():
    import requests

    session = requests.Session()
    session.headers["User-Agent"] = "growbin-backend"
    return session


def _get(url: str, params: dict[str, Any], timeout: tuple[float, float]) -> dict[str, Any]:
    """One Kakao Local call; raises KakaoUnavailable for anything but a 200 with JSON."""
    import requests

    headers = {"Authorization": f"KakaoAK {settings().kakao_rest_api_key}"}
    try:
        response = _session().get(url, params=params, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise KakaoUnavailable(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise KakaoUnavailable(
            f"HTTP {response.status_code}: {response.text[:200]}",
            status=response.status_code,
            retry_after=response.headers.get("Retry-After"),
        )
    try:
        return response.json()
    except ValueError as exc:
        raise KakaoUnavailable("Kakao answered with something that is not JSON") from exc


# ---- geocoding ----------------------------------------------------------------------------

_pace_lock = threading.Lock()
_next_call = 0.0


def _pace() -> None:
    """Space calls 1/GEOCODE_PER_SECOND apart within this process."""
    global _next_call
    with _pace_lock:
        now = time.monotonic()
        wait = _next_call - now
        _next_call = max(now, _next_call) + 1.0 / GEOCODE_PER_SECOND
    if wait > 0:
        time.sleep(wait)


def _seconds(retry_after: str | None) -> float:
    try:
        return min(30.0, max(0.0, float(retry_after or 1.0)))
    except ValueError:
        return 1.0


def _geocode_one(query: str, stats: dict[str, Any]) -> dict[str, Any]:
    for attempt in range(3):
        _pace()
        stats["calls"] += 1
        try:
            body = _get(ADDRESS_URL, {"query": query, "size": 1}, GEOCODE_TIMEOUT)
        except KakaoUnavailable as exc:
            if exc.status == 429 and attempt < 2:
                time.sleep(_seconds(exc.retry_after))
                continue
            raise
        for document in body.get("documents") or []:
            try:
                lat, lng = float(document["y"]), float(document["x"])
            except (KeyError, TypeError, ValueError):
                continue
            if geo.in_korea(lat, lng):
                return {
                    "found": True,
                    "lat": lat,
                    "lng": lng,
                    "address": document.get("address_name"),
                }
        return {"found": False, "lat": None, "lng": None, "address": None}
    raise KakaoUnavailable("rate limited by Kakao")


def geocode(queries: Iterable[str]) -> dict[str, Any]:
    """Coordinates for addresses: from the table when known, else from Kakao, paced.

    Returns {"coordinates": {query: (lat, lng)}, "not_found": [...], "pending": [...],
    "calls": n, "error": str | None}; `pending` are the queries left for a later run (no key,
    or Kakao failed). Without a key only the table is read.
    """
    wanted = sorted({q for q in queries if q})
    coordinates: dict[str, tuple[float, float]] = {}
    not_found: list[str] = []
    known: dict[str, dict[str, Any]] = {}
    with db.engine().connect() as conn:
        for chunk in chunked(wanted, 500):
            for row in conn.execute(select(geocodes).where(geocodes.c.query.in_(chunk))):
                known[row.query] = row._asdict()
    retry_before = db.now() - GEOCODE_RETRY_NOT_FOUND
    todo = []
    for query in wanted:
        row = known.get(query)
        if row and row["found"]:
            coordinates[query] = (row["lat"], row["lng"])
        elif row and row["fetched_at"] > retry_before:
            not_found.append(query)
        else:
            todo.append(query)
    stats: dict[str, Any] = {"calls": 0, "error": None}
    pending: list[str] = []
    if not configured():
        todo, pending = [], todo
    failures = 0
    for index, query in enumerate(todo):
        try:
            answer = _geocode_one(query, stats)
        except KakaoUnavailable as exc:
            failures += 1
            pending.append(query)
            if exc.status in (401, 403) or failures >= GEOCODE_MAX_FAILURES:
                stats["error"] = str(exc)
                pending.extend(todo[index + 1 :])
                log_event("warning", "geocoding_stopped", error=str(exc), pending=len(pending))
                break
            continue
        failures = 0
        with db.transaction() as conn:
            db.upsert(
                conn,
                geocodes,
                {"query": query, "fetched_at": db.now(), **answer},
                keys=["query"],
                update=["found", "lat", "lng", "address", "fetched_at"],
            )
        if answer["found"]:
            coordinates[query] = (answer["lat"], answer["lng"])
        else:
            not_found.append(query)
    return {**stats, "coordinates": coordinates, "not_found": not_found, "pending": pending}


# ---- places around a point ----------------------------------------------------------------


def _place(document: dict[str, Any]) -> dict[str, Any] | None:
    try:
        lat, lng = float(document["y"]), float(document["x"])
    except (KeyError, TypeError, ValueError):
        return None
    return {
        "id": PLACE_PREFIX + str(document["id"]),
        "name": document.get("place_name") or "재활용센터",
        "type": "recycle_center",
        "address": document.get("road_address_name") or document.get("address_name"),
        "lat": lat,
        "lng": lng,
        "phone": document.get("phone") or None,
        "category": document.get("category_name"),
        "url": document.get("place_url"),
    }


def _fetch_places(lat: float, lng: float, radius: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + PLACES_BUDGET_S
    places: dict[str, dict[str, Any]] = {}
    for keyword in PLACE_KEYWORDS:
        left = deadline - time.monotonic()
        if left <= 0.05:
            raise KakaoUnavailable("Kakao places took longer than the budget")
        timeout = (min(PLACES_TIMEOUT[0], left), min(PLACES_TIMEOUT[1], left))
        body = _get(
            KEYWORD_URL,
            {
                "query": keyword,
                "x": f"{lng:.6f}",
                "y": f"{lat:.6f}",
                "radius": radius,
                "sort": "distance",
                "size": 15,
            },
            timeout,
        )
        for document in body.get("documents") or []:
            place = _place(document)
            if place is not None:
                places.setdefault(place["id"], place)
    return list(places.values())


def recycling_places(lat: float, lng: float, radius_m: float) -> list[dict[str, Any]]:
    """Kakao's recycling centres within `radius_m`, each with its distance; [] when Kakao or
    the cache is unreachable (logged), never an exception."""
    try:
        return _recycling_places(lat, lng, radius_m)
    except Exception as exc:  # best effort: nearby answers with our bins alone
        log_event("warning", "kakao_places_unavailable", error=repr(exc))
        with contextlib.suppress(Exception):  # the cache may be what is down
            shared_cache.client().set(_key("places-down"), "1", ex=PLACES_DOWN_TTL)
        return []


def _recycling_places(lat: float, lng: float, radius_m: float) -> list[dict[str, Any]]:
    client = shared_cache.client()
    if client.get(_key("places-down")):
        return []
    cell_lat = round(lat / PLACES_CELL_DEG) * PLACES_CELL_DEG
    cell_lng = round(lng / PLACES_CELL_DEG) * PLACES_CELL_DEG
    # Query from the cell centre far enough to cover the radius from anywhere in the cell.
    reach = min(20000, int(radius_m + geo.haversine_m(0, 0, PLACES_CELL_DEG, PLACES_CELL_DEG)))
    reach = next(r for r in (1000, 2000, 5000, 10000, 20000) if r >= reach)
    key = _key(f"places:{cell_lat:.2f}:{cell_lng:.2f}:{reach}")
    places = shared_cache.get_json(key)
    if places is None:
        places = _fetch_places(cell_lat, cell_lng, reach)
        shared_cache.set_json(key, places, PLACES_TTL)
        for place in places:
            shared_cache.set_json(_key(f"place:{place['id']}"), place, PLACES_TTL)
    found = []
    for place in places:
        distance = geo.haversine_m(lat, lng, place["lat"], place["lng"])
        if distance <= radius_m:
            shown = {k: place[k] for k in ("id", "name", "type", "address", "lat", "lng")}
            found.append({**shown, "distance_m": distance, "source": "kakao_local"})
    return found


def place(place_id: str) -> dict[str, Any] | None:
    """A Kakao place nearby returned recently (the cache keeps them a day), as a bin."""
    if not configured():
        return None
    found = shared_cache.get_json(_key(f"place:{place_id}"))
    if found is None:
        return None
    return {
        **{k: found[k] for k in ("id", "name", "type", "address", "lat", "lng")},
        "district": None,
        "location_detail": None,
        "opening_hours": None,
        "accepted_items": [],
        "phone": found["phone"],
        "source": {
            "dataset": "kakao_local",
            "title": "Kakao Local (카카오 로컬 키워드 검색)",
            "publisher": "Kakao",
            "date": None,
            "attribution": "Kakao Local API (place data © Kakao)",
            "row": {"category": found["category"], "place_url": found["url"]},
        },
        "updated_at": None,
    }
