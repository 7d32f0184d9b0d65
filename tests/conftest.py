"""Test fixtures: the whole system in-process on its embedded default, or on the real services.

Every test gets its own data directory and fresh process-wide clients. `system` runs the local
runtime (server, broker with shortened backoff, no cron thread); `client` is a Flask test
client on the path map; `login` signs a user in through `POST /login/dev`.

Service-backed tests take the `services` fixture: it uses DATABASE_URL, REDIS_URL and
BROKER_URL as the session started with them (`.ci/run` sets them), gives each test its own
PostgreSQL schema, and S3 through a `moto_server` on loopback. `rabbitmq` gives a test its own
broker name on the RabbitMQ at BROKER_URL and deletes what its brokers declared. Without the
URLs those tests skip locally; with CI=true a missing or unreachable service fails them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from shared.core.settings import VARIABLES

# Property tests draw the same examples on every run and machine (deterministic, as every test
# here); no per-example deadline on a shared 2-core machine.
hypothesis_settings.register_profile("growbin", derandomize=True, deadline=None)
hypothesis_settings.load_profile("growbin")

ROOT = Path(__file__).resolve().parent.parent


def _datasets() -> Path:
    """The team's datasets folder (GROWBIN_DATASETS, else ../shared/data): the public data,
    photos and CRDs the tests read. Without it the run stops with the reason: never a skip."""
    from shared.core import datasets

    try:
        return datasets.root()
    except datasets.Missing as exc:
        pytest.exit(f"the tests need the datasets folder: {exc}", returncode=4)


DATASETS = _datasets()
IMAGES = DATASETS / "images" / "trashnet_sample"
SERVICE_URLS = {k: os.environ.get(k) for k in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")}
IN_CI = os.environ.get("CI") == "true"
# What a test resets to reach the embedded default: every declared setting but the datasets
# folder (the session's, found above), and boto3's endpoint, which S3_BUCKET's tests set.
CONFIG_VARS = (
    *(v.name for v in VARIABLES if v.name != "GROWBIN_DATASETS"),
    "AWS_ENDPOINT_URL",
)


def reset_clients() -> None:
    """Forget every process-wide client and cached setting, as a new process would."""
    from shared.auth import tokens
    from shared.core import cache, db, events, settings, storage, streams
    from shared.waste import ai

    settings.settings.cache_clear()
    db.reset()
    events.cluster_sink.cache_clear()
    cache.client.cache_clear()
    streams.reset()  # fanouts subscribe again, on the new cache client
    storage.s3_client.cache_clear()
    storage.backend.cache_clear()
    tokens.signing_key.cache_clear()
    tokens.verification_keys.cache_clear()
    tokens._verified.clear()
    ai._client.cache_clear()
    for extra in _EXTRA_RESETS:
        extra()


_EXTRA_RESETS: list = []  # modules with their own process-wide state register here


def _forget_google_keys() -> None:
    from shared.auth import oauth

    oauth.forget_keys()


_EXTRA_RESETS.append(_forget_google_keys)


@pytest.fixture
def env(monkeypatch, tmp_path):
    """The embedded default: nothing configured but a fresh data directory."""
    for name in CONFIG_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GROWBIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GROWBIN_PUBLIC_URL", "http://localhost")
    reset_clients()
    yield monkeypatch
    reset_clients()


@pytest.fixture(scope="session")
def _public_bins_import(tmp_path_factory):
    """Every public bin file imported once per session into an SQLite file: the national
    files take seconds, too many to repeat per test. Tests get a copy (`public_bins`)."""
    from shared.locations import bin_import

    folder = tmp_path_factory.mktemp("public-bins")
    with _migrated_at(folder):
        started = time.perf_counter()
        reports = bin_import.import_public(only_if_changed=False)
        seconds = time.perf_counter() - started
    return folder / "growbin.db", {r.dataset: r for r in reports}, seconds


@contextmanager
def _migrated_at(folder: Path) -> Iterator[None]:
    """The embedded default in `folder`, migrated, for a session fixture to fill; its
    settings and clients are undone after."""
    from shared.core import db

    with pytest.MonkeyPatch.context() as patch:
        for name in CONFIG_VARS:
            patch.delenv(name, raising=False)
        patch.setenv("GROWBIN_DATA_DIR", str(folder))
        reset_clients()
        db.migrate()
        yield
        reset_clients()


@pytest.fixture
def public_bins(env, _public_bins_import, tmp_path):
    """This test's database holds every public bin file, as `growbin import` leaves it; the
    value is the import's reports by dataset."""
    database, reports, _seconds = _public_bins_import
    (tmp_path / "data").mkdir(exist_ok=True)
    shutil.copyfile(database, tmp_path / "data" / "growbin.db")
    reset_clients()
    return reports


def _require(name: str) -> str:
    url = SERVICE_URLS.get(name)
    if not url:
        if IN_CI:
            pytest.fail(f"{name} is not set: CI must run the service-backed tests")
        pytest.skip(f"{name} not set")
    return url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto_server: the S3 HTTP API on loopback, for the whole session."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("moto_server did not start")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def services(env, s3_endpoint):
    """The real PostgreSQL, Redis and S3 (moto), each test in its own schema and bucket."""
    import sqlalchemy

    database = _require("DATABASE_URL")
    redis_url = _require("REDIS_URL")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(database.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    except sqlalchemy.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at DATABASE_URL is unreachable: {exc}")
    separator = "&" if "?" in database else "?"
    env.setenv("DATABASE_URL", f"{database}{separator}options=-csearch_path%3D{schema}")
    env.setenv("REDIS_URL", redis_url)
    bucket = f"growbin-{uuid.uuid4().hex[:10]}"
    env.setenv("S3_BUCKET", bucket)
    env.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    env.setenv("AWS_ACCESS_KEY_ID", "test")
    env.setenv("AWS_SECRET_ACCESS_KEY", "test")
    env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    reset_clients()
    from shared.core import cache, storage

    try:
        cache.client().ping()
    except Exception as exc:
        pytest.fail(f"Redis at REDIS_URL is unreachable: {exc}")
    storage.s3_client().create_bucket(Bucket=bucket)
    yield env
    reset_clients()
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


class Rabbit:
    """A test's own broker name on RabbitMQ; every broker made here is closed and its exchanges
    and queues deleted after the test."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.brokers: list = []

    def broker(self, functions, **options):
        from eventing.rabbitmq import RabbitBroker

        return self.track(RabbitBroker(list(functions), self.url, self.name, **options))

    def track(self, broker):
        self.brokers.append(broker)
        return broker

    def channel(self):
        import pika

        return pika.BlockingConnection(pika.URLParameters(self.url)).channel()

    def delete(self) -> None:
        for broker in self.brokers:
            broker.close()
        channel = self.channel()
        for layout in {id(b.layout): b.layout for b in self.brokers}.values():
            for queue in [*layout.queues.values(), layout.dlq]:
                channel.queue_delete(queue)
            for exchange in (layout.exchange, layout.dlx):
                channel.exchange_delete(exchange)
        channel.connection.close()


@pytest.fixture
def rabbitmq(env):
    """RabbitMQ at BROKER_URL under a broker name of this test's own (BROKER_NAME is set)."""
    import pika

    url = _require("BROKER_URL")
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except pika.exceptions.AMQPError as exc:
        pytest.fail(f"RabbitMQ at BROKER_URL is unreachable: {exc!r}")
    rabbit = Rabbit(url, f"test-{uuid.uuid4().hex[:12]}")
    env.setenv("BROKER_URL", url)
    env.setenv("BROKER_NAME", rabbit.name)
    reset_clients()
    yield rabbit
    rabbit.delete()


@pytest.fixture(params=["embedded", "services"])
def backend(request):
    """Run a test on both: the embedded default, and the real services."""
    if request.param == "services":
        request.getfixturevalue("services")
    else:
        request.getfixturevalue("env")
    return request.param


@pytest.fixture(scope="session")
def _embedded_database(tmp_path_factory) -> Path:
    """The embedded database as the local runtime's first start leaves it (migrated, the
    dictionary and schedules imported), made once per session: migrating and importing anew
    took 0.6 s a test. Each embedded test starts from a copy (`_start_system`)."""
    from knative import local

    folder = tmp_path_factory.mktemp("embedded")
    with _migrated_at(folder):
        local.import_datasets(with_bins=False)
    return folder / "growbin.db"


def _start_system(template: Path):
    from knative import local
    from shared.core.settings import settings

    database = settings().data_dir / "growbin.db"
    if not os.environ.get("DATABASE_URL") and not database.exists():
        # The start still migrates and imports: both find the copy current and do nothing.
        database.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, database)
    # Tests import the bin data they need themselves: a fresh data dir would import it all.
    system = local.start(time_scale=0.01, with_cron=False, with_bins=False)
    return system


@pytest.fixture
def system(env, _embedded_database):
    system = _start_system(_embedded_database)
    yield system
    system.broker.wait_idle(10)
    system.stop()


@pytest.fixture
def system_on(backend, _embedded_database):
    """The local runtime on whichever backend `backend` selected."""
    system = _start_system(_embedded_database)
    yield system
    system.broker.wait_idle(10)
    system.stop()


@pytest.fixture
def client(system):
    return system.app.test_client()


def login(client, name: str = "alice") -> dict[str, str]:
    """Headers of a freshly signed-in user."""
    response = client.post("/api/v1/auth/login/dev", json={"user": name})
    assert response.status_code == 200, response.get_data(as_text=True)
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


def event_function(name, handler, delivery=None, **filter_):
    """An event Function (a Trigger) on `handler`, with a short retry, filtering on `filter_`."""
    from shared.core.registry import Delivery, Function, Scaling

    return Function(
        name=name,
        module="functions.test",
        kind="event",
        summary=name,
        handler=handler,
        filter=filter_,
        delivery=delivery or Delivery(retry=2, backoff_delay="PT0.1S"),
        scaling=Scaling(threads=4),
    )


def error_code(response) -> str:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) <= {"code", "message", "details"}, body
    return body["error"]["code"]
