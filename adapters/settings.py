"""sdh's configuration: the one place that reads the process environment."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SDH_", extra="ignore")

    data_dir: Path = Field(default=Path("./.sdh"), description="embedded SQLite files, admin token")
    database_url: str | None = Field(default=None, description="postgresql://… for PostgreSQL")
    database_schema: str = Field(
        default="public", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="PostgreSQL schema"
    )
    nats_url: str | None = Field(default=None, description="nats://… publishes every event")
    # The JetStream stream SDH_EVENTS, when sdh creates it: how long it keeps events, and
    # for how long a re-published event id is dropped as a duplicate (covers the relay's
    # downtime between a publish and its checkpoint; the server default is 2 minutes).
    nats_stream_max_age_days: float = Field(default=30.0, gt=0)
    nats_duplicate_window_seconds: float = Field(default=3600.0, gt=0)
    # CloudEvents `source` of published events (a URI-reference naming this sdh).
    event_source: str = Field(default="urn:sdh", min_length=1)
    admin_token: str | None = None
    # Seconds a write request waits for the read models to include its change.
    consistency_timeout: float = 5.0
    poll_interval: float = 0.2
    # PostgreSQL: how long a write waits for the event table lock before answering 503.
    lock_timeout: int = 5
    pool_size: int = 5
    max_body_bytes: int = 1_048_576
    # Rollout: workers running deployments at once, and how long a webhook deployment
    # may wait for its reported result before it counts as failed.
    deploy_concurrency: int = Field(default=16, ge=1, le=1024)
    webhook_timeout: float = Field(default=600.0, gt=0)
    simulate_seconds: float = Field(default=1.0, ge=0, le=3600)
    # The kubernetes adapter's kubeconfig; unset: $KUBECONFIG or ~/.kube/config, else the
    # in-cluster service account. An environment's `cluster` names the context in it.
    kubeconfig: str | None = None
    # Where receivers of webhook deployments reach this sdh (for result_url).
    public_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern=r"^(json|text)$")

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ValueError("SDH_DATABASE_URL must be a postgresql:// URL")
        return value or None

    @property
    def uses_postgres(self) -> bool:
        return self.database_url is not None

    def event_store_env(self) -> dict[str, str]:
        """The eventsourcing library's settings, derived from ours and nothing else."""
        if self.database_url is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.data_dir / "events.sqlite"),
                "SQLITE_LOCK_TIMEOUT": "10",
            }
        url = urlsplit(self.database_url)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_SCHEMA": self.database_schema,
            "POSTGRES_LOCK_TIMEOUT": str(self.lock_timeout),
            "POSTGRES_POOL_SIZE": str(self.pool_size),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_PRE_PING": "y",
            # Followers were seen to skip events under concurrent writers with it on.
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        }
        return env
