"""POST /api/v1/beacon/heartbeat: shapes, ranges, answer and limits (SPEC §5).

The tables run on one app per module (`shared_app`); each case sends its own heartbeat and
never depends on what the others stored.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.api.common import iso_utc
from app.ingest.rules import MAX_FUTURE_MS, parse_timestamp
from tests.support import api

URL = "/api/v1/beacon/heartbeat"
ANSWER_KEYS = {"status", "message", "timestamp", "accepted", "config_version",
               "drift_detected", "warnings"}


@pytest.fixture(scope="module")
def beacon(shared_beacon):
    return shared_beacon


@pytest.fixture
def body(beacon, make_heartbeat):
    return make_heartbeat(beacon["id"], datetime.now(UTC), beacon["probes"])


@pytest.fixture
def post(shared_client, beacon):
    def send(payload):
        return shared_client.post(URL, json=payload, headers=beacon["headers"])
    return send


def assert_ok(response, accepted: int | None = None) -> dict:
    answer = response.get_json()
    assert response.status_code == 200, answer
    if accepted is not None:
        assert answer["accepted"] == accepted, answer
    return answer


def assert_error(response, code: str, status: int = 400) -> dict:
    return api.assert_error(response, status, code)


# --- metric ranges: −1 / edge / +1 -----------------------------------------------------------

MS_RANGE = [(-0.01, False), (-1, False), (0, True), (0.0, True), (60000, True),
            (60000.0, True), (60000.01, False), (60001, False)]
LOSS_RANGE = [(-0.01, False), (-1, False), (0, True), (100, True), (100.0, True),
              (100.01, False), (101, False)]


def _cases(names, table):
    return [pytest.param(name, value, ok, id=f"{name}={value}")
            for name in names for value, ok in table]


@pytest.mark.parametrize("name,value,ok", _cases(("latency_ms", "jitter_ms"), MS_RANGE)
                         + _cases(("packet_loss_rate",), LOSS_RANGE))
def test_summary_ranges(post, body, name, value, ok):
    body[name] = value
    if ok:
        assert_ok(post(body), accepted=3)
    else:
        error = assert_error(post(body), "ERR_INVALID_METRICS")
        assert name in error["details"]["fields"]


@pytest.mark.parametrize("name,value,ok", _cases(
    ("latency_ms", "jitter_ms", "latency_median_ms", "latency_min_ms", "latency_max_ms",
     "latency_p95_ms"), MS_RANGE) + _cases(("packet_loss_rate",), LOSS_RANGE))
def test_result_ranges(post, body, name, value, ok):
    body["results"][1][name] = value
    if ok:
        assert_ok(post(body), accepted=3)
    else:
        error = assert_error(post(body), "ERR_INVALID_METRICS")
        assert f"results.1.{name}" in error["details"]["fields"]


@pytest.mark.parametrize("value,ok", [(-0.01, False), (-1, False), (0, True), (0.0, True),
                                      (1e9, True)])
def test_result_variance_is_non_negative(post, body, value, ok):
    body["results"][0]["latency_variance"] = value
    if ok:
        assert_ok(post(body), accepted=3)
    else:
        error = assert_error(post(body), "ERR_INVALID_METRICS")
        assert "results.0.latency_variance" in error["details"]["fields"]


def test_full_result_with_every_optional_field_is_accepted(post, body):
    body["results"][0].update({
        "timestamp": body["timestamp"], "latency_median_ms": 12.0, "latency_min_ms": 11.8,
        "latency_max_ms": 13.0, "latency_p95_ms": 12.9, "latency_variance": 0.1,
        "sent": 10, "received": 3, "error": None,  # sent/received not cross-checked
    })
    assert_ok(post(body), accepted=3)


# --- wrong types ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["12.3", "", True, False, [], {}])
@pytest.mark.parametrize("name", ["latency_ms", "packet_loss_rate", "jitter_ms"])
def test_summary_must_be_json_numbers(post, body, name, value):
    body[name] = value
    error = assert_error(post(body), "ERR_INVALID_METRICS")
    assert name in error["details"]["fields"]


def test_summary_loss_may_not_be_null(post, body):
    body["packet_loss_rate"] = None
    error = assert_error(post(body), "ERR_INVALID_METRICS")
    assert "packet_loss_rate" in error["details"]["fields"]


@pytest.mark.parametrize("name", ["latency_ms", "jitter_ms"])
def test_summary_latency_may_be_null_but_not_missing(post, body, name):
    """null: nothing was received (SPEC §5); a missing field is still a malformed body."""
    body[name] = None
    assert_ok(post(body), accepted=3)
    del body[name]
    error = assert_error(post(body), "ERR_INVALID_METRICS")
    assert name in error["details"]["fields"]


@pytest.mark.parametrize("value", ["12.3", True, [1], {"ms": 1}])
@pytest.mark.parametrize("name", ["latency_ms", "packet_loss_rate", "jitter_ms",
                                  "latency_p95_ms", "latency_variance"])
def test_result_values_must_be_json_numbers(post, body, name, value):
    body["results"][2][name] = value
    error = assert_error(post(body), "ERR_INVALID_METRICS")
    assert f"results.2.{name}" in error["details"]["fields"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused(shared_client, beacon, body, literal):
    text = json.dumps(body).replace('"latency_ms": ' + json.dumps(body["latency_ms"]),
                                    f'"latency_ms": {literal}', 1)
    assert literal in text
    response = shared_client.post(URL, data=text, content_type="application/json",
                                  headers=beacon["headers"])
    assert_error(response, "ERR_INVALID_METRICS")


# --- timestamps ------------------------------------------------------------------------------


def _ts(**delta) -> str:
    return iso_utc(datetime.now(UTC) + timedelta(**delta))


@pytest.mark.parametrize("stamp,ok", [
    (lambda: _ts(minutes=4), True),
    (lambda: _ts(minutes=6), False),
    (lambda: _ts(days=365), False),
    (lambda: _ts(days=-7, minutes=10), True),     # inside the 7-day raw retention
    (lambda: _ts(days=-7, minutes=-10), False),   # just beyond it
    (lambda: _ts(days=-400), False),
    (lambda: _ts(hours=-3), True),
    (lambda: datetime.now(UTC).isoformat(), True),  # +00:00 instead of Z
], ids=["+4min", "+6min", "+1y", "-7d+10min", "-7d-10min", "-400d", "-3h", "+00:00"])
def test_timestamp_window(post, body, stamp, ok):
    body["timestamp"] = stamp()
    if ok:
        assert_ok(post(body), accepted=3)
    else:
        error = assert_error(post(body), "ERR_INVALID_TIMESTAMP")
        assert "timestamp" in error["details"]["fields"]


@pytest.mark.parametrize("value", ["yesterday", "", "2026-13-01T00:00:00Z",
                                   "2026-01-32T00:00:00Z", "12:00", 1769776496,
                                   1769776496000, True, [], None])
def test_garbage_timestamp(post, body, value):
    body["timestamp"] = value
    error = assert_error(post(body), "ERR_INVALID_TIMESTAMP")
    assert "timestamp" in error["details"]["fields"]


@pytest.mark.parametrize("value", ["garbage", 1769776496, "+6min", "-8d"])
def test_result_timestamp_is_checked_too(post, body, value):
    body["results"][0]["timestamp"] = {"+6min": _ts(minutes=6), "-8d": _ts(days=-8)}.get(
        value, value)
    error = assert_error(post(body), "ERR_INVALID_TIMESTAMP")
    assert "results.0.timestamp" in error["details"]["fields"]


def test_timestamp_edges_exactly():
    now_ms = 1_769_776_496_000  # 2026-01-30T12:34:56Z
    oldest_ms = now_ms - 7 * 86400 * 1000

    def at(ms: int) -> str:
        return iso_utc(datetime.fromtimestamp(ms / 1000, UTC))

    assert parse_timestamp(at(now_ms + MAX_FUTURE_MS), now_ms, oldest_ms) == now_ms + 300_000
    assert isinstance(parse_timestamp(at(now_ms + MAX_FUTURE_MS + 1), now_ms, oldest_ms), str)
    assert parse_timestamp(at(oldest_ms), now_ms, oldest_ms) == oldest_ms
    assert isinstance(parse_timestamp(at(oldest_ms - 1), now_ms, oldest_ms), str)
    assert parse_timestamp("2026-01-30T12:34:56.789Z", now_ms, oldest_ms) == now_ms + 789


def test_result_timestamp_defaults_to_the_top_levels(app, client, node_headers, node,
                                                     node_probes, make_heartbeat):
    from app.extensions import get_redis
    from app.history.live_cache import read_series

    top = (datetime.now(UTC) - timedelta(minutes=2)).replace(microsecond=0)
    own = top - timedelta(seconds=30)
    body = make_heartbeat(node["id"], top, node_probes[:2])
    body["results"][1]["timestamp"] = iso_utc(own)
    assert_ok(client.post(URL, json=body, headers=node_headers), accepted=2)
    with app.app_context():
        handle = get_redis()
        first = read_series(handle.client, handle.prefix, node["id"], node_probes[0])
        second = read_series(handle.client, handle.prefix, node["id"], node_probes[1])
    assert [p.ts_ms for p in first] == [int(top.timestamp() * 1000)]
    assert [p.ts_ms for p in second] == [int(own.timestamp() * 1000)]


# --- results -------------------------------------------------------------------------------


def _results(beacon, n: int) -> list[dict]:
    base = datetime.now(UTC) - timedelta(minutes=30)
    return [{"probe_id": beacon["probes"][i % 3], "latency_ms": 1.0 + i % 7,
             "packet_loss_rate": 0, "jitter_ms": 0.1,
             "timestamp": iso_utc(base + timedelta(seconds=i))} for i in range(n)]


def test_1000_results_are_accepted(post, body, beacon):
    body["results"] = _results(beacon, 1000)
    assert_ok(post(body), accepted=1000)


def test_more_than_1000_results_are_refused(post, body, beacon):
    body["results"] = _results(beacon, 1001)
    error = assert_error(post(body), "ERR_VALIDATION")
    assert "results" in error["details"]["fields"]


@pytest.mark.parametrize("missing", ["probe_id", "latency_ms", "packet_loss_rate",
                                     "jitter_ms"])
def test_result_missing_a_required_field(post, body, missing):
    del body["results"][1][missing]
    response = post(body)
    answer = response.get_json()
    assert response.status_code == 400, answer
    assert f"results.1.{missing}" in answer["details"]["fields"]
    if missing != "probe_id":
        assert answer["code"] == "ERR_INVALID_METRICS"


@pytest.mark.parametrize("missing", ["timestamp", "latency_ms", "packet_loss_rate",
                                     "jitter_ms"])
def test_summary_fields_are_required_even_with_results(post, body, missing):
    del body[missing]
    response = post(body)
    answer = response.get_json()
    assert response.status_code == 400, answer
    assert missing in answer["details"]["fields"]


@pytest.mark.parametrize("results", ["not a list", {"probe_id": "x"}, 42])
def test_results_must_be_a_list(post, body, results):
    body["results"] = results
    error = assert_error(post(body), "ERR_VALIDATION")
    assert "results" in error["details"]["fields"]


@pytest.mark.parametrize("item", ["x", 1, None, []])
def test_each_result_must_be_an_object(post, body, item):
    body["results"][0] = item
    response = post(body)
    assert response.status_code == 400, response.get_json()
    assert any(k.startswith("results.0") for k in response.get_json()["details"]["fields"])


def test_malformed_result_probe_id_is_400(post, body):
    body["results"][0]["probe_id"] = "not-a-uuid"
    response = post(body)
    assert response.status_code == 400
    assert "results.0.probe_id" in response.get_json()["details"]["fields"]


def test_several_bad_fields_answer_err_validation_with_every_field(post, body):
    body["latency_ms"] = -5
    body["timestamp"] = "garbage"
    body["results"][2]["packet_loss_rate"] = 101
    error = assert_error(post(body), "ERR_VALIDATION")
    fields = error["details"]["fields"]
    assert {"latency_ms", "timestamp", "results.2.packet_loss_rate"} <= set(fields)
    assert all(isinstance(m, list) and m for m in fields.values())


# --- forms and counts ----------------------------------------------------------------------


def test_single_probe_form_counts_one(post, body, beacon):
    del body["results"]
    body["probe_id"] = beacon["probes"][0]
    assert_ok(post(body), accepted=1)


def test_single_probe_form_stores_the_summary_as_that_probes_point(
        app, client, node, node_headers, node_probes, make_heartbeat):
    from app.extensions import get_redis
    from app.history.live_cache import read_series

    ts = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)
    body = make_heartbeat(node["id"], ts, results=None, probe_id=node_probes[1],
                          latency_ms=23.45, packet_loss_rate=12.5, jitter_ms=1.25)
    assert_ok(client.post(URL, json=body, headers=node_headers), accepted=1)
    with app.app_context():
        handle = get_redis()
        points = read_series(handle.client, handle.prefix, node["id"], node_probes[1])
    assert len(points) == 1
    assert (points[0].ts_ms, points[0].latency_ms, points[0].packet_loss_rate,
            points[0].jitter_ms) == (int(ts.timestamp() * 1000), 23.45, 12.5, 1.25)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_results_form_counts_each_result(post, body, n):
    body["results"] = body["results"][:n]
    assert_ok(post(body), accepted=n)


@pytest.mark.parametrize("results", [[], None])
def test_the_summary_alone_is_not_counted(post, body, results):
    if results is None:
        del body["results"]
    else:
        body["results"] = results
    assert_ok(post(body), accepted=0)


# --- the answer ----------------------------------------------------------------------------


def test_answer_shape(post, body):
    before = datetime.now(UTC) - timedelta(seconds=1)
    answer = assert_ok(post(body), accepted=3)
    assert set(answer) == ANSWER_KEYS
    assert answer["status"] == "success"
    assert answer["message"] == "Heartbeat received"
    assert answer["timestamp"].endswith("Z")
    stamp = datetime.fromisoformat(answer["timestamp"].replace("Z", "+00:00"))
    assert before <= stamp <= datetime.now(UTC) + timedelta(seconds=1)
    assert isinstance(answer["accepted"], int) and not isinstance(answer["accepted"], bool)
    assert isinstance(answer["config_version"], str) and answer["config_version"]
    assert isinstance(answer["drift_detected"], bool)


def test_drift_detected(post, body):
    body.pop("config_version")
    missing = assert_ok(post(body))
    assert missing["drift_detected"] is True
    expected = missing["config_version"]

    body["config_version"] = expected + "-old"
    assert assert_ok(post(body))["drift_detected"] is True
    body["config_version"] = expected
    same = assert_ok(post(body))
    assert same["drift_detected"] is False
    assert same["config_version"] == expected


def test_answer_config_version_is_the_beacon_config_version(shared_client, post, body, beacon):
    config = shared_client.get("/api/v1/beacon/config", headers=beacon["headers"]).get_json()
    assert assert_ok(post(body))["config_version"] == config["config_version"]


# --- body problems -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["{", "{'a': 1}", "not json", '{"node_id": }', "\xff"])
def test_malformed_json_is_400_invalid_json(shared_client, beacon, text):
    response = shared_client.post(URL, data=text.encode("latin-1"),
                                  content_type="application/json",
                                  headers=beacon["headers"])
    assert_error(response, "ERR_INVALID_JSON")


@pytest.mark.parametrize("payload", ["[]", "42", '"text"', "null"])
def test_body_must_be_an_object(shared_client, beacon, payload):
    response = shared_client.post(URL, data=payload, content_type="application/json",
                                  headers=beacon["headers"])
    assert response.status_code == 400, response.get_json()
    assert set(response.get_json()) == {"code", "message", "details"}


def _node_on(app, name: str, probes: int = 1) -> tuple[str, dict, list[str]]:
    """A node (and probes) made through the services of an app built by app_factory."""
    from app.ingest.node_lookup import invalidate_node
    from app.services.nodes import create_node
    from app.services.probes import create_probe

    with app.app_context():
        node, token = create_node(name)
        ids = [str(create_probe({"node_id": node.id, "type": "TCP", "target": "192.0.2.9",
                                 "port": 1000 + i}).id) for i in range(probes)]
        invalidate_node(node.id)
        return str(node.id), {"Authorization": f"Bearer {token}"}, ids


def test_body_over_the_limit_is_413_json(app_factory, make_heartbeat):
    small = app_factory(PULSE_MAX_BODY_BYTES="2048")
    client = small.test_client()
    node_id, headers, probes = _node_on(small, "small-body")
    body = make_heartbeat(node_id, datetime.now(UTC), probes)
    assert len(json.dumps(body)) < 2048
    assert_ok(client.post(URL, json=body, headers=headers), accepted=1)

    body["results"] = body["results"] * 40
    assert len(json.dumps(body)) > 2048
    response = client.post(URL, json=body, headers=headers)
    assert_error(response, "ERR_PAYLOAD_TOO_LARGE", status=413)
    assert response.mimetype == "application/json"
    batch = client.post("/api/v1/beacon/heartbeats", json={"heartbeats": [body]},
                        headers=headers)
    assert_error(batch, "ERR_PAYLOAD_TOO_LARGE", status=413)


def test_node_rate_limit_is_429_with_retry_after(app_factory, make_heartbeat):
    limited = app_factory(PULSE_NODE_RATE_LIMIT="3/minute")
    client = limited.test_client()
    node_id, headers, probes = _node_on(limited, "limited")
    other_id, other_headers, _ = _node_on(limited, "unlimited", probes=0)
    body = make_heartbeat(node_id, datetime.now(UTC), probes)
    for _ in range(3):
        assert_ok(client.post(URL, json=body, headers=headers))
    response = client.post(URL, json=body, headers=headers)
    assert_error(response, "ERR_RATE_LIMITED", status=429)
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    # the batch endpoint counts against the same limit
    batch = client.post("/api/v1/beacon/heartbeats", json={"heartbeats": [body]},
                        headers=headers)
    assert_error(batch, "ERR_RATE_LIMITED", status=429)
    assert "Retry-After" in batch.headers
    # the limit is per node
    other = make_heartbeat(other_id, datetime.now(UTC))
    assert_ok(client.post(URL, json=other, headers=other_headers))


def test_unknown_top_level_fields_do_not_break_ingest(post, body):
    body["extra"] = {"anything": [1, 2, 3]}
    body["metadata"] = {"hostname": "h1", "ip_address": "192.0.2.1", "region": "eu"}
    body["agent_version"] = "1.2.3"
    assert_ok(post(body), accepted=3)


def test_node_id_may_be_any_uuid_spelling(post, body, beacon):
    body["node_id"] = str(uuid.UUID(beacon["id"])).upper()
    assert_ok(post(body), accepted=3)
