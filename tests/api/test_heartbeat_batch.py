"""POST /api/v1/beacon/heartbeats: spooled heartbeats delivered in a batch, judged one by one
(SPEC §5)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db, get_redis
from app.history.flush import flush_pending
from app.history.live_cache import read_series
from app.history.pending import pending_length
from app.models import Metric

URL = "/api/v1/beacon/heartbeats"


@pytest.fixture
def app(reset_app):
    """A fresh app for each test, without building one (tests.conftest.reset_app)."""
    return reset_app


def rows(app, aggregated: bool = False) -> list[tuple[str, datetime, float]]:
    with app.app_context():
        return [(str(m.probe_id), m.timestamp, float(m.latency_ms)) for m in db.session.scalars(
            select(Metric).where(Metric.is_aggregated.is_(aggregated))
            .order_by(Metric.timestamp, Metric.probe_id))]


@pytest.fixture
def now():
    return datetime.now(UTC).replace(microsecond=0)


def test_mixed_batch_accepts_only_valid_items(app, client, node, node_headers, node_probes,
                                              other_node, other_probe, make_heartbeat, now):
    items = [
        make_heartbeat(node["id"], now - timedelta(minutes=3), node_probes),        # 3 ok
        make_heartbeat(node["id"], now - timedelta(minutes=2), node_probes,
                       latency=[1.0, -1.0, 2.0]),                                    # bad metric
        make_heartbeat(node["id"], now - timedelta(minutes=2), [other_probe["id"]]),  # foreign
        make_heartbeat(other_node["id"], now - timedelta(minutes=2), []),            # other node
        make_heartbeat(node["id"], now - timedelta(minutes=1), node_probes[:2]),    # 2 ok
        make_heartbeat("not-a-uuid", now, node_probes),                              # bad node_id
        make_heartbeat(node["id"], now, node_probes, timestamp="garbage"),          # bad ts
        make_heartbeat(node["id"], now, [], probe_id=node_probes[0]),               # 1 ok
    ]
    response = client.post(URL, json={"heartbeats": items}, headers=node_headers)
    answer = response.get_json()
    assert response.status_code == 200, answer
    assert answer["accepted"] == 6
    codes = {r["index"]: r["code"] for r in answer["rejected"]}
    assert codes == {1: "ERR_INVALID_METRICS", 2: "ERR_PROBE_NOT_FOUND",
                     3: "ERR_NODE_MISMATCH", 5: "ERR_INVALID_NODE_ID",
                     6: "ERR_INVALID_TIMESTAMP"}
    for rejected in answer["rejected"]:
        assert set(rejected) == {"index", "code", "message"}
        assert isinstance(rejected["message"], str) and rejected["message"]
    assert set(answer) == {"accepted", "rejected", "warnings", "config_version",
                           "drift_detected"}
    assert answer["warnings"] == []
    config = client.get("/api/v1/beacon/config", headers=node_headers).get_json()
    assert answer["config_version"] == config["config_version"]
    assert isinstance(answer["drift_detected"], bool)

    with app.app_context():
        assert flush_pending().inserted == 6
    stored = rows(app)
    assert len(stored) == 6
    assert {r[0] for r in stored} <= set(node_probes)


def test_batch_rejects_every_item_independently(client, node, node_headers, node_probes,
                                                make_heartbeat, now):
    items = [make_heartbeat(node["id"], now, node_probes, jitter=-1) for _ in range(3)]
    answer = client.post(URL, json={"heartbeats": items}, headers=node_headers).get_json()
    assert answer["accepted"] == 0
    assert [r["index"] for r in answer["rejected"]] == [0, 1, 2]
    # jitter is wrong in the summary and in every result: several fields → ERR_VALIDATION
    assert {r["code"] for r in answer["rejected"]} == {"ERR_VALIDATION"}


def test_500_items_are_accepted_and_501_refused(client, node, node_headers, node_probes,
                                                make_heartbeat, now):
    items = [make_heartbeat(node["id"], now - timedelta(seconds=i), node_probes[:1])
             for i in range(501)]
    too_many = client.post(URL, json={"heartbeats": items}, headers=node_headers)
    assert too_many.status_code == 400, too_many.get_json()
    assert too_many.get_json()["code"] == "ERR_VALIDATION"
    assert "heartbeats" in too_many.get_json()["details"]["fields"]

    ok = client.post(URL, json={"heartbeats": items[:500]}, headers=node_headers)
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["accepted"] == 500
    assert ok.get_json()["rejected"] == []


@pytest.mark.parametrize("payload", [{}, {"heartbeats": None}, {"heartbeats": {}},
                                     {"heartbeats": "x"}, []])
def test_batch_must_carry_a_list(client, node_headers, payload):
    response = client.post(URL, json=payload, headers=node_headers)
    assert response.status_code == 400, response.get_json()
    assert set(response.get_json()) == {"code", "message", "details"}


def test_empty_batch_accepts_nothing(client, node_headers):
    response = client.post(URL, json={"heartbeats": []}, headers=node_headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["accepted"] == 0
    assert response.get_json()["rejected"] == []


def test_batch_needs_the_node_token(client, node, node_probes, make_heartbeat, admin, now):
    body = {"heartbeats": [make_heartbeat(node["id"], now, node_probes)]}
    assert client.post(URL, json=body).status_code == 401
    assert client.post(URL, json=body, headers=admin.headers).status_code == 401


def test_malformed_json_batch_is_400(client, node_headers):
    response = client.post(URL, data="{", content_type="application/json",
                           headers=node_headers)
    assert response.status_code == 400
    assert response.get_json()["code"] == "ERR_INVALID_JSON"


def test_old_points_skip_the_live_cache_but_are_flushed(app, client, node, node_headers,
                                                        node_probes, make_heartbeat, now):
    old = now - timedelta(days=6, hours=23)   # within the 7-day raw retention
    hours_ago = now - timedelta(hours=3)
    recent = now - timedelta(minutes=5)
    items = [make_heartbeat(node["id"], ts, node_probes[:1], latency=lat)
             for ts, lat in ((old, 11.0), (hours_ago, 12.0), (recent, 13.0))]
    answer = client.post(URL, json={"heartbeats": items}, headers=node_headers).get_json()
    assert answer["accepted"] == 3 and answer["rejected"] == []

    with app.app_context():
        handle = get_redis()
        live = read_series(handle.client, handle.prefix, node["id"], node_probes[0])
        summary = read_series(handle.client, handle.prefix, node["id"], "_node")
        assert [p.ts_ms for p in live] == [int(recent.timestamp() * 1000)]
        assert [p.ts_ms for p in summary] == [int(recent.timestamp() * 1000)]
        assert pending_length(handle.client, handle.prefix) == 1
        assert flush_pending().inserted == 3
        assert pending_length(handle.client, handle.prefix) == 0
    stored = rows(app)
    assert [(r[1].replace(tzinfo=UTC), r[2]) for r in stored] == [
        (old, 11.0), (hours_ago, 12.0), (recent, 13.0)]


def test_resending_a_batch_stores_nothing_twice(app, client, node, node_headers, node_probes,
                                                make_heartbeat, now):
    items = [make_heartbeat(node["id"], now - timedelta(minutes=m), node_probes,
                            latency=[10.0 + m, 20.0 + m, 30.0 + m]) for m in (1, 2, 90)]
    first = client.post(URL, json={"heartbeats": items}, headers=node_headers).get_json()
    assert first["accepted"] == 9
    with app.app_context():
        assert flush_pending().inserted == 9
    stored = rows(app)

    again = client.post(URL, json={"heartbeats": items}, headers=node_headers).get_json()
    assert again["accepted"] == 9  # accepted again, stored once
    with app.app_context():
        handle = get_redis()
        for probe_id in node_probes:
            assert handle.client.zcard(f"{handle.prefix}:live:{{{node['id']}}}:{probe_id}") == 2
        assert flush_pending().inserted == 0
        assert db.session.scalar(select(func.count(Metric.id))) == 9
    assert rows(app) == stored


def test_resent_batch_before_the_first_flush_is_stored_once(app, client, node, node_headers,
                                                            node_probes, make_heartbeat, now):
    items = [make_heartbeat(node["id"], now - timedelta(minutes=m), node_probes)
             for m in (1, 2)]
    for _ in range(3):
        assert client.post(URL, json={"heartbeats": items},
                           headers=node_headers).get_json()["accepted"] == 6
    with app.app_context():
        assert flush_pending().inserted == 6
        assert db.session.scalar(select(func.count(Metric.id))) == 6


def test_drift_follows_the_newest_item(client, node, node_headers, node_probes,
                                       make_heartbeat, now):
    expected = client.get("/api/v1/beacon/config", headers=node_headers).get_json()[
        "config_version"]
    items = [make_heartbeat(node["id"], now - timedelta(minutes=5), node_probes,
                            config_version="cv-old"),
             make_heartbeat(node["id"], now, node_probes, config_version=expected)]
    answer = client.post(URL, json={"heartbeats": items}, headers=node_headers).get_json()
    assert answer["config_version"] == expected
    assert answer["drift_detected"] is False
    answer = client.post(URL, json={"heartbeats": items[:1]}, headers=node_headers).get_json()
    assert answer["drift_detected"] is True


def test_batch_node_id_of_an_unknown_node_is_a_mismatch(client, node_headers, node_probes,
                                                        make_heartbeat, now):
    items = [make_heartbeat(str(uuid.uuid4()), now, node_probes)]
    answer = client.post(URL, json={"heartbeats": items}, headers=node_headers).get_json()
    assert answer["accepted"] == 0
    assert answer["rejected"][0]["code"] == "ERR_NODE_MISMATCH"
