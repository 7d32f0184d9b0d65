"""Nearby on a million bins: p50/p95 through the area index against a full scan, same run.

    PYTHONPATH=. python bench/nearby.py                  # SQLite; PostgreSQL too when
    DATABASE_URL=postgresql://... PYTHONPATH=. python bench/nearby.py   # DATABASE_URL is set

Each backend gets a fresh database (a temporary SQLite file; a PostgreSQL schema of its own,
dropped afterwards), migrated as in production. The real bundled data is imported, then
synthetic bins spread over South Korea (clustered around its cities, plus a uniform spread)
fill it up to --bins bins with coordinates. Queries go through `shared.locations.bins.nearby`, the
function behind GET /bins/nearby, from points near real and synthetic bins. The baseline is the
same bounding-box query with the indexes switched off (SQLite NOT INDEXED; PostgreSQL with
index scans disabled). For the first --full-scans points of every scenario it must answer the
same ids in the same order (the `differ` column counts those that do not). Prints a table and
writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Metropolitan and provincial centres (lat, lng, spread in km): where synthetic bins cluster.
CITIES = [
    (37.5665, 126.9780, 9),  # Seoul
    (35.1796, 129.0756, 8),  # Busan
    (37.4563, 126.7052, 7),  # Incheon
    (35.8714, 128.6014, 7),  # Daegu
    (36.3504, 127.3845, 6),  # Daejeon
    (35.1595, 126.8526, 6),  # Gwangju
    (35.5384, 129.3114, 6),  # Ulsan
    (37.2636, 127.0286, 6),  # Suwon
    (37.6584, 126.8320, 5),  # Goyang
    (37.4200, 127.1265, 5),  # Seongnam
    (36.4800, 127.2890, 4),  # Sejong
    (36.6424, 127.4890, 5),  # Cheongju
    (35.8242, 127.1480, 5),  # Jeonju
    (36.8151, 127.1139, 5),  # Cheonan
    (35.2281, 128.6811, 5),  # Changwon
    (36.0190, 129.3435, 4),  # Pohang
    (37.8813, 127.7298, 4),  # Chuncheon
    (33.4996, 126.5312, 4),  # Jeju
]
MAINLAND = (34.4, 38.3, 126.2, 129.4)  # lat/lng extent of the uniform spread
TYPES = [
    ("general", 35),
    ("recycling", 35),
    ("clothing", 15),
    ("battery", 8),
    ("lamp", 4),
    ("recycle_center", 3),
]
SCENARIOS = {  # name: (radius m, type or None, limit)
    "r1000": (1000, None, 20),
    "r1000_typed": (1000, "typed", 20),
    "r5000": (5000, None, 20),
    "r20000_limit100": (20000, None, 100),
}
SYNTHETIC_DATASET = "bench/synthetic"
COLUMNS = (
    "id",
    "dataset",
    "source_id",
    "type",
    "name",
    "lat",
    "lng",
    "band",
    "properties",
    "updated_at",
)


def synthetic_points(count: int, rng: random.Random):
    """(lat, lng) pairs: 60 % around the cities, weighted by spread, 40 % uniform."""
    weights = [spread**2 for _lat, _lng, spread in CITIES]
    for _ in range(count):
        if rng.random() < 0.6:
            lat, lng, spread = rng.choices(CITIES, weights)[0]
            lat += rng.gauss(0, spread / 111.0)
            lng += rng.gauss(0, spread / 88.0)
        else:
            lat = rng.uniform(MAINLAND[0], MAINLAND[1])
            lng = rng.uniform(MAINLAND[2], MAINLAND[3])
        yield lat, lng


def synthetic_rows(count: int, rng: random.Random):
    from shared.locations import bins

    kinds = [k for k, _w in TYPES]
    weights = [w for _k, w in TYPES]
    now = datetime.now(UTC)
    for n, (lat, lng) in enumerate(synthetic_points(count, rng)):
        kind = rng.choices(kinds, weights)[0]
        source_id = f"s{n}"
        yield (
            bins.bin_id(SYNTHETIC_DATASET, source_id),
            SYNTHETIC_DATASET,
            source_id,
            kind,
            bins.LABELS[kind],
            lat,
            lng,
            bins.band_of(lat),
            "{}",
            now,
        )


def _dataset_row() -> dict[str, Any]:
    return {
        "key": SYNTHETIC_DATASET,
        "kind": "register",
        "title": "benchmark: synthetic bins spread over Korea",
        "sha256": "0" * 64,
        "report": {},
        "imported_at": datetime.now(UTC),
    }


def load(count: int, rng: random.Random, chunk: int = 50_000) -> float:
    """Bulk-insert `count` synthetic bins into the migrated schema; returns seconds."""
    from sqlalchemy import insert

    from shared.core import db
    from shared.locations import bins

    started = time.perf_counter()
    engine = db.engine()
    with engine.begin() as conn:
        conn.execute(insert(bins.bin_datasets).values(**_dataset_row()))
    rows = synthetic_rows(count, rng)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            sql = f"COPY bins ({', '.join(COLUMNS)}) FROM STDIN"
            with cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            sql = (
                f"INSERT INTO bins ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
            )
            batch: list[tuple] = []
            for row in rows:
                batch.append((*row[:-1], row[-1].strftime("%Y-%m-%d %H:%M:%S.%f")))
                if len(batch) == chunk:
                    cursor.executemany(sql, batch)
                    batch.clear()
            cursor.executemany(sql, batch)
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - started


def query_points(count: int, rng: random.Random) -> list[tuple[float, float]]:
    """Half near real bins (jittered up to ~1 km), half near synthetic ones."""
    from sqlalchemy import func, select

    from shared.core import db
    from shared.locations import bins

    with db.engine().connect() as conn:
        real = conn.execute(
            select(bins.bins.c.lat, bins.bins.c.lng)
            .where(bins.bins.c.dataset != SYNTHETIC_DATASET, bins.bins.c.lat.is_not(None))
            .order_by(func.random())
            .limit(count)
        ).all()
    synthetic = list(synthetic_points(count, random.Random(rng.random())))
    points = []
    for n in range(count):
        lat, lng = real[n % len(real)] if n % 2 == 0 else synthetic[n]
        points.append((lat + rng.uniform(-0.009, 0.009), lng + rng.uniform(-0.011, 0.011)))
    return points


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50_ms": round(at(0.50) * 1000, 3),
        "p95_ms": round(at(0.95) * 1000, 3),
        "p99_ms": round(at(0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
        "n": len(ordered),
    }


def run_scenarios(points, rng: random.Random) -> tuple[dict[str, Any], dict]:
    """Times every scenario; keeps each query's (type, ids) to check against the full scan."""
    from shared.locations import bins

    kinds = [k for k, _w in TYPES]
    results: dict[str, Any] = {}
    answers: dict = {}
    for lat, lng in points[:100]:  # warm the page cache and the statement cache
        bins.nearby(lat, lng, 1000)
    for name, (radius, kind, limit) in SCENARIOS.items():
        timings, found = [], []
        answers[name] = []
        for lat, lng in points:
            chosen = rng.choice(kinds) if kind == "typed" else kind
            started = time.perf_counter()
            items = bins.nearby(lat, lng, radius, chosen, limit)
            timings.append(time.perf_counter() - started)
            found.append(len(items))
            answers[name].append((chosen, [i["id"] for i in items]))
        results[name] = {
            **percentiles(timings),
            "radius_m": radius,
            "type": kind,
            "limit": limit,
            "mean_found": round(statistics.fmean(found), 1),
        }
    return results, answers


def full_scan(
    lat: float, lng: float, radius: float, limit: int, kind: str | None = None
) -> list[str]:
    """The same answer without the area index: the database reads every row."""
    from sqlalchemy import text

    from shared.core import db
    from shared.locations import geo

    box = geo.bounding_box(lat, lng, radius)
    params = {**dict(zip(("a", "b", "c", "d"), box, strict=True)), "kind": kind}
    where = "WHERE lat BETWEEN :a AND :b AND lng BETWEEN :c AND :d"
    if kind:
        where += " AND type = :kind"
    with db.engine().begin() as conn:
        if conn.dialect.name == "postgresql":
            for setting in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
                conn.execute(text(f"SET LOCAL {setting} = off"))
            sql = f"SELECT id, lat, lng FROM bins {where}"
        else:
            sql = f"SELECT id, lat, lng FROM bins NOT INDEXED {where}"
        rows = conn.execute(text(sql), params).all()
    found = sorted(
        (d, row.id) for row in rows if (d := geo.haversine_m(lat, lng, row.lat, row.lng)) <= radius
    )
    return [i for _d, i in found[:limit]]


def plan(lat: float, lng: float) -> str:
    from sqlalchemy import text

    from shared.core import db
    from shared.locations import bins, geo

    query = bins.area_query(geo.bounding_box(lat, lng, 1000))
    with db.engine().connect() as conn:
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        return "\n".join(str(r[-1]) for r in conn.execute(text(prefix + sql)))


def bench_backend(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import func, select

    from shared.core import db
    from shared.core.settings import settings
    from shared.locations import bin_import, bins

    os.environ["DATABASE_URL"] = url
    settings.cache_clear()
    db.reset()
    rng = random.Random(args.seed)
    db.migrate()
    started = time.perf_counter()
    reports = bin_import.import_public(only_if_changed=False)
    imported_s = time.perf_counter() - started
    with db.engine().connect() as conn:
        real = conn.execute(select(func.count()).where(bins.bins.c.lat.is_not(None))).scalar()
    synthetic = max(0, args.bins - real)
    print(
        f"[{name}] {real} real bins with coordinates ({imported_s:.1f} s to import); "
        f"loading {synthetic} synthetic...",
        flush=True,
    )
    load_s = load(synthetic, rng)
    with db.engine().connect() as conn:
        located = conn.execute(select(func.count()).where(bins.bins.c.lat.is_not(None))).scalar()
        total = conn.execute(select(func.count()).select_from(bins.bins)).scalar()
    print(
        f"[{name}] {located} bins with coordinates ({total} rows) in {load_s:.1f} s; querying",
        flush=True,
    )

    points = query_points(args.queries, rng)
    scenarios, answers = run_scenarios(points, rng)

    # Every scenario answers as the full scan does (same ids, same order); the r1000 scans
    # are also the baseline's timings.
    scan_timings = []
    for scenario, (radius, _kind, limit) in SCENARIOS.items():
        differ = 0
        checked = zip(points[: args.full_scans], answers[scenario][: args.full_scans], strict=True)
        for (lat, lng), (chosen, ids) in checked:
            started = time.perf_counter()
            differ += ids != full_scan(lat, lng, radius, limit, chosen)
            if scenario == "r1000":
                scan_timings.append(time.perf_counter() - started)
        scenarios[scenario]["answers_differ"] = differ
    scan = percentiles(scan_timings)
    indexed = scenarios["r1000"]
    return {
        "backend": name,
        "bins_with_coordinates": located,
        "rows": total,
        "real_bins": real,
        "import_real_s": round(imported_s, 1),
        "load_synthetic_s": round(load_s, 1),
        "datasets": len(reports),
        "scenarios": scenarios,
        "full_scan_r1000": {**scan, "answers_differ": scenarios["r1000"]["answers_differ"]},
        "speedup_p50": round(scan["p50_ms"] / indexed["p50_ms"], 1),
        "speedup_p95": round(scan["p95_ms"] / indexed["p95_ms"], 1),
        "plan": plan(*points[0]),
    }


def postgres_schema(url: str):
    """A schema of our own in the given database, and the URL that uses it."""
    import sqlalchemy

    schema = f"bench_nearby_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in url else "?"
    return admin, schema, f"{url}{separator}options=-csearch_path%3D{schema}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bins", type=int, default=1_000_000, help="bins with coordinates")
    parser.add_argument("--queries", type=int, default=2000, help="per scenario")
    parser.add_argument(
        "--full-scans", type=int, default=20, help="queries per scenario checked by a full scan"
    )
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results-nearby.json"))
    args = parser.parse_args(argv)

    postgres_url = os.environ.get("DATABASE_URL", "")
    for name in ("REDIS_URL", "KAKAO_REST_API_KEY", "DATABASE_URL"):
        os.environ.pop(name, None)  # the database path alone: no cache, no Kakao places
    results = []
    with tempfile.TemporaryDirectory(prefix="growbin-bench-") as data_dir:
        os.environ["GROWBIN_DATA_DIR"] = data_dir
        # Loading a million rows and building the index take longer than a request may wait.
        os.environ["DATABASE_TIMEOUT"] = "600"
        results.append(bench_backend("sqlite", f"sqlite:///{data_dir}/bench.db", args))
        if postgres_url.startswith(("postgresql://", "postgres://")):
            admin, schema, url = postgres_schema(
                postgres_url.replace("postgres://", "postgresql://", 1)
            )
            try:
                results.append(bench_backend("postgresql", url, args))
            finally:
                import sqlalchemy

                from shared.core import db

                db.reset()
                with admin.begin() as conn:
                    conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
                admin.dispose()
        from shared.core import db

        db.reset()

    print()
    print(
        f"{'backend':<11}{'scenario':<18}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'found':>8}"
        f"{'differ':>8}"
    )
    for result in results:
        for name, s in result["scenarios"].items():
            print(
                f"{result['backend']:<11}{name:<18}{s['p50_ms']:>9.3f}{s['p95_ms']:>9.3f}"
                f"{s['p99_ms']:>9.3f}{s['mean_found']:>8}{s['answers_differ']:>8}"
            )
        scan = result["full_scan_r1000"]
        print(
            f"{result['backend']:<11}{'full scan r1000':<18}{scan['p50_ms']:>9.1f}"
            f"{scan['p95_ms']:>9.1f}{scan['p99_ms']:>9.1f}{'':>8}"
            f"  -> index {result['speedup_p50']}x faster at p50, {result['speedup_p95']}x at p95"
            f"; answers differ: {scan['answers_differ']}"
        )
        print(f"{'':<11}plan: {result['plan'].replace(chr(10), ' | ')}")
    report = {
        "benchmark": "nearby",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "bins": args.bins,
        "queries_per_scenario": args.queries,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, ensure_ascii=False, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
