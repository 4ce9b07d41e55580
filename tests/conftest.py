"""Fixtures: the flaskr trio (app, client, runner), personas, and real servers."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass

import pytest

from app import create_app
from app.config import TestConfig
from tests.support.servers import PostgresServer, RedisServer, ServerUnavailable

IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(what: str, exc: Exception):
    # In CI a server that cannot be provisioned fails the run; locally it is a said skip.
    if IN_CI:
        pytest.fail(f"{what} could not be provisioned in CI: {exc}")
    pytest.skip(f"{what} unavailable on this machine: {exc}")


@pytest.fixture(scope="session")
def pg_server():
    try:
        server = PostgresServer()
        server.start()
    except (ServerUnavailable, OSError) as exc:
        _unavailable("PostgreSQL", exc)
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_server():
    try:
        server = RedisServer()
        server.start()
    except (ServerUnavailable, OSError) as exc:
        _unavailable("Redis", exc)
    yield server
    server.cleanup()


@dataclass
class Persona:
    email: str
    role: str
    password: str
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


PERSONA_PASSWORD = "correct horse battery"
PERSONAS = {role: Persona(f"{role}@example.test", role, PERSONA_PASSWORD)
            for role in ("admin", "operator", "viewer")}


def make_app(database_url: str, redis_url: str | None = None, **extra):
    env = {"DATABASE_URL": database_url, "PULSE_NODE_RATE_LIMIT": "0"}
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return create_app(TestConfig(env))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite database with the personas, copied for each test."""
    from flask_migrate import upgrade

    from app.services import auth as auth_service

    path = tmp_path_factory.mktemp("template") / "pulse.db"
    app = make_app(f"sqlite:///{path}")
    with app.app_context():
        upgrade()
        for persona in PERSONAS.values():
            auth_service.create_user(persona.email, persona.password, persona.role)
        app.extensions["sqlalchemy"].engines[None].dispose()
    return path


def _dispose(app) -> None:
    with app.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app_factory(sqlite_template, tmp_path):
    """Build extra apps on their own copy of the template, with extra settings.

    `app_factory(PULSE_MAX_BODY_BYTES="1024")` -> a Flask app; disposed after the test.
    """
    built = []

    def factory(**env: str):
        path = tmp_path / f"pulse-{len(built)}.db"
        shutil.copy(sqlite_template, path)
        new_app = make_app(f"sqlite:///{path}", **env)
        with new_app.app_context():
            import redis

            from app.extensions import get_redis

            # A test of what happens when Redis is down has none to flush.
            with contextlib.suppress(redis.ConnectionError):
                get_redis().client.flushall()
        built.append(new_app)
        return new_app

    yield factory
    for each in built:
        _dispose(each)


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture(scope="module")
def shared_app(sqlite_template, tmp_path_factory):
    """One app per test module, for big tables of requests that each make their own
    uniquely named objects and never depend on what else is in the database. Building an
    app costs ~25 ms (flask-smorest builds the OpenAPI spec), a request ~1-2 ms."""
    path = tmp_path_factory.mktemp("shared") / "pulse.db"
    shutil.copy(sqlite_template, path)
    shared = make_app(f"sqlite:///{path}")
    with shared.app_context():
        from app.extensions import get_redis

        get_redis().client.flushall()
    yield shared
    _dispose(shared)


@pytest.fixture(scope="module")
def shared_client(shared_app):
    return shared_app.test_client()


@pytest.fixture(scope="module")
def shared_personas(shared_app):
    """admin, operator and viewer with login access tokens, on `shared_app`."""
    return _login_personas(shared_app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def personas(app):
    """admin, operator and viewer with login access tokens."""
    return _login_personas(app)


def _login_personas(app) -> dict[str, Persona]:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import User
    from app.services.auth import issue_access_token

    result = {}
    with app.app_context():
        for role, persona in PERSONAS.items():
            user = db.session.scalar(select(User).where(User.email == persona.email))
            token, _ = issue_access_token(user)
            result[role] = Persona(persona.email, role, persona.password, token)
    return result


@pytest.fixture
def admin(personas):
    return personas["admin"]


@pytest.fixture
def operator(personas):
    return personas["operator"]


@pytest.fixture
def viewer(personas):
    return personas["viewer"]


@pytest.fixture
def node(client, operator):
    """A node created through the API, with its one-time token."""
    response = client.post("/api/v1/nodes", json={"name": "node-a", "region": "eu-west"},
                           headers=operator.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def other_node(client, operator):
    response = client.post("/api/v1/nodes", json={"name": "node-b"}, headers=operator.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def probe(client, operator, node):
    """A TCP probe on `node`, created through the API."""
    response = client.post("/api/v1/probes", json={
        "node_id": node["id"], "type": "TCP", "target": "example.com", "port": 443,
    }, headers=operator.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --- heartbeat fixtures (tests/api/test_heartbeat_*, tests/services/*) ---------------------


@pytest.fixture
def node_headers(node):
    """The bearer header of `node` (its node token)."""
    return {"Authorization": f"Bearer {node['token']}"}


@pytest.fixture
def node_probes(client, operator, node):
    """Three TCP probe ids on `node` (192.0.2.1 ports 80, 443, 53), created through the API."""
    ids = []
    for port in (80, 443, 53):
        response = client.post("/api/v1/probes", json={
            "node_id": node["id"], "type": "TCP", "target": "192.0.2.1", "port": port,
        }, headers=operator.headers)
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    return ids


@pytest.fixture
def other_probe(client, operator, other_node):
    """A TCP probe on `other_node`."""
    response = client.post("/api/v1/probes", json={
        "node_id": other_node["id"], "type": "TCP", "target": "192.0.2.2", "port": 80,
    }, headers=operator.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def make_heartbeat():
    """Builds a heartbeat body: make_heartbeat(node_id, ts, probe_ids, latency=…, **fields).

    Each probe gets a result with `latency` (a number or one per probe), `loss` and
    `jitter`; `ts` is a datetime (sent as ISO 8601 with Z); extra keyword arguments
    replace top-level fields (None removes one).
    """
    from datetime import UTC

    def build(node_id, ts, probe_ids=(), latency=10.0, loss=0.0, jitter=0.5, **fields):
        latencies = list(latency) if isinstance(latency, list | tuple) else [latency] * len(
            probe_ids)
        body = {
            "node_id": node_id,
            "timestamp": ts.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "latency_ms": (sum(latencies) / len(latencies)) if latencies else 10.0,
            "packet_loss_rate": loss, "jitter_ms": jitter, "config_version": "cv-test",
            "results": [{"probe_id": p, "latency_ms": lat, "packet_loss_rate": loss,
                         "jitter_ms": jitter} for p, lat in zip(probe_ids, latencies,
                                                               strict=True)],
        }
        for name, value in fields.items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        return body

    return build


@pytest.fixture(scope="module")
def shared_beacon(shared_client, shared_personas):
    """A node with three TCP probes on `shared_app`: {id, token, headers, probes}."""
    operator = shared_personas["operator"]
    created = shared_client.post("/api/v1/nodes", json={"name": "shared-beacon"},
                                 headers=operator.headers)
    assert created.status_code == 201, created.get_json()
    node = created.get_json()
    probes = []
    for port in (80, 443, 53):
        response = shared_client.post("/api/v1/probes", json={
            "node_id": node["id"], "type": "TCP", "target": "198.51.100.7", "port": port,
        }, headers=operator.headers)
        assert response.status_code == 201, response.get_json()
        probes.append(response.get_json()["id"])
    return {"id": node["id"], "token": node["token"], "probes": probes,
            "headers": {"Authorization": f"Bearer {node['token']}"}}


@pytest.fixture(scope="module")
def module_app(sqlite_template, tmp_path_factory):
    """One app per module, emptied before each test by `reset_app` (see there)."""
    path = tmp_path_factory.mktemp("module") / "pulse.db"
    shutil.copy(sqlite_template, path)
    built = make_app(f"sqlite:///{path}")
    yield built
    _dispose(built)


@pytest.fixture
def reset_app(module_app):
    """`module_app` as a fresh app would be: every table but users emptied, Redis flushed.

    A module that overrides `app` with it (`def app(reset_app): return reset_app`) keeps
    every fixture built on `app` (client, personas, node, …) and saves building an app per
    test (~50 ms; the reset costs ~3 ms). Only for apps with the default settings: rate
    limiter and body limit are fixed when an app is built.
    """
    from app.extensions import db, get_redis

    with module_app.app_context():
        db.session.remove()
        for table in reversed(db.metadata.sorted_tables):
            if table.name != "users":
                db.session.execute(table.delete())
        db.session.commit()
        get_redis().client.flushall()
    yield module_app
    with module_app.app_context():
        db.session.remove()
