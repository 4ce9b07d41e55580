"""Extension objects, created unbound; create_app binds them."""

from __future__ import annotations

import logging

import redis
from flask import Flask, current_app
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from sqlalchemy import MetaData

log = logging.getLogger(__name__)

# Stable constraint names so Alembic migrations can address them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))


def not_a_partition(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's filter: the partitions of `metrics` (PostgreSQL; app.history.partitions)
    are made at run time, not declared by a model, so autogenerate never sees them."""
    return not (type_ == "table" and reflected and name is not None
                and name.startswith(("metrics_raw", "metrics_agg")))
migrate = Migrate()
api = Api()


class RedisHandle:
    """The Redis client of the app: a real server from REDIS_URL, or in-process fakeredis."""

    def __init__(self) -> None:
        self.client: redis.Redis | None = None
        self.embedded = False
        self.prefix = "pulse"

    def init_app(self, app: Flask) -> None:
        """Store a per-app handle; services reach it through get_redis()."""
        handle = RedisHandle()
        handle._connect(app)
        app.extensions["pulse_redis"] = handle

    def _connect(self, app: Flask) -> None:
        url = app.config.get("REDIS_URL")
        self.prefix = app.config["PULSE_REDIS_PREFIX"]
        if url:
            # A Redis restart should cost a retry, not a failed request: reconnect with
            # backoff for a few seconds before giving up (then the API answers 503).
            self.client = redis.Redis.from_url(
                url, decode_responses=False, socket_timeout=5, socket_connect_timeout=2,
                health_check_interval=30,
                retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 6),
                retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            )
            self.embedded = False
        else:
            import fakeredis

            log.warning("REDIS_URL is unset: using in-process fakeredis (single process only)")
            # One shared fake server per process so every client sees the same data.
            self.client = fakeredis.FakeRedis(server=_fake_server())
            self.embedded = True

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))


_FAKE_SERVER = None


def _fake_server():
    global _FAKE_SERVER
    if _FAKE_SERVER is None:
        import fakeredis

        _FAKE_SERVER = fakeredis.FakeServer()
    return _FAKE_SERVER


redis_store = RedisHandle()


def get_redis() -> RedisHandle:
    """The Redis handle of the current app."""
    return current_app.extensions["pulse_redis"]
