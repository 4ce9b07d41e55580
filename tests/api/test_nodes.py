"""Nodes: create (token once), get, list, update, token rotation, status, enrollment,
delete with its probes and metrics (SPEC §5 Nodes)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.extensions import db, get_redis
from app.models import EnrollmentToken, Metric, Node, Probe
from app.redis_keys import node_seen_key, presence_key
from app.services.presence import mark_present
from app.tokens import hash_token
from tests.support.api import assert_error, bearer

URL = "/api/v1/nodes"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
NODE_FIELDS = {"id", "name", "region", "labels", "hostname", "ip_address", "agent_version",
               "config_version", "metadata", "status", "uptime_24h", "last_seen_at",
               "first_seen_at", "created_at", "updated_at"}




def node_token_works(client, token) -> bool:
    """Whether a node token authenticates on the Beacon-facing API."""
    status = client.get("/api/v1/beacon/config", headers=bearer(token)).status_code
    assert status in (200, 401), status
    return status == 200


# -- create / get / list ----------------------------------------------------------------------

def test_create_returns_the_token_once(client, operator, viewer):
    response = client.post(URL, json={"name": "edge-1", "region": "eu-west",
                                      "labels": {"rack": "r1"}}, headers=operator.headers)
    assert response.status_code == 201, response.get_json()
    node = response.get_json()
    assert set(node) == NODE_FIELDS | {"token"}
    assert node["token"].startswith("pbn_") and len(node["token"]) >= 4 + 43  # 256 bits
    assert (node["name"], node["region"], node["labels"]) == ("edge-1", "eu-west", {"rack": "r1"})
    assert (node["status"], node["last_seen_at"], node["uptime_24h"]) == ("never", None, None)
    assert node["metadata"] == {}

    got = client.get(f"{URL}/{node['id']}", headers=viewer.headers)
    assert got.status_code == 200
    assert set(got.get_json()) == NODE_FIELDS
    listed = client.get(URL, headers=viewer.headers)
    assert "token" not in listed.get_json()["data"][0]
    for response in (got, listed):
        assert node["token"] not in response.get_data(as_text=True)
        assert hash_token(node["token"]) not in response.get_data(as_text=True)


def test_two_nodes_get_different_tokens(node, other_node):
    assert node["token"] != other_node["token"]


def test_duplicate_name(client, operator, node):
    response = client.post(URL, json={"name": node["name"]}, headers=operator.headers)
    payload = assert_error(response, 409, "ERR_NODE_EXISTS")
    assert payload["details"] == {"name": node["name"]}


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 256}, {"name": 5},
                                  {"name": "n", "labels": {"a": 1}}, {"name": "n", "labels": []},
                                  {"name": "n", "region": "r" * 65}, {"name": "n", "extra": 1}])
def test_create_validation(client, operator, body):
    response = client.post(URL, json=body, headers=operator.headers)
    assert response.status_code == 400, response.get_json()


def test_list_envelope_sorted_by_name(client, viewer, operator):
    for name in ("charlie", "alpha", "bravo"):
        client.post(URL, json={"name": name}, headers=operator.headers)
    body = client.get(URL, headers=viewer.headers).get_json()
    assert set(body) == {"data", "pagination"}
    assert [n["name"] for n in body["data"]] == ["alpha", "bravo", "charlie"]
    assert body["pagination"] == {"page": 1, "per_page": 100, "total": 3, "pages": 1}
    second = client.get(URL, query_string={"per_page": 2, "page": 2},
                        headers=viewer.headers).get_json()
    assert [n["name"] for n in second["data"]] == ["charlie"]
    assert second["pagination"] == {"page": 2, "per_page": 2, "total": 3, "pages": 2}


@pytest.mark.parametrize("node_id", [UNKNOWN_ID, "nope", "1"])
@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_or_malformed_node_is_404(client, operator, node_id, method):
    kwargs = {"json": {"region": "x"}} if method == "patch" else {}
    response = getattr(client, method)(f"{URL}/{node_id}", headers=operator.headers, **kwargs)
    assert_error(response, 404, "ERR_NODE_NOT_FOUND")


def test_rotate_unknown_node_is_404(client, operator):
    assert_error(client.post(f"{URL}/{UNKNOWN_ID}/token", headers=operator.headers), 404,
                 "ERR_NODE_NOT_FOUND")


# -- update -----------------------------------------------------------------------------------

def test_patch(client, operator, node):
    response = client.patch(f"{URL}/{node['id']}", json={"region": "us-east",
                                                           "labels": {"tier": "gold"}},
                            headers=operator.headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["name"], body["region"], body["labels"]) == ("node-a", "us-east", {"tier": "gold"})
    assert body["updated_at"] >= node["updated_at"]
    assert "token" not in body


def test_patch_rename(client, operator, node):
    response = client.patch(f"{URL}/{node['id']}", json={"name": "renamed"},
                            headers=operator.headers)
    assert response.get_json()["name"] == "renamed"
    same = client.patch(f"{URL}/{node['id']}", json={"name": "renamed"}, headers=operator.headers)
    assert same.status_code == 200


def test_patch_to_an_existing_name(client, operator, node, other_node):
    response = client.patch(f"{URL}/{other_node['id']}", json={"name": node["name"]},
                            headers=operator.headers)
    assert_error(response, 409, "ERR_NODE_EXISTS")


def test_patch_may_clear_the_region_but_not_the_name(client, operator, node):
    cleared = client.patch(f"{URL}/{node['id']}", json={"region": None}, headers=operator.headers)
    assert cleared.get_json()["region"] is None
    response = client.patch(f"{URL}/{node['id']}", json={"name": None}, headers=operator.headers)
    assert response.status_code == 400


# -- tokens -----------------------------------------------------------------------------------

def test_node_token_authenticates_its_node(client, node):
    assert node_token_works(client, node["token"])
    body = client.get("/api/v1/beacon/config", headers=bearer(node["token"])).get_json()
    assert body["node_id"] == node["id"]


def test_rotation_invalidates_the_old_token(client, operator, node):
    old = node["token"]
    assert node_token_works(client, old)  # also primes any token cache
    response = client.post(f"{URL}/{node['id']}/token", headers=operator.headers)
    assert response.status_code == 200, response.get_json()
    assert set(response.get_json()) == {"token"}
    new = response.get_json()["token"]
    assert new != old and new.startswith("pbn_")
    assert not node_token_works(client, old)
    assert node_token_works(client, new)
    assert client.get(f"{URL}/{node['id']}", headers=operator.headers).status_code == 200


def test_rotation_leaves_other_nodes_alone(client, operator, node, other_node):
    client.post(f"{URL}/{node['id']}/token", headers=operator.headers)
    assert node_token_works(client, other_node["token"])


def test_rotation_stores_only_the_new_hash(app, client, operator, node):
    new = client.post(f"{URL}/{node['id']}/token", headers=operator.headers).get_json()["token"]
    with app.app_context():
        stored = db.session.get(Node, uuid.UUID(node["id"])).token_hash
    assert stored == hash_token(new)


# -- status and uptime ------------------------------------------------------------------------

@pytest.mark.parametrize(("ago", "status"), [
    (None, "never"), (timedelta(seconds=5), "online"), (timedelta(minutes=2, seconds=50), "online"),
    (timedelta(minutes=3, seconds=10), "offline"), (timedelta(days=2), "offline"),
])
def test_status_from_last_seen_in_the_database(app, client, viewer, node, ago, status):
    if ago is not None:
        with app.app_context():
            db.session.get(Node, uuid.UUID(node["id"])).last_seen_at = datetime.now(UTC) - ago
            db.session.commit()
    body = client.get(f"{URL}/{node['id']}", headers=viewer.headers).get_json()
    assert body["status"] == status
    listed = client.get(URL, headers=viewer.headers).get_json()["data"]
    assert listed[0]["status"] == status


def test_status_uses_the_fresh_last_seen_in_redis(app, client, viewer, node):
    """Ingest records last_seen in Redis before the flush writes it to the database."""
    now = datetime.now(UTC)
    with app.app_context():
        handle = get_redis()
        handle.client.hset(node_seen_key(handle.prefix, node["id"]),
                           mapping={"last_seen_ms": int(now.timestamp() * 1000)})
    body = client.get(f"{URL}/{node['id']}", headers=viewer.headers).get_json()
    assert body["last_seen_at"] is not None
    assert body["status"] == "online"


def seen_since(handle, node_id: str, first: datetime, last: datetime) -> None:
    handle.client.hset(node_seen_key(handle.prefix, node_id), mapping={
        "last_seen_ms": int(last.timestamp() * 1000),
        "first_seen_ms": int(first.timestamp() * 1000)})


def test_uptime_24h_counts_minutes_with_a_heartbeat(app, client, viewer, node):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with app.app_context():
        handle = get_redis()
        seen_since(handle, node["id"], now - timedelta(days=3), now - timedelta(minutes=1))
        pipe = handle.client.pipeline()
        for minute in range(1, 145):  # 144 whole minutes of the last 1,440 = 10 %
            mark_present(pipe, handle.prefix, node["id"], now - timedelta(minutes=minute))
        mark_present(pipe, handle.prefix, node["id"], now - timedelta(minutes=1500))  # too old
        pipe.execute()
    body = client.get(f"{URL}/{node['id']}", headers=viewer.headers).get_json()
    assert body["uptime_24h"] == 10.0


def test_uptime_24h_counts_from_the_first_heartbeat(app, client, viewer, node):
    """A node up for 10 minutes, present in each of them, is at 100 %, not 0.7 %."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with app.app_context():
        handle = get_redis()
        seen_since(handle, node["id"], now - timedelta(minutes=9, seconds=-5), now)
        pipe = handle.client.pipeline()
        for minute in range(0, 10):
            mark_present(pipe, handle.prefix, node["id"], now - timedelta(minutes=minute))
        pipe.execute()
    body = client.get(f"{URL}/{node['id']}", headers=viewer.headers).get_json()
    assert body["uptime_24h"] == 100.0
    assert body["first_seen_at"] is not None
    with app.app_context():  # half of its 10 minutes: 50 %
        for day in {now, now - timedelta(minutes=10)}:  # the window may span midnight
            handle.client.delete(presence_key(handle.prefix, node["id"], day.strftime("%Y%m%d")))
        pipe = handle.client.pipeline()
        for minute in range(0, 10, 2):
            mark_present(pipe, handle.prefix, node["id"], now - timedelta(minutes=minute))
        pipe.execute()
    body = client.get(f"{URL}/{node['id']}", headers=viewer.headers).get_json()
    assert body["uptime_24h"] == 50.0


# -- enrollment tokens ------------------------------------------------------------------------

def enroll(client, token, name):
    return client.post("/api/v1/beacon/register", json={"enroll_token": token, "name": name})


def test_enrollment_token_create(client, operator):
    before = datetime.now(UTC)
    response = client.post("/api/v1/enrollment-tokens",
                           json={"expires_in_seconds": 600, "uses": 3}, headers=operator.headers)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == {"id", "token", "expires_at", "uses_left"}
    assert body["token"].startswith("pbe_") and body["uses_left"] == 3
    expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert timedelta(seconds=599) <= expires_at - before <= timedelta(seconds=605)


def test_enrollment_token_defaults(client, operator):
    body = client.post("/api/v1/enrollment-tokens", json={}, headers=operator.headers).get_json()
    assert body["uses_left"] == 1
    expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=59) < expires_at - datetime.now(UTC) <= timedelta(hours=1)


@pytest.mark.parametrize("body", [{"uses": 0}, {"uses": 10001}, {"uses": "2"},
                                  {"expires_in_seconds": 59},
                                  {"expires_in_seconds": 30 * 86400 + 1}])
def test_enrollment_token_validation(client, operator, body):
    response = client.post("/api/v1/enrollment-tokens", json=body, headers=operator.headers)
    assert response.status_code == 400, response.get_json()


def test_enrollment_token_use_count(client, operator):
    token = client.post("/api/v1/enrollment-tokens", json={"uses": 2},
                        headers=operator.headers).get_json()["token"]
    first = enroll(client, token, "beacon-1")
    assert first.status_code == 201, first.get_json()
    assert set(first.get_json()) == {"node_id", "token"}
    assert node_token_works(client, first.get_json()["token"])
    assert enroll(client, token, "beacon-2").status_code == 201
    assert_error(enroll(client, token, "beacon-3"), 401, "ERR_INVALID_ENROLLMENT_TOKEN")
    names = [n["name"] for n in client.get(URL, headers=operator.headers).get_json()["data"]]
    assert names == ["beacon-1", "beacon-2"]


def test_enrollment_with_a_taken_name_does_not_spend_a_use(app, client, operator, node):
    body = client.post("/api/v1/enrollment-tokens", json={"uses": 1},
                       headers=operator.headers).get_json()
    assert_error(enroll(client, body["token"], node["name"]), 409, "ERR_NODE_EXISTS")
    with app.app_context():
        assert db.session.get(EnrollmentToken, uuid.UUID(body["id"])).uses_left == 1
    assert enroll(client, body["token"], "fresh-name").status_code == 201


def test_expired_enrollment_token(app, client, operator):
    body = client.post("/api/v1/enrollment-tokens", json={"uses": 5},
                       headers=operator.headers).get_json()
    with app.app_context():
        row = db.session.get(EnrollmentToken, uuid.UUID(body["id"]))
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        db.session.commit()
    assert_error(enroll(client, body["token"], "late"), 401, "ERR_INVALID_ENROLLMENT_TOKEN")


@pytest.mark.parametrize("token", ["pbe_unknown", "garbage"])
def test_unknown_enrollment_token(client, token):
    assert_error(enroll(client, token, "x"), 401, "ERR_INVALID_ENROLLMENT_TOKEN")


def test_registered_node_keeps_its_reported_metadata(client, operator, viewer):
    token = client.post("/api/v1/enrollment-tokens", json={},
                        headers=operator.headers).get_json()["token"]
    response = client.post("/api/v1/beacon/register", json={
        "enroll_token": token, "name": "meta",
        "metadata": {"hostname": "probe-7", "ip_address": "192.0.2.7", "region": "ap-south"}})
    node = client.get(f"{URL}/{response.get_json()['node_id']}", headers=viewer.headers).get_json()
    assert (node["hostname"], node["ip_address"], node["region"]) == (
        "probe-7", "192.0.2.7", "ap-south")
    assert node["metadata"]["hostname"] == "probe-7"
    assert node["status"] == "never"


# -- delete -----------------------------------------------------------------------------------

def add_metrics(app, node_id: str, probe_id: str, count: int = 3) -> None:
    with app.app_context():
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=count)
        for i in range(count):
            db.session.add(Metric(node_id=uuid.UUID(node_id), probe_id=uuid.UUID(probe_id),
                                  timestamp=start + timedelta(minutes=i),
                                  latency_ms=Decimal("1.5"), packet_loss_rate=Decimal("0"),
                                  jitter_ms=Decimal("0.1")))
        db.session.commit()


def counts(app, node_id: str) -> tuple[int, int, int]:
    nid = uuid.UUID(node_id)
    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(Node).where(Node.id == nid)),
                db.session.scalar(select(func.count()).select_from(Probe)
                                  .where(Probe.node_id == nid)),
                db.session.scalar(select(func.count()).select_from(Metric)
                                  .where(Metric.node_id == nid)))


@pytest.mark.parametrize("query", ["", "?confirm=true"])
def test_delete_cascades_probes_and_metrics(app, client, operator, node, other_node, query):
    probes = [client.post("/api/v1/probes", headers=operator.headers, json={
        "node_id": n["id"], "type": "TCP", "target": "example.com", "port": 443}).get_json()
        for n in (node, other_node)]
    add_metrics(app, node["id"], probes[0]["id"])
    add_metrics(app, other_node["id"], probes[1]["id"])
    assert counts(app, node["id"]) == (1, 1, 3)
    response = client.delete(f"{URL}/{node['id']}{query}", headers=operator.headers)
    assert response.status_code == 204
    assert response.data == b""
    assert counts(app, node["id"]) == (0, 0, 0)
    assert counts(app, other_node["id"]) == (1, 1, 3)
    assert_error(client.get(f"/api/v1/probes/{probes[0]['id']}", headers=operator.headers), 404,
                 "ERR_PROBE_NOT_FOUND")
    assert_error(client.get(f"{URL}/{node['id']}", headers=operator.headers), 404,
                 "ERR_NODE_NOT_FOUND")


def test_deleted_node_token_stops_working(client, operator, node):
    assert node_token_works(client, node["token"])
    client.delete(f"{URL}/{node['id']}", headers=operator.headers)
    assert not node_token_works(client, node["token"])


def test_deleted_name_can_be_reused(client, operator, node):
    client.delete(f"{URL}/{node['id']}", headers=operator.headers)
    response = client.post(URL, json={"name": node["name"]}, headers=operator.headers)
    assert response.status_code == 201


def test_presence_bit_count_matches_a_bit_by_bit_count():
    import random

    from app.services.presence import _count_bits

    def by_bits(bitmap: bytes, start: int, end: int) -> int:
        return sum(1 for bit in range(start, end) if bit >> 3 < len(bitmap)
                   and bitmap[bit >> 3] & (0x80 >> (bit & 7)))

    rng = random.Random(7)
    for _ in range(500):
        bitmap = rng.randbytes(rng.randint(0, 181))
        start, end = rng.randint(0, 1441), rng.randint(0, 1441)
        assert _count_bits(bitmap, start, end) == by_bits(bitmap, start, end)
