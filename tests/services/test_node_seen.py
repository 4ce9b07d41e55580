"""What a heartbeat says about its node (last_seen, reported metadata, versions): kept in
Redis by ingest, copied to the nodes table by the flush (SPEC §5 Nodes)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.history.flush import flush_pending
from app.models import Node

BEAT = "/api/v1/beacon/heartbeat"


@pytest.fixture
def app(reset_app):
    """A fresh app for each test, without building one (tests.conftest.reset_app)."""
    return reset_app


def stored(app, node_id: str) -> Node:
    with app.app_context():
        node = db.session.get(Node, uuid.UUID(node_id))
        db.session.expunge(node)
        return node


def test_flush_copies_last_seen_metadata_and_versions(app, client, viewer, node, node_headers,
                                                      node_probes, make_heartbeat):
    before = datetime.now(UTC) - timedelta(seconds=1)
    body = make_heartbeat(node["id"], datetime.now(UTC), node_probes, config_version="cv-x",
                          agent_version="1.4.2", metadata={
                              "hostname": "probe-7", "ip_address": "192.0.2.70",
                              "region": "ignored-when-set", "rack": "r12"})
    assert client.post(BEAT, json=body, headers=node_headers).status_code == 200
    assert stored(app, node["id"]).last_seen_at is None  # only Redis knows before the flush
    with app.app_context():
        flush_pending()
    row = stored(app, node["id"])
    last_seen = row.last_seen_at.replace(tzinfo=row.last_seen_at.tzinfo or UTC)
    assert before <= last_seen <= datetime.now(UTC) + timedelta(seconds=1)
    assert (row.hostname, row.ip_address, row.agent_version, row.config_version) == (
        "probe-7", "192.0.2.70", "1.4.2", "cv-x")
    assert row.region == "eu-west"  # set by the operator; a Beacon does not overwrite it
    assert row.metadata_["rack"] == "r12"

    answer = client.get(f"/api/v1/nodes/{node['id']}", headers=viewer.headers).get_json()
    assert answer["hostname"] == "probe-7" and answer["agent_version"] == "1.4.2"


def test_the_newest_heartbeat_of_a_batch_wins(app, client, node, node_headers, make_heartbeat):
    now = datetime.now(UTC)
    items = [make_heartbeat(node["id"], now, agent_version="2.0.0"),
             make_heartbeat(node["id"], now - timedelta(minutes=5), agent_version="1.0.0")]
    client.post("/api/v1/beacon/heartbeats", json={"heartbeats": items}, headers=node_headers)
    with app.app_context():
        flush_pending()
    assert stored(app, node["id"]).agent_version == "2.0.0"


def test_oversized_metadata_does_not_break_the_flush(app, client, node, node_headers,
                                                     node_probes, other_node, make_heartbeat):
    """Metadata is capped at 4 KiB in Redis; the cap must not leave invalid JSON behind,
    or every flush run fails on it (and loses other nodes' last_seen with it)."""
    now = datetime.now(UTC)
    other = make_heartbeat(other_node["id"], now)
    assert client.post(BEAT, json=other, headers={
        "Authorization": f"Bearer {other_node['token']}"}).status_code == 200
    big = make_heartbeat(node["id"], now, node_probes, metadata={
        "hostname": "big-host", "notes": "x" * 5000})
    response = client.post(BEAT, json=big, headers=node_headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["accepted"] == 3

    with app.app_context():
        report = flush_pending()
    assert report.inserted == 3
    assert stored(app, node["id"]).last_seen_at is not None
    assert stored(app, other_node["id"]).last_seen_at is not None
    assert stored(app, node["id"]).hostname == "big-host"
