"""Operator reports: one HTML page per day with charts of the last 7 and 30 days.

Charts are inline SVG drawn here (no plotting library to ship or import): the category mix,
daily volume, failure reasons and stage latency. Every bar and point carries its figure in
`data-value`, so the page can be read by a person and checked by a test. Reports are stored in
object storage under `reports/` and listed for operators only.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from html import escape
from typing import Any

from shared.core import db, storage
from shared.ops import analytics
from shared.waste import corrections

PREFIX = "reports/"
BAR_WIDTH = 360


def _figures(last: date, count: int) -> list[dict[str, Any]]:
    """Stored days, computing (without storing) any day analytics has not written yet."""
    first = last - timedelta(days=count - 1)
    stored = {f["day"]: f for f in analytics.days(first, last)}
    return [
        stored.get(d.isoformat()) or analytics.compute(d)
        for d in (first + timedelta(days=n) for n in range(count))
    ]


def _bars(title: str, items: list[tuple[str, float]], unit: str = "") -> str:
    if not items:
        return f"<h3>{escape(title)}</h3><p class='empty'>no data</p>"
    top = max(value for _, value in items) or 1
    rows = []
    for n, (label, value) in enumerate(items):
        width = round(BAR_WIDTH * value / top, 1)
        y = n * 22
        rows.append(
            f"<g class='bar' data-label='{escape(label)}' data-value='{value}'>"
            f"<text x='0' y='{y + 14}'>{escape(label)}</text>"
            f"<rect x='160' y='{y + 3}' width='{width}' height='16' fill='#3b8f5a'/>"
            f"<text x='{166 + width}' y='{y + 15}'>{value}{unit}</text></g>"
        )
    height = len(items) * 22 + 6
    return (
        f"<h3>{escape(title)}</h3><svg width='{BAR_WIDTH + 240}' height='{height}' "
        f"role='img' aria-label='{escape(title)}'>{''.join(rows)}</svg>"
    )


def _line(title: str, series: dict[str, list[tuple[str, float | None]]]) -> str:
    points = [v for values in series.values() for _, v in values if v is not None]
    if not points:
        return f"<h3>{escape(title)}</h3><p class='empty'>no data</p>"
    top, width, height = max(points) or 1, 560, 160
    colours = ["#3b8f5a", "#d9822b"]
    paths = []
    for colour, (name, values) in zip(colours, series.items(), strict=False):
        step = width / max(1, len(values) - 1)
        coords = [
            (round(i * step, 1), round(height - height * v / top, 1), day, v)
            for i, (day, v) in enumerate(values)
            if v is not None
        ]
        line = " ".join(f"{x},{y}" for x, y, _, _ in coords)
        dots = "".join(
            f"<circle class='point' data-series='{escape(name)}' data-label='{day}' "
            f"data-value='{v}' cx='{x}' cy='{y}' r='3' fill='{colour}'/>"
            for x, y, day, v in coords
        )
        paths.append(f"<polyline points='{line}' fill='none' stroke='{colour}'/>{dots}")
    legend = " / ".join(escape(name) for name in series)
    return (
        f"<h3>{escape(title)} <small>({legend}, seconds)</small></h3>"
        f"<svg width='{width + 10}' height='{height + 10}' role='img'>{''.join(paths)}</svg>"
    )


def _section(days: list[dict[str, Any]]) -> str:
    categories: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for day in days:
        categories.update(day["by_category"])
        reasons.update(day["failure_reasons"])
    total = sum(d["total"] for d in days)
    completed = sum(d["completed"] for d in days)
    failed = sum(d["failed"] for d in days)
    latency = [(d["day"], d["stage_latency"]["queued->done"]) for d in days]
    return "".join(
        [
            f"<p class='totals' data-total='{total}' data-completed='{completed}' "
            f"data-failed='{failed}'>{total} analyses: {completed} completed, {failed} failed</p>",
            _bars("Category mix", categories.most_common()),
            _bars("Daily volume", [(d["day"], d["total"]) for d in days]),
            _bars("Failure reasons", reasons.most_common()),
            _line(
                "Upload to result",
                {
                    "p50": [(day, v["p50_s"]) for day, v in latency],
                    "p95": [(day, v["p95_s"]) for day, v in latency],
                },
            ),
        ]
    )


def _corrections(last: date) -> str:
    """What users chose over growbin's answer in the last 30 days: each a candidate alias."""
    since = datetime.combine(last - timedelta(days=29), time.min, tzinfo=analytics.KST)
    pairs = corrections.frequent(since=since)
    if not pairs:
        return "<h2>Corrections</h2><p class='empty'>no corrections</p>"
    rows = "".join(
        f"<tr class='correction' data-count='{p['count']}'><td>{escape(p['detected_name'])}</td>"
        f"<td>{escape(p['proposed']['name'])} ({p['proposed']['guide_id']})</td>"
        f"<td>{escape(p['chosen']['name'])} ({p['chosen']['guide_id']})</td>"
        f"<td>{p['count']}</td></tr>"
        for p in pairs
    )
    return (
        "<h2>Corrections, last 30 days</h2><table><tr><th>detected</th><th>proposed</th>"
        f"<th>chosen</th><th>times</th></tr>{rows}</table>"
    )


def render(last: date) -> str:
    week, month = _figures(last, 7), _figures(last, 30)
    return (
        "<!doctype html><html lang='ko'><head><meta charset='utf-8'>"
        f"<title>growbin report {last.isoformat()}</title><style>"
        "body{font-family:sans-serif;max-width:760px;margin:2em auto}"
        "svg text{font-size:12px}h3{margin-bottom:.3em}</style></head><body>"
        f"<h1>growbin report to {last.isoformat()}</h1>"
        f"<section id='last-7-days'><h2>Last 7 days</h2>{_section(week)}</section>"
        f"<section id='last-30-days'><h2>Last 30 days</h2>{_section(month)}</section>"
        f"<section id='corrections'>{_corrections(last)}</section>"
        f"<footer>generated {db.now().isoformat()}</footer></body></html>"
    )


def key_for(day: date) -> str:
    return f"{PREFIX}{day.isoformat()}.html"


def generate(last: date) -> str:
    """Render and store the report ending on `last`; the same day overwrites its report."""
    key = key_for(last)
    storage.put(key, render(last).encode(), "text/html; charset=utf-8")
    return key


def listing() -> list[dict[str, str]]:
    keys = sorted(storage.list_keys(PREFIX), reverse=True)
    return [
        {"day": key[len(PREFIX) : -len(".html")], "key": key, "url": storage.presign_download(key)}
        for key in keys
    ]
