"""What functions read of the datasets, built once per edition and process (`datasets.current`)."""

from __future__ import annotations

import gc
import threading
import time
from functools import wraps

from shared.core import datasets
from shared.waste.search import index

THREADS = 16


def _together(call, threads: int = THREADS) -> list:
    """`call()` on that many threads released at once; what each got, in any order."""
    ready = threading.Barrier(threads)
    got: list = []

    def run() -> None:
        ready.wait()
        got.append(call())

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert not any(worker.is_alive() for worker in workers), "a caller never got its answer"
    return got


def _fresh(monkeypatch, sha256: str = "a" * 64) -> None:
    """A process that has built nothing yet, reading an import of edition `sha256`."""
    monkeypatch.setattr(datasets, "_built", {})
    monkeypatch.setattr(datasets, "_checked", {})
    monkeypatch.setattr(datasets, "edition", lambda key: {"sha256": sha256})


def test_concurrent_first_calls_build_once_and_share_it(monkeypatch):
    _fresh(monkeypatch)
    builds = []

    def slow() -> object:
        builds.append(threading.get_ident())
        time.sleep(0.2)  # long enough for every other caller to arrive while it builds
        return object()

    got = _together(lambda: datasets.current("guides.csv", slow))
    assert len(builds) == 1
    assert len(got) == THREADS and all(value is got[0] for value in got)


def test_a_builder_may_read_another_dataset_while_others_wait(monkeypatch):
    """The search index reads the guides inside its own build: the lock is reentrant, and the
    guides are built once too."""
    _fresh(monkeypatch)
    builds: list[str] = []

    def guides() -> list[str]:
        builds.append("guides")
        time.sleep(0.05)
        return ["페트병"]

    def index() -> tuple[str, ...]:
        builds.append("index")
        return tuple(datasets.current("guides.csv", guides))

    got = _together(lambda: datasets.current("guides.csv", index))
    assert sorted(builds) == ["guides", "index"]
    assert all(value == ("페트병",) for value in got)


def test_a_new_edition_is_built_once_and_replaces_the_old(monkeypatch):
    _fresh(monkeypatch)
    builds = []

    def build() -> int:
        builds.append(1)
        time.sleep(0.05)
        return len(builds)

    assert datasets.current("guides.csv", build) == 1
    newer = {"sha256": "b" * 64}
    monkeypatch.setattr(datasets, "edition", lambda key: newer)
    monkeypatch.setattr(datasets, "_checked", {})  # as a minute later
    assert set(_together(lambda: datasets.current("guides.csv", build))) == {2}
    assert list(datasets._built) == [("guides.csv", build.__qualname__, "b" * 64)]


def test_the_search_index_is_built_once_by_concurrent_first_searches(system, monkeypatch):
    """Many jobs reaching a cold instance at once: one builds the index, the others wait."""
    monkeypatch.setattr(datasets, "_built", {})
    monkeypatch.setattr(datasets, "_checked", {})
    built = []
    real = index._build

    @wraps(real)  # the same qualified name: `current` tells builders apart by it
    def counted():
        built.append(1)
        return real()

    monkeypatch.setattr(index, "_build", counted)
    got = _together(index.current, threads=8)
    assert len(built) == 1 and all(each is got[0] for each in got)


def test_what_is_built_is_kept_out_of_the_collectors_scans(monkeypatch):
    """A full collection walked the whole search index each time (220 ms here): a build is
    frozen, so the collector's generations hold none of it."""
    _fresh(monkeypatch)
    built = datasets.current("guides.csv", lambda: [[n] for n in range(10_000)])
    try:
        tracked = {id(o) for o in gc.get_objects()}
        assert id(built) not in tracked and id(built[0]) not in tracked
        assert gc.get_freeze_count() >= len(built)
    finally:
        gc.unfreeze()  # the rest of the session as it was
