"""The heartbeat hot path does not query the database per request (SPEC §5 Limits): token,
node, probe ownership and last_seen come from Redis once warm."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from app.extensions import db


@pytest.fixture
def app(reset_app):
    """A fresh app for each test, without building one (tests.conftest.reset_app)."""
    return reset_app


@contextlib.contextmanager
def sql_statements(app):
    """Collects the SQL statements the app's engine runs inside the block."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_warm_heartbeats_run_no_sql(app, client, node, node_headers, node_probes,
                                    make_heartbeat):
    body = make_heartbeat(node["id"], datetime.now(UTC), node_probes)
    assert client.post("/api/v1/beacon/heartbeat", json=body,
                       headers=node_headers).status_code == 200  # warms the caches
    with sql_statements(app) as statements:
        for _ in range(3):
            response = client.post("/api/v1/beacon/heartbeat", json=body, headers=node_headers)
            assert response.status_code == 200
        batch = client.post("/api/v1/beacon/heartbeats", json={"heartbeats": [body, body]},
                            headers=node_headers)
        assert batch.status_code == 200 and batch.get_json()["accepted"] == 6
    assert statements == []


def test_rejections_run_no_sql_either(app, client, node, node_headers, node_probes,
                                      other_probe, make_heartbeat):
    body = make_heartbeat(node["id"], datetime.now(UTC), node_probes)
    client.post("/api/v1/beacon/heartbeat", json=body, headers=node_headers)
    with sql_statements(app) as statements:
        assert client.post("/api/v1/beacon/heartbeat", json={**body, "latency_ms": -1},
                           headers=node_headers).status_code == 400
        foreign = make_heartbeat(node["id"], datetime.now(UTC), [other_probe["id"]])
        assert client.post("/api/v1/beacon/heartbeat", json=foreign,
                           headers=node_headers).status_code == 400
        for _ in range(2):  # an unknown token is remembered briefly, too
            assert client.post("/api/v1/beacon/heartbeat", json=body, headers={
                "Authorization": "Bearer pbn_unknown"}).status_code == 401
    assert len(statements) == 1 and "FROM nodes" in statements[0], statements


def test_a_probe_change_costs_one_reload(app, client, operator, node, node_headers,
                                         node_probes, make_heartbeat):
    body = make_heartbeat(node["id"], datetime.now(UTC), node_probes)
    client.post("/api/v1/beacon/heartbeat", json=body, headers=node_headers)
    client.patch(f"/api/v1/probes/{node_probes[0]}", json={"count": 20},
                 headers=operator.headers)
    with sql_statements(app) as statements:
        for _ in range(3):
            assert client.post("/api/v1/beacon/heartbeat", json=body,
                               headers=node_headers).status_code == 200
    assert len(statements) == 1, statements
