"""Settings from environment variables, read once per process.

Every variable is listed in the README's configuration table. With none set, the system runs
on its embedded default: local mode, SQLite and files under the data directory, an in-process
cache and broker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    mode: str  # "local" (embedded default, dev login) or "cluster"
    data_dir: Path
    datasets: str | None  # the third-party data: a folder, or s3://bucket/prefix in the cluster
    database_url: str
    database_timeout: float  # seconds to wait for PostgreSQL (connect, each answer) before 503
    redis_url: str | None
    broker_url: str | None  # amqp:// for the RabbitMQ-backed local broker
    broker_name: str  # names its exchanges and queues: processes sharing one name share the work
    k_sink: str | None  # injected by the SinkBinding on the cluster
    s3_bucket: str | None
    s3_timeout: float  # seconds S3 gets to connect and to answer each read, per attempt
    public_url: str  # how clients reach this deployment (local upload forms point here)
    jwt_issuer: str
    jwt_audience: str
    jwt_private_key: str | None  # PEM; only the auth functions need it
    jwt_public_keys: str | None  # JWKS JSON; every protected function needs it
    openai_api_key: str | None
    openai_base_url: str | None
    openai_model: str
    openai_timeout: float
    kakao_rest_api_key: str | None
    image_retention_days: int
    # Sign-in providers: a provider without its client id answers PROVIDER_NOT_CONFIGURED.
    kakao_client_id: str | None  # the app's REST API key
    kakao_client_secret: str | None  # only when client secrets are enabled in the Kakao console
    kakao_app_id: str | None  # numeric app id: SDK tokens issued to other apps are refused
    naver_client_id: str | None
    naver_client_secret: str | None
    google_client_ids: tuple[str, ...]  # audiences we accept; the first exchanges codes
    google_client_secret: str | None

    @property
    def local(self) -> bool:
        return self.mode == "local"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _data_dir() -> Path:
    explicit = _env("GROWBIN_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = _env("XDG_DATA_HOME", str(Path.home() / ".local" / "share"))
    return Path(xdg) / "growbin"


def _datasets() -> str | None:
    """GROWBIN_DATASETS, else `../shared/data` beside the project when that folder exists."""
    explicit = _env("GROWBIN_DATASETS")
    if explicit:
        return explicit
    beside = Path(__file__).resolve().parents[3] / "shared" / "data"
    return str(beside) if beside.is_dir() else None


@cache
def settings() -> Settings:
    """The process's settings; tests that change the environment call `settings.cache_clear()`."""
    data_dir = _data_dir()
    port = _env("PORT", "8080")
    return Settings(
        mode=_env("GROWBIN_MODE", "local"),
        data_dir=data_dir,
        datasets=_datasets(),
        database_url=_env("DATABASE_URL", f"sqlite:///{data_dir / 'growbin.db'}"),
        database_timeout=float(_env("DATABASE_TIMEOUT", "5")),
        redis_url=_env("REDIS_URL"),
        broker_url=_env("BROKER_URL"),
        broker_name=_env("BROKER_NAME", "default"),
        k_sink=_env("K_SINK"),
        s3_bucket=_env("S3_BUCKET"),
        s3_timeout=float(_env("S3_TIMEOUT", "3")),
        public_url=_env("GROWBIN_PUBLIC_URL", f"http://127.0.0.1:{port}").rstrip("/"),
        jwt_issuer=_env("JWT_ISSUER", "https://growbin.kr"),
        jwt_audience=_env("JWT_AUDIENCE", "growbin-app"),
        jwt_private_key=_env("JWT_PRIVATE_KEY"),
        jwt_public_keys=_env("JWT_PUBLIC_KEYS"),
        openai_api_key=_env("OPENAI_API_KEY"),
        openai_base_url=_env("OPENAI_BASE_URL"),
        openai_model=_env("OPENAI_MODEL", "gpt-4o"),
        openai_timeout=float(_env("OPENAI_TIMEOUT", "20")),
        kakao_rest_api_key=_env("KAKAO_REST_API_KEY"),
        image_retention_days=int(_env("IMAGE_RETENTION_DAYS", "30")),
        kakao_client_id=_env("KAKAO_CLIENT_ID", _env("KAKAO_REST_API_KEY")),
        kakao_client_secret=_env("KAKAO_CLIENT_SECRET"),
        kakao_app_id=_env("KAKAO_APP_ID"),
        naver_client_id=_env("NAVER_CLIENT_ID"),
        naver_client_secret=_env("NAVER_CLIENT_SECRET"),
        google_client_ids=tuple(
            part.strip() for part in (_env("GOOGLE_CLIENT_IDS") or "").split(",") if part.strip()
        ),
        google_client_secret=_env("GOOGLE_CLIENT_SECRET"),
    )
