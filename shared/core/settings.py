"""Settings from environment variables, read once per process.

Each variable is declared once, in `VARIABLES` below: its name, the value used when it is unset
and what it does. The README's configuration table is those rows (tests/test_settings.py fails
when they differ) and the tests reset exactly those variables. With none set, the system runs
on its embedded default: local mode, SQLite and files under the data directory, an in-process
cache and broker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple


class Variable(NamedTuple):
    name: str
    default: str | None  # the value when unset; None: unset, or computed as `shown` says
    what: str
    shown: str | None = None  # the README's default when it is computed, not a literal


VARIABLES = (
    Variable(
        "GROWBIN_MODE",
        "local",
        "`local`: embedded default, migrations on start, `POST /auth/login/dev`. "
        "`cluster`: none of that",
    ),
    Variable(
        "GROWBIN_DATA_DIR",
        None,
        "SQLite database, local object store, local signing keys",
        "`$XDG_DATA_HOME/growbin` (`~/.local/share/growbin`)",
    ),
    Variable(
        "GROWBIN_DATASETS",
        None,
        "the datasets folder `growbin import` reads (a folder, or `s3://bucket/prefix`); see Data",
        "`../shared/data` beside the project, when that folder exists",
    ),
    Variable("PORT", "8080", "the dev server's port (`growbin dev --port` too)"),
    Variable(
        "THREADS",
        None,
        "request threads per process (gunicorn's, set by the manifests); sizes the Redis and "
        "database pools so every thread can hold a connection (up to 32 threads, past which "
        "they take turns; the progress streams' 1000 threads sleep)",
        "functions-framework's: CPUs x 4",
    ),
    Variable(
        "GROWBIN_PUBLIC_URL",
        None,
        "how clients reach this deployment; local upload forms point here",
        "`http://127.0.0.1:$PORT`",
    ),
    Variable(
        "DATABASE_URL",
        None,
        "`postgresql://...` uses PostgreSQL through psycopg 3",
        "SQLite in the data dir",
    ),
    Variable(
        "DATABASE_TIMEOUT",
        "5",
        "seconds PostgreSQL gets to connect and to answer each round trip before the request "
        "is a 503 (raise it for long migrations)",
    ),
    Variable("REDIS_URL", None, "`redis://...`", "in-process cache"),
    Variable(
        "EVENTS_HEARTBEAT_SECONDS",
        "15",
        "how often a progress stream (`GET /waste/status/{job_id}/events`) sends a comment "
        "while nothing changes, so that proxies and load balancers keep it open: below their "
        "idle timeouts (the ALB's and Knative's, which `growbin render` checks against it)",
    ),
    Variable(
        "BROKER_URL",
        None,
        "`amqp://...` for the RabbitMQ-backed local broker",
        "in-process broker",
    ),
    Variable(
        "BROKER_NAME",
        "default",
        "names the RabbitMQ exchanges and queues; processes with the same name share the work",
    ),
    Variable(
        "K_SINK",
        None,
        "where functions emit events on the cluster (the Broker's address, set in the emitters' "
        "manifests)",
    ),
    Variable(
        "S3_TIMEOUT",
        "3",
        "seconds S3 gets to connect and to answer each read, per attempt (two attempts), "
        "before the call is a 503 or the event is retried",
    ),
    Variable(
        "S3_BUCKET",
        None,
        "S3 bucket for images and reports; boto3's own variables (`AWS_ENDPOINT_URL`, "
        "`AWS_DEFAULT_REGION`, credentials) apply",
        "local directory store",
    ),
    Variable(
        "JWT_PRIVATE_KEY",
        None,
        'PEM EC P-256 key; only the functions that issue tokens (`uses` "signing") get it',
        "made once in the data dir (local mode)",
    ),
    Variable(
        "JWT_PUBLIC_KEYS",
        None,
        "JWKS of the keys that verify access tokens (several while keys rotate); "
        "`growbin jwks` prints it for the current key",
        "derived from the private key",
    ),
    Variable("JWT_ISSUER", "https://growbin.kr", "checked on every token"),
    Variable("JWT_AUDIENCE", "growbin-app", "checked on every token"),
    Variable("OPENAI_API_KEY", None, "enables the vision model"),
    Variable("OPENAI_BASE_URL", None, "any OpenAI-compatible endpoint", "OpenAI"),
    Variable("OPENAI_MODEL", "gpt-4o", "the vision model"),
    Variable("OPENAI_TIMEOUT", "20", "seconds per model call"),
    Variable(
        "MODEL_TOKENS_PER_MINUTE",
        None,
        "the deployment's model budget per UTC minute, counted in the cache from every call's "
        "usage: past it, analyses that need the model are refused (503 "
        "`MODEL_BUDGET_EXHAUSTED`) or answered from their hint",
        "no limit (also `0`, the Helm chart's default)",
    ),
    Variable(
        "MODEL_TOKENS_PER_DAY",
        None,
        "the same, per UTC day",
        "no limit (also `0`)",
    ),
    Variable(
        "MODEL_PRICES",
        "gpt-4o=2.50/10.00,gpt-4o-mini=0.15/0.60",
        "USD per million tokens in/out for each model, `model=in/out` comma-separated: the "
        "`growbin_model_cost_usd_total` metric's estimate (a model not listed is not costed)",
    ),
    Variable(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        None,
        "an OTLP/HTTP collector (`http://collector:4318`): traces and metrics are pushed to its "
        "`/v1/traces` and `/v1/metrics`; see Observability",
        "nothing exported, OpenTelemetry not loaded",
    ),
    Variable(
        "OTEL_SERVICE_NAME",
        None,
        "the `service.name` of exported traces and metrics",
        "the Knative Service (`K_SERVICE`), else `growbin`",
    ),
    Variable(
        "IMAGE_RETENTION_DAYS",
        "30",
        "images of finished analyses older than this are deleted by `cleanup_images`",
    ),
    Variable(
        "KAKAO_REST_API_KEY",
        None,
        "Kakao Local geocoding and places; also Kakao sign-in's client id unless "
        "`KAKAO_CLIENT_ID` is set",
    ),
    Variable(
        "KAKAO_CLIENT_ID",
        None,
        "Kakao sign-in: the app's REST API key",
        "`KAKAO_REST_API_KEY`",
    ),
    Variable(
        "KAKAO_CLIENT_SECRET",
        None,
        "Kakao sign-in: only if client secrets are enabled in the Kakao console",
    ),
    Variable(
        "KAKAO_APP_ID",
        None,
        "the numeric Kakao app id: SDK access tokens issued to any other app are refused "
        "(one more call per SDK login)",
    ),
    Variable("NAVER_CLIENT_ID", None, "Naver sign-in"),
    Variable("NAVER_CLIENT_SECRET", None, "Naver sign-in: only for the code flow"),
    Variable(
        "GOOGLE_CLIENT_IDS",
        None,
        "Google sign-in: comma-separated OAuth client ids accepted as ID-token audiences "
        "(web, iOS, Android); the first one exchanges codes",
    ),
    Variable(
        "GOOGLE_CLIENT_SECRET",
        None,
        "the first Google client's secret, for the code flow of a web client",
    ),
)
_DEFAULTS = {variable.name: variable.default for variable in VARIABLES}


POOLED_THREADS = 32


@dataclass(frozen=True)
class Settings:
    """The typed values of VARIABLES (what each means is said there, once)."""

    mode: str
    data_dir: Path
    datasets: str | None
    database_url: str
    database_timeout: float
    redis_url: str | None
    events_heartbeat: float
    threads: int
    broker_url: str | None
    broker_name: str
    k_sink: str | None
    s3_bucket: str | None
    s3_timeout: float
    public_url: str
    jwt_issuer: str
    jwt_audience: str
    jwt_private_key: str | None
    jwt_public_keys: str | None
    openai_api_key: str | None
    openai_base_url: str | None
    openai_model: str
    openai_timeout: float
    model_tokens_per_minute: int | None
    model_tokens_per_day: int | None
    model_prices: dict[str, tuple[float, float]]
    otlp_endpoint: str | None
    otel_service_name: str | None
    kakao_rest_api_key: str | None
    image_retention_days: int
    kakao_client_id: str | None
    kakao_client_secret: str | None
    kakao_app_id: str | None
    naver_client_id: str | None
    naver_client_secret: str | None
    google_client_ids: tuple[str, ...]
    google_client_secret: str | None

    @property
    def local(self) -> bool:
        return self.mode == "local"

    @property
    def pooled_threads(self) -> int:
        """Request threads that may each hold a Redis or database connection at once. Past
        POOLED_THREADS they take turns: a progress stream's thousand threads sleep and reach
        the backends only now and then, and a burst of them would otherwise leave as many idle
        connections (PostgreSQL's default limit is 100 for the whole cluster)."""
        return min(self.threads, POOLED_THREADS)


def _env(name: str) -> str | None:
    """The variable's value, or its declared default when unset or empty; a name that is not
    declared is a KeyError, so every setting has its row in VARIABLES."""
    value = os.environ.get(name)
    return value if value not in (None, "") else _DEFAULTS[name]


def _data_dir() -> Path:
    explicit = _env("GROWBIN_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "growbin"


def _datasets() -> str | None:
    """GROWBIN_DATASETS, else `../shared/data` beside the project when that folder exists."""
    explicit = _env("GROWBIN_DATASETS")
    if explicit:
        return explicit
    beside = Path(__file__).resolve().parents[3] / "shared" / "data"
    return str(beside) if beside.is_dir() else None


def _prices(text: str) -> dict[str, tuple[float, float]]:
    """`gpt-4o=2.50/10.00,...` as {model: (USD per million tokens in, out)}; a malformed entry
    is a ValueError at start, not a silently uncosted model."""
    prices = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        model, _, pair = entry.partition("=")
        sent, _, answered = pair.partition("/")
        try:
            prices[model.strip()] = (float(sent), float(answered))
        except ValueError:
            raise ValueError(f"MODEL_PRICES: {entry!r} is not model=in/out") from None
    return prices


@cache
def settings() -> Settings:
    """The process's settings; tests that change the environment call `settings.cache_clear()`."""
    data_dir = _data_dir()
    return Settings(
        mode=_env("GROWBIN_MODE"),
        data_dir=data_dir,
        datasets=_datasets(),
        database_url=_env("DATABASE_URL") or f"sqlite:///{data_dir / 'growbin.db'}",
        database_timeout=float(_env("DATABASE_TIMEOUT")),
        redis_url=_env("REDIS_URL"),
        events_heartbeat=float(_env("EVENTS_HEARTBEAT_SECONDS")),
        threads=int(_env("THREADS") or (os.cpu_count() or 1) * 4),
        broker_url=_env("BROKER_URL"),
        broker_name=_env("BROKER_NAME"),
        k_sink=_env("K_SINK"),
        s3_bucket=_env("S3_BUCKET"),
        s3_timeout=float(_env("S3_TIMEOUT")),
        public_url=(_env("GROWBIN_PUBLIC_URL") or f"http://127.0.0.1:{_env('PORT')}").rstrip("/"),
        jwt_issuer=_env("JWT_ISSUER"),
        jwt_audience=_env("JWT_AUDIENCE"),
        jwt_private_key=_env("JWT_PRIVATE_KEY"),
        jwt_public_keys=_env("JWT_PUBLIC_KEYS"),
        openai_api_key=_env("OPENAI_API_KEY"),
        openai_base_url=_env("OPENAI_BASE_URL"),
        openai_model=_env("OPENAI_MODEL"),
        openai_timeout=float(_env("OPENAI_TIMEOUT")),
        model_tokens_per_minute=int(_env("MODEL_TOKENS_PER_MINUTE") or 0) or None,
        model_tokens_per_day=int(_env("MODEL_TOKENS_PER_DAY") or 0) or None,
        model_prices=_prices(_env("MODEL_PRICES") or ""),
        otlp_endpoint=_env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        otel_service_name=_env("OTEL_SERVICE_NAME"),
        kakao_rest_api_key=_env("KAKAO_REST_API_KEY"),
        image_retention_days=int(_env("IMAGE_RETENTION_DAYS")),
        kakao_client_id=_env("KAKAO_CLIENT_ID") or _env("KAKAO_REST_API_KEY"),
        kakao_client_secret=_env("KAKAO_CLIENT_SECRET"),
        kakao_app_id=_env("KAKAO_APP_ID"),
        naver_client_id=_env("NAVER_CLIENT_ID"),
        naver_client_secret=_env("NAVER_CLIENT_SECRET"),
        google_client_ids=tuple(
            part.strip() for part in (_env("GOOGLE_CLIENT_IDS") or "").split(",") if part.strip()
        ),
        google_client_secret=_env("GOOGLE_CLIENT_SECRET"),
    )
