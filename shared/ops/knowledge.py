"""One import of the datasets folder: every domain's public knowledge, in one run.

`growbin import`, the dev server at start and the `datasets.import` task (a PingSource, or an
operator's event) all run this. Each file is imported by the domain that owns it; a file
whose digest has not changed since its last import is left alone, so running it again
changes nothing. The reports say per file what was read, imported and skipped, and why.
"""

from __future__ import annotations

from typing import Any

from shared.core import datasets
from shared.core.errors import log_event
from shared.locations import bin_import
from shared.users import schedules
from shared.waste import dictionary, fees

# What answers need: without these the service runs but cannot say how anything goes out.
ESSENTIAL = (*dictionary.FILES, schedules.TABLE)


def run(only_if_changed: bool = True, with_bins: bool = True) -> list[dict[str, Any]]:
    """Import everything the datasets folder holds; raises datasets.Missing naming what is not
    there."""
    reports = dictionary.import_all(only_if_changed)
    reports.append(schedules.import_table(only_if_changed))
    if with_bins:  # the per-place data (bins, fees, bag prices): tests import what they need
        reports += fees.import_all(only_if_changed)
        reports += [r.as_dict() for r in bin_import.import_public(only_if_changed)]
    for report in reports:
        if not report.get("unchanged"):
            log_event("info", "dataset_imported", **counts(report))
    return reports


def missing() -> list[str]:
    """What an answer would lack: the essential files the datasets folder does not hold."""
    return datasets.missing(list(ESSENTIAL))


def counts(report: dict[str, Any]) -> dict[str, Any]:
    """What a log line or a terminal says of one import: read, imported, skipped by reason."""
    return {
        "dataset": report["dataset"],
        "read": report.get("rows_read", report.get("read", 0)),
        "imported": report.get("imported", 0),
        "skipped": report.get("skipped", {}),
    }


def summary(report: dict[str, Any]) -> str:
    """One report as a few lines for a terminal."""
    if "kind" in report:  # a bin file: its own, fuller summary
        return bin_import.summary(bin_import.Report(**report))
    if report.get("unchanged"):
        return f"{report['dataset']}: unchanged since the last import"
    tally = counts(report)
    skipped = ", ".join(f"{n} x {why}" for why, n in tally["skipped"].items()) or "none"
    return (
        f"{tally['dataset']}: read {tally['read']}, imported {tally['imported']}, skipped {skipped}"
    )
