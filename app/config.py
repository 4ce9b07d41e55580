"""Pulse settings, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping


class ConfigError(ValueError):
    """A setting has a value Pulse cannot run with."""


# SQLAlchemy's default pool: 5 connections + 10 overflow, shared with the task's session.
MAX_FLUSH_WRITERS = 8


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def normalize_database_url(url: str) -> str:
    """PaaS providers hand out postgres://, which SQLAlchemy 2 no longer accepts; and
    SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, while we ship psycopg2."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme):]
    return url


class Config:
    """Settings from environment variables (SPEC §3)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.PULSE_ENV = env.get("PULSE_ENV", "development")
        if self.PULSE_ENV not in ("development", "production"):
            raise ConfigError(
                f"PULSE_ENV must be production or development, got {self.PULSE_ENV!r}")
        secret = env.get("SECRET_KEY", "")
        if self.PULSE_ENV == "production" and len(secret) < 32:
            raise ConfigError("PULSE_ENV=production needs SECRET_KEY of at least 32 characters")
        # None: development's key, generated once and kept in instance/secret_key (0600) so
        # sessions and encrypted channel URLs survive a restart (resolved in create_app).
        self.SECRET_KEY = secret or None

        database_url = env.get("DATABASE_URL", "")
        # None means "sqlite file in the instance folder", resolved in create_app.
        self.SQLALCHEMY_DATABASE_URI = (
            normalize_database_url(database_url) if database_url else None)
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
        if (self.SQLALCHEMY_DATABASE_URI or "").startswith("postgresql"):
            # PostgreSQL's JIT compiles a query its planner thinks costly; a chart's read
            # (thousands of rows by index, misestimated) paid 40-70 ms compiling for a
            # 20 ms scan. Pulse runs no analytical query that JIT would pay back.
            self.SQLALCHEMY_ENGINE_OPTIONS["connect_args"] = {"options": "-c jit=off"}
        self.REDIS_URL = env.get("REDIS_URL") or None
        self.CELERY_BROKER_URL = env.get("CELERY_BROKER_URL") or self.REDIS_URL
        self.PULSE_REDIS_PREFIX = env.get("PULSE_REDIS_PREFIX", "pulse")
        self.PULSE_RAW_RETENTION_DAYS = _int(env, "PULSE_RAW_RETENTION_DAYS", 7, 1)
        self.PULSE_AGG_RETENTION_DAYS = _int(env, "PULSE_AGG_RETENTION_DAYS", 90, 1)
        self.PULSE_HOURLY_RETENTION_DAYS = _int(env, "PULSE_HOURLY_RETENTION_DAYS", 730, 1)
        self.PULSE_NODE_RATE_LIMIT = env.get("PULSE_NODE_RATE_LIMIT", "120/minute")
        self.PULSE_MAX_BODY_BYTES = _int(env, "PULSE_MAX_BODY_BYTES", 8 * 1024 * 1024, 1024)
        self.MAX_CONTENT_LENGTH = self.PULSE_MAX_BODY_BYTES
        self.PULSE_DRIFT_STALE_SECONDS = _int(env, "PULSE_DRIFT_STALE_SECONDS", 90, 1)
        self.PULSE_DRIFT_MAX_INSTANCES = _int(env, "PULSE_DRIFT_MAX_INSTANCES", 1000, 1)
        self.PULSE_DRIFT_FORGET_HOURS = _int(env, "PULSE_DRIFT_FORGET_HOURS", 24, 1)
        # Failed logins per account and per client address (SPEC §3; "0" = off).
        self.PULSE_LOGIN_RATE_LIMIT = env.get("PULSE_LOGIN_RATE_LIMIT", "10/minute").strip()
        self.PULSE_TRUSTED_PROXIES = _int(env, "PULSE_TRUSTED_PROXIES", 0, 0)
        self.PULSE_ACCESS_TOKEN_SECONDS = _int(env, "PULSE_ACCESS_TOKEN_SECONDS", 3600, 60)
        # How long a pending entry read by a consumer may go unacknowledged before another
        # flush run takes it over (that consumer is presumed dead).
        self.PULSE_FLUSH_CLAIM_IDLE_SECONDS = _int(env, "PULSE_FLUSH_CLAIM_IDLE_SECONDS", 60, 1)
        # Connections a flush run writes 100-row transactions through side by side.
        self.PULSE_FLUSH_WRITERS = _int(env, "PULSE_FLUSH_WRITERS", 2, 1)
        if self.PULSE_FLUSH_WRITERS > MAX_FLUSH_WRITERS:  # each holds a pooled connection
            raise ConfigError(f"PULSE_FLUSH_WRITERS must be <= {MAX_FLUSH_WRITERS}, "
                              f"got {self.PULSE_FLUSH_WRITERS}")
        # Accepted single heartbeats answered below Flask's dispatch (app/ingest/fast_path.py).
        self.PULSE_HEARTBEAT_FAST_PATH = env.get("PULSE_HEARTBEAT_FAST_PATH", "1") != "0"
        self.PROMETHEUS_MULTIPROC_DIR = env.get("PROMETHEUS_MULTIPROC_DIR") or None
        # Alerting (SPEC §11): where Pulse is reached (links in notifications), and how
        # deliveries are retried: first delay (doubling, at most 300 s), attempts in all,
        # and how long a delivery may stay claimed before the sweep takes it back.
        self.PULSE_EXTERNAL_URL = env.get("PULSE_EXTERNAL_URL", "").rstrip("/")
        self.PULSE_NOTIFY_BACKOFF_SECONDS = _int(env, "PULSE_NOTIFY_BACKOFF_SECONDS", 10, 1)
        self.PULSE_NOTIFY_MAX_ATTEMPTS = _int(env, "PULSE_NOTIFY_MAX_ATTEMPTS", 8, 1)
        self.PULSE_NOTIFY_CLAIM_SECONDS = _int(env, "PULSE_NOTIFY_CLAIM_SECONDS", 120, 10)
        # Failed logins per account and per client address, API and dashboard alike.
        self.PULSE_LOGIN_RATE_LIMIT = env.get("PULSE_LOGIN_RATE_LIMIT", "10/minute")
        # The `make run` demo node and Beacon (embedded mode only; never with REDIS_URL).
        self.PULSE_DEMO = env.get("PULSE_DEMO", "1") != "0"
        # Where the demo keeps its beacon.yaml, spool and ports (default: instance/demo).
        self.PULSE_DEMO_DIR = env.get("PULSE_DEMO_DIR") or None
        # Dashboard sessions (signed cookies; /api/ never reads them). A session lives this
        # long after the last request, so a wall screen refreshing every 15 s stays in.
        self.SESSION_COOKIE_NAME = "pulse_session"
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = self.PULSE_ENV == "production"
        self.PERMANENT_SESSION_LIFETIME = 3600 * _int(env, "PULSE_SESSION_HOURS", 12, 1)

        self.API_TITLE = "Pulse API"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/"
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "docs"
        # Served from our own static route so /docs works without internet access.
        self.OPENAPI_SWAGGER_UI_URL = "/docs-assets/"
        self.JSON_SORT_KEYS = False
        self.API_SPEC_OPTIONS = {
            "components": {"securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "A login access token, an API token, or (Beacon and drift "
                               "endpoints) a node token"}}},
            "security": [{"bearerAuth": []}],
        }

    def as_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k.isupper()}


class TestConfig(Config):
    """Settings for tests: fixed secret, everything else from the given env."""

    TESTING = True

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        base = {"SECRET_KEY": "test-secret-key-" + "x" * 32}
        base.update(env or {})
        super().__init__(base)
        self.TESTING = True
