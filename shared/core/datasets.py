"""The datasets folder: public data made by others, which growbin reads but never carries.

The Ministry of Environment's dictionary, the MOIS schedules, bin registers, photos and CRDs
stay where they are published to the team (`../shared/data`, see its SOURCES.md). The setting
GROWBIN_DATASETS names the folder, or an object-store prefix (`s3://bucket/prefix`) in the
cluster, which is copied under the data directory before it is read. Only the import reads
these files; functions read what it stored in the database.

The `datasets` table remembers what each import took in: the file's digest and edition, and
what it read, imported and skipped, so an unchanged file is not imported again and every
answer can name the edition it came from.
"""

from __future__ import annotations

import gc
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import JSON, Column, Integer, String, Table, select
from sqlalchemy.engine import Connection

from shared.core import db
from shared.core.settings import settings

datasets = Table(
    "datasets",
    db.metadata,
    Column("key", String(200), primary_key=True),  # the file's path inside the folder
    Column("sha256", String(64), nullable=False),
    Column("edition", String(40)),  # the publisher's date of this edition, when it says one
    Column("rows", Integer, nullable=False),
    Column("report", JSON, nullable=False),  # read, imported, skipped by reason
    Column("imported_at", db.UtcDateTime, nullable=False),
)


class Missing(Exception):
    """The datasets folder, or a file it should hold, is not there; the message says which."""


def location() -> str | None:
    return settings().datasets


def root() -> Path:
    """The folder to read, fetched from the object store first when the setting names one."""
    where = location()
    if not where:
        raise Missing(
            "no datasets folder: set GROWBIN_DATASETS, or put the team's shared/data beside the "
            "project (../shared/data)"
        )
    if where.startswith("s3://"):
        return _fetch(where)
    folder = Path(where).expanduser()
    if not folder.is_dir():
        raise Missing(f"the datasets folder {folder} does not exist (GROWBIN_DATASETS)")
    return folder


def path(relative: str) -> Path:
    """One file of the folder, or Missing naming it."""
    file = root() / relative
    if not file.is_file():
        raise Missing(f"{relative} is missing from the datasets folder {root()}")
    return file


def missing(relatives: list[str]) -> list[str]:
    """Which of these files cannot be read: what the dev server says it runs without."""
    try:
        folder = root()
    except Missing as exc:
        return [str(exc)]
    return [relative for relative in relatives if not (folder / relative).is_file()]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch(url: str) -> Path:
    """Copy `s3://bucket/prefix` under the data directory; objects already there by ETag stay."""
    from shared.core.storage import s3_client

    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    target = settings().data_dir / "datasets" / bucket / prefix
    client = s3_client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    found = False
    for page in pages:
        for item in page.get("Contents", []):
            found = True
            file = target / item["Key"][len(prefix) :].lstrip("/")
            tag = file.with_name(file.name + ".etag")
            if file.is_file() and tag.is_file() and tag.read_text() == item["ETag"]:
                continue
            file.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, item["Key"], str(file))
            tag.write_text(item["ETag"])
    if not found:
        raise Missing(f"nothing under {url} (GROWBIN_DATASETS)")
    return target


# ---- what each import took in ---------------------------------------------------------------


def unchanged(key: str, sha256: str) -> bool:
    with db.reading() as conn:
        known = conn.execute(select(datasets.c.sha256).where(datasets.c.key == key)).scalar()
    return known == sha256


def ingest(
    key: str,
    store: Callable[[Connection, bytes], dict[str, Any]],
    *,
    only_if_changed: bool = True,
) -> dict[str, Any]:
    """Import one file: `store(conn, data)` replaces the domain's rows and returns its report
    (`read`, `imported`, `skipped` by reason, `edition`). The rows and the record of the import
    commit together, so a failed import leaves the previous edition whole."""
    data = path(key).read_bytes()
    sha256 = digest(data)
    if only_if_changed and unchanged(key, sha256):
        return {"dataset": key, "unchanged": True}
    with db.transaction() as conn:
        report = store(conn, data)
        record(conn, key, sha256, report.pop("edition", None), report)
    return {"dataset": key, **report}


def record(
    conn: Connection, key: str, sha256: str, edition: str | None, report: dict[str, Any]
) -> None:
    """Note an import of `key`, replacing the last one; an undated edition keeps the date it
    was first imported, so answers name a stable edition."""
    earlier = conn.execute(
        select(datasets.c.sha256, datasets.c.edition).where(datasets.c.key == key)
    ).first()
    if edition is None:
        same = earlier is not None and earlier.sha256 == sha256
        edition = earlier.edition if same else db.now().date().isoformat()
    row = {
        "sha256": sha256,
        "edition": edition,
        "rows": int(report.get("imported", 0)),
        "report": report,
        "imported_at": db.now(),
    }
    if earlier is not None:
        conn.execute(datasets.update().where(datasets.c.key == key).values(**row))
    else:
        conn.execute(datasets.insert().values(key=key, **row))


def edition(key: str) -> dict[str, Any] | None:
    """`{sha256, edition, imported_at}` of the stored import of `key`, or None."""
    with db.reading() as conn:
        row = conn.execute(
            select(datasets.c.sha256, datasets.c.edition, datasets.c.imported_at).where(
                datasets.c.key == key
            )
        ).first()
    return dict(row._mapping) if row else None


# ---- what functions read, cached in-process per edition -------------------------------------

T = TypeVar("T")
RECHECK_SECONDS = 60.0  # how soon a process notices a new import
_built: dict[tuple[str, str, str | None], Any] = {}  # (key, builder, sha256) -> what it built
_checked: dict[str, tuple[float, str | None]] = {}  # key -> (when, sha256 seen)
# Held while building: jobs reaching a cold instance together would each build the search index
# (about 0.7 s of CPU apiece here, all on one interpreter). The first builds, the others wait
# for it. Reentrant, as a builder reads other datasets through `current` (the index reads the
# guides); what is built already is read without it.
_building = threading.RLock()
_NOT_BUILT = object()


def current(key: str, build: Callable[[], T]) -> T:
    """What `build()` makes of the stored import of `key`, built once per edition: a process
    looks at the `datasets` row at most once a minute and rebuilds when a new import landed.
    Builders are told apart by their qualified name, so give each its own function. Built by
    one thread at a time: callers that find it being built wait for it, not build it again."""
    now = time.monotonic()
    seen = _checked.get(key)
    if seen is None or now - seen[0] >= RECHECK_SECONDS:
        stored = edition(key)
        seen = (now, stored["sha256"] if stored else None)
        _checked[key] = seen
    builder = build.__qualname__
    built_key = (key, builder, seen[1])
    value = _built.get(built_key, _NOT_BUILT)
    if value is not _NOT_BUILT:
        return value
    with _building:
        value = _built.get(built_key, _NOT_BUILT)  # built while this thread waited
        if value is _NOT_BUILT:
            value = build()
            for old in [k for k in _built if k[:2] == (key, builder)]:
                del _built[old]  # one edition per dataset in memory
            _built[built_key] = value
            _freeze()
    return value


def _freeze() -> None:
    """Keep what the process holds now, the build above all, out of the cyclic collector's
    scans: the search index is most of the objects a process tracks, and each full collection
    walked them all again (220 ms here, a stall of every thread that fell on whichever job's
    allocation triggered it). A collection first frees the build's own cyclic garbage, which
    would otherwise be frozen with it; what is frozen is still freed by reference counting
    when dropped (an old edition's index holds no cycles)."""
    gc.collect()
    gc.freeze()


def forget() -> None:
    """Look at the database again on next use (tests, and after an import in this process)."""
    _checked.clear()
