"""Reading metrics back (SPEC §5 Queries): resolutions, the Redis/database merge, live,
overview and node status."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from app.api.common import iso_utc
from app.history.aggregation import aggregate_pending_minutes
from app.history.flush import flush_pending

BEAT = "/api/v1/beacon/heartbeat"
BATCH = "/api/v1/beacon/heartbeats"
RAW_KEYS = {"timestamp", "latency_ms", "packet_loss_rate", "jitter_ms", "latency_min_ms",
            "latency_median_ms", "latency_p95_ms", "latency_max_ms", "sent", "received",
            "error"}
AGG_KEYS = (RAW_KEYS - {"error"}) | {"jitter_max_ms", "packet_loss_max", "sample_count"}
# Null where nothing was reported or received (never 0); the rest always a number.
NULLABLE = {"latency_ms", "jitter_ms", "latency_min_ms", "latency_median_ms", "latency_p95_ms",
            "latency_max_ms", "sent", "received", "jitter_max_ms"}


@pytest.fixture
def app(reset_app):
    """A fresh app for each test, without building one (tests.conftest.reset_app)."""
    return reset_app


def parse(stamp: str) -> datetime:
    assert isinstance(stamp, str) and stamp.endswith("Z"), stamp
    return datetime.fromisoformat(stamp[:-1] + "+00:00")


def check_point(point: dict, aggregated: bool) -> None:
    assert set(point) == (AGG_KEYS if aggregated else RAW_KEYS), point
    parse(point["timestamp"])
    for name in set(point) - {"timestamp", "error"}:
        value = point[name]
        if value is None and name in NULLABLE:
            continue
        assert isinstance(value, int | float) and not isinstance(value, bool), (name, value)
        assert value == round(value, 2), (name, value)  # answered to 2 decimals
    assert point.get("error") is None or point["error"].startswith("ERR_")


@pytest.fixture
def now():
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def metrics(client, viewer, node):
    def get(**args):
        query = {k: iso_utc(v) if isinstance(v, datetime) else v for k, v in args.items()}
        response = client.get(f"/api/v1/nodes/{node['id']}/metrics?{urlencode(query)}",
                              headers=viewer.headers)
        assert response.status_code == 200, response.get_json()
        answer = response.get_json()
        for point in answer["points"]:
            check_point(point, answer["resolution"] != "raw")
        return answer

    return get


@pytest.fixture
def shared_metrics(shared_client, shared_personas, shared_beacon):
    """`metrics` on the module's app, for cases that need no points of their own."""
    def get(**args):
        query = {k: iso_utc(v) if isinstance(v, datetime) else v for k, v in args.items()}
        response = shared_client.get(
            f"/api/v1/nodes/{shared_beacon['id']}/metrics?{urlencode(query)}",
            headers=shared_personas["viewer"].headers)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    return get


@pytest.fixture
def history(app, client, node, node_headers, node_probes, make_heartbeat, now):
    """Points of probe 0 at 2 h, 61 min (database only), 59 and 10 min ago (database and
    live), and 1 min ago (live only, not flushed); each with a node summary."""
    stamps = {"2h": now - timedelta(hours=2), "61m": now - timedelta(minutes=61),
              "59m": now - timedelta(minutes=59), "10m": now - timedelta(minutes=10),
              "1m": now - timedelta(minutes=1)}
    latency = {"2h": 20.0, "61m": 61.0, "59m": 59.0, "10m": 10.0, "1m": 1.0}
    items = [make_heartbeat(node["id"], stamps[k], node_probes[:1], latency=latency[k],
                            loss=2.5, jitter=0.25)
             for k in ("2h", "61m", "59m", "10m")]
    answer = client.post(BATCH, json={"heartbeats": items}, headers=node_headers).get_json()
    assert answer["accepted"] == 4, answer
    with app.app_context():
        assert flush_pending().inserted == 4
        aggregate_pending_minutes()
    last = make_heartbeat(node["id"], stamps["1m"], node_probes[:1], latency=1.0, loss=2.5,
                          jitter=0.25)
    assert client.post(BEAT, json=last, headers=node_headers).status_code == 200
    return {"stamps": stamps, "latency": latency, "probe": node_probes[0]}


def stamps_of(points) -> list[datetime]:
    return [parse(p["timestamp"]) for p in points]


# --- raw -------------------------------------------------------------------------------------


def test_raw_merges_database_and_live_without_doubles(metrics, history, now):
    answer = metrics(probe_id=history["probe"], resolution="raw",
                     **{"from": now - timedelta(hours=3), "to": now})
    assert answer["resolution"] == "raw"
    assert answer["probe_id"] == history["probe"]
    s = history["stamps"]
    assert stamps_of(answer["points"]) == [s["2h"], s["61m"], s["59m"], s["10m"], s["1m"]]
    assert [p["latency_ms"] for p in answer["points"]] == [20.0, 61.0, 59.0, 10.0, 1.0]
    assert {p["packet_loss_rate"] for p in answer["points"]} == {2.5}
    assert {p["jitter_ms"] for p in answer["points"]} == {0.25}


def test_raw_range_bounds_are_honoured(metrics, history, now):
    s = history["stamps"]
    answer = metrics(probe_id=history["probe"], resolution="raw",
                     **{"from": s["61m"], "to": s["10m"]})
    assert stamps_of(answer["points"]) == [s["61m"], s["59m"], s["10m"]]
    answer = metrics(probe_id=history["probe"], resolution="raw",
                     **{"from": now - timedelta(minutes=30), "to": now})
    assert stamps_of(answer["points"]) == [s["10m"], s["1m"]]


def test_node_summary_merges_database_and_live(metrics, history, now):
    """Reported summaries in the live hour; before them, the mean of the probes' minutes."""
    answer = metrics(resolution="raw", **{"from": now - timedelta(hours=3), "to": now})
    assert answer["probe_id"] is None and answer["probe"] is None
    s = history["stamps"]
    assert stamps_of(answer["points"]) == [s["2h"].replace(second=0), s["61m"].replace(second=0),
                                           s["59m"], s["10m"], s["1m"]]
    assert [p["latency_ms"] for p in answer["points"]] == [20.0, 61.0, 59.0, 10.0, 1.0]


def test_live_hour_of_the_node_summary(metrics, history, now):
    answer = metrics(**{"from": now - timedelta(minutes=30), "to": now})
    assert answer["resolution"] == "raw"
    assert stamps_of(answer["points"]) == [history["stamps"]["10m"], history["stamps"]["1m"]]


def test_default_range_is_the_last_hour(metrics, history):
    answer = metrics(probe_id=history["probe"])
    assert answer["resolution"] == "raw"
    s = history["stamps"]
    assert stamps_of(answer["points"]) == [s["59m"], s["10m"], s["1m"]]


# --- resolutions -----------------------------------------------------------------------------


@pytest.mark.parametrize("span,expected", [
    (timedelta(minutes=30), "raw"),
    (timedelta(hours=1), "raw"),
    (timedelta(hours=1, seconds=1), "1m"),
    (timedelta(days=2), "1m"),
    (timedelta(days=2, seconds=1), "1h"),
    (timedelta(days=30), "1h"),
])
def test_auto_picks_the_resolution_by_span(shared_metrics, now, span, expected):
    assert shared_metrics(resolution="auto", **{"from": now - span, "to": now})[
        "resolution"] == expected
    assert shared_metrics(**{"from": now - span, "to": now})["resolution"] == expected


@pytest.mark.parametrize("resolution", ["raw", "1m", "1h"])
def test_explicit_resolution_is_kept(shared_metrics, now, resolution):
    answer = shared_metrics(resolution=resolution,
                            **{"from": now - timedelta(days=3), "to": now})
    assert answer["resolution"] == resolution
    assert answer["points"] == []


def test_minute_resolution(metrics, history, now):
    answer = metrics(probe_id=history["probe"], resolution="1m",
                     **{"from": now - timedelta(hours=3), "to": now})
    s = history["stamps"]
    minutes = [t.replace(second=0) for t in (s["2h"], s["61m"], s["59m"], s["10m"], s["1m"])]
    assert stamps_of(answer["points"]) == minutes
    for point, key in zip(answer["points"], ("2h", "61m", "59m", "10m", "1m"), strict=True):
        lat = history["latency"][key]
        assert point["latency_ms"] == point["latency_min_ms"] == point["latency_max_ms"] == lat
        assert point["packet_loss_rate"] == point["packet_loss_max"] == 2.5
        assert point["jitter_ms"] == point["jitter_max_ms"] == 0.25
        assert point["sample_count"] == 1


def test_hour_resolution_is_computed_from_minutes(app, client, node, node_headers,
                                                   node_probes, make_heartbeat, metrics, now):
    hour = (now - timedelta(hours=5)).replace(minute=0, second=0)
    items = [make_heartbeat(node["id"], hour + timedelta(minutes=m, seconds=s),
                            node_probes[:1], latency=lat, loss=loss, jitter=jit)
             for m, s, lat, loss, jit in ((5, 0, 10.0, 0.0, 1.0), (5, 30, 20.0, 10.0, 2.0),
                                          (42, 0, 60.0, 50.0, 7.0))]
    assert client.post(BATCH, json={"heartbeats": items},
                       headers=node_headers).get_json()["accepted"] == 3
    with app.app_context():
        flush_pending()
        assert aggregate_pending_minutes() == 2
    answer = metrics(probe_id=node_probes[0], resolution="1h",
                     **{"from": hour - timedelta(hours=1), "to": hour + timedelta(hours=2)})
    [point] = answer["points"]
    assert parse(point["timestamp"]) == hour
    assert point["sample_count"] == 3
    assert point["latency_ms"] == pytest.approx(30.0)       # (10 + 20 + 60) / 3
    assert point["latency_min_ms"] == 10.0 and point["latency_max_ms"] == 60.0
    assert point["packet_loss_rate"] == pytest.approx(20.0)
    assert point["packet_loss_max"] == 50.0
    assert point["jitter_ms"] == pytest.approx(10 / 3, abs=0.01)
    assert point["jitter_max_ms"] == 7.0


def test_minute_and_hour_of_the_node_summary(metrics, history, now):
    for resolution in ("1m", "1h"):
        answer = metrics(resolution=resolution, **{"from": now - timedelta(hours=3), "to": now})
        assert answer["points"], resolution
        assert sum(p["sample_count"] for p in answer["points"]) == 5


@pytest.mark.parametrize("args", [{"resolution": "5m"}, {"from": "yesterday"},
                                  {"to": "2026-01-30T12:00:00"}])
def test_bad_query_arguments_are_400(shared_client, shared_personas, shared_beacon, args):
    response = shared_client.get(
        f"/api/v1/nodes/{shared_beacon['id']}/metrics?{urlencode(args)}",
        headers=shared_personas["viewer"].headers)
    assert response.status_code == 400, response.get_json()
    assert set(response.get_json()) == {"code", "message", "details"}


def test_from_after_to_is_400(client, viewer, node, now):
    query = urlencode({"from": iso_utc(now), "to": iso_utc(now - timedelta(hours=1))})
    response = client.get(f"/api/v1/nodes/{node['id']}/metrics?{query}", headers=viewer.headers)
    assert response.status_code == 400


def test_a_two_year_chart_is_one_read_and_longer_ranges_are_400(metrics, history, client,
                                                                viewer, node, now):
    """SPEC §12: the hourly rollups are kept two years, and a two-year chart reads them."""
    answer = metrics(probe_id=history["probe"], **{"from": now - timedelta(days=731),
                                                   "to": now})
    assert answer["resolution"] == "1h" and answer["points"]
    query = urlencode({"from": iso_utc(now - timedelta(days=732)), "to": iso_utc(now)})
    response = client.get(f"/api/v1/nodes/{node['id']}/metrics?{query}", headers=viewer.headers)
    assert response.status_code == 400
    assert response.get_json()["code"] == "ERR_INVALID_TIMESTAMP"
    assert "731 days" in response.get_json()["message"]


def test_probe_of_another_node_is_404(client, viewer, node, other_probe):
    response = client.get(f"/api/v1/nodes/{node['id']}/metrics?probe_id={other_probe['id']}",
                          headers=viewer.headers)
    assert response.status_code == 404, response.get_json()
    assert response.get_json()["code"] == "ERR_PROBE_NOT_FOUND"


@pytest.mark.parametrize("path", ["metrics", "live"])
def test_unknown_node_is_404(shared_client, shared_personas, path):
    for node_id in (str(uuid.uuid4()), "not-a-uuid"):
        response = shared_client.get(f"/api/v1/nodes/{node_id}/{path}",
                                     headers=shared_personas["viewer"].headers)
        assert response.status_code == 404, response.get_json()
        assert response.get_json()["code"] == "ERR_NODE_NOT_FOUND"


# --- live ------------------------------------------------------------------------------------


def test_live_returns_the_summary_and_every_probe(client, viewer, node, node_probes, history):
    response = client.get(f"/api/v1/nodes/{node['id']}/live", headers=viewer.headers)
    answer = response.get_json()
    assert response.status_code == 200, answer
    assert set(answer) == {"node_id", "summary", "probes"}
    assert answer["node_id"] == node["id"]
    s = history["stamps"]
    assert stamps_of(answer["summary"]) == [s["59m"], s["10m"], s["1m"]]
    assert [p["probe_id"] for p in answer["probes"]] == node_probes
    by_probe = {p["probe_id"]: p["points"] for p in answer["probes"]}
    assert stamps_of(by_probe[node_probes[0]]) == [s["59m"], s["10m"], s["1m"]]
    assert [p["latency_ms"] for p in by_probe[node_probes[0]]] == [59.0, 10.0, 1.0]
    assert by_probe[node_probes[1]] == [] and by_probe[node_probes[2]] == []
    for point in answer["summary"] + by_probe[node_probes[0]]:
        check_point(point, aggregated=False)


def test_live_of_a_silent_node_is_empty(client, viewer, node, node_probes):
    answer = client.get(f"/api/v1/nodes/{node['id']}/live", headers=viewer.headers).get_json()
    assert answer["summary"] == []
    assert [p["points"] for p in answer["probes"]] == [[], [], []]


# --- overview and status ---------------------------------------------------------------------


def test_status_is_never_before_and_online_after_a_heartbeat(client, viewer, node,
                                                             node_headers, make_heartbeat):
    def status():
        one = client.get(f"/api/v1/nodes/{node['id']}", headers=viewer.headers).get_json()
        listed = client.get("/api/v1/nodes", headers=viewer.headers).get_json()["data"]
        [same] = [n for n in listed if n["id"] == node["id"]]
        assert same["status"] == one["status"]
        return one

    before = status()
    assert before["status"] == "never"
    assert before["last_seen_at"] is None
    assert before["uptime_24h"] is None  # never seen: no uptime to speak of

    response = client.post(BEAT, json=make_heartbeat(node["id"], datetime.now(UTC)),
                           headers=node_headers)
    assert response.status_code == 200
    after = status()  # no flush yet: Redis knows
    assert after["status"] == "online"
    assert abs(parse(after["last_seen_at"]) - datetime.now(UTC)) < timedelta(seconds=10)
    assert after["uptime_24h"] > 0


def test_status_is_online_after_the_flush_too(app, client, viewer, node, node_headers,
                                              make_heartbeat):
    client.post(BEAT, json=make_heartbeat(node["id"], datetime.now(UTC)), headers=node_headers)
    with app.app_context():
        flush_pending()
    answer = client.get(f"/api/v1/nodes/{node['id']}", headers=viewer.headers).get_json()
    assert answer["status"] == "online"


def test_overview(client, viewer, node, other_node, node_headers, node_probes,
                  make_heartbeat):
    body = make_heartbeat(node["id"], datetime.now(UTC), node_probes,
                          latency_ms=12.5, packet_loss_rate=1.5, jitter_ms=0.75)
    assert client.post(BEAT, json=body, headers=node_headers).status_code == 200
    response = client.get("/api/v1/overview", headers=viewer.headers)
    answer = response.get_json()
    assert response.status_code == 200, answer
    by_id = {item["node_id"]: item for item in answer["data"]}
    item = by_id[node["id"]]
    assert set(item) == {"node_id", "name", "status", "last_seen_at", "latest", "uptime_24h"}
    assert item["name"] == node["name"]
    assert item["status"] == "online"
    assert abs(parse(item["last_seen_at"]) - datetime.now(UTC)) < timedelta(seconds=10)
    assert item["latest"] == {"latency_ms": 12.5, "packet_loss_rate": 1.5, "jitter_ms": 0.75}
    assert isinstance(item["uptime_24h"], float) and 0 < item["uptime_24h"] <= 100

    silent = by_id[other_node["id"]]
    assert silent["status"] == "never"
    assert silent["latest"] is None
    assert silent["last_seen_at"] is None
    assert silent["uptime_24h"] is None


def test_overview_latest_is_the_newest_summary(client, viewer, node, node_headers,
                                               node_probes, make_heartbeat, now):
    for minutes, latency in ((3, 30.0), (1, 10.0), (2, 20.0)):  # sent out of order
        client.post(BEAT, json=make_heartbeat(node["id"], now - timedelta(minutes=minutes),
                                              node_probes, latency_ms=latency),
                    headers=node_headers)
    [item] = client.get("/api/v1/overview", headers=viewer.headers).get_json()["data"]
    assert item["latest"]["latency_ms"] == 10.0


# --- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/nodes/{id}/metrics", "/api/v1/nodes/{id}/live",
                                  "/api/v1/overview"])
def test_viewer_reads_anonymous_and_node_tokens_do_not(client, viewer, operator, node, path):
    url = path.format(id=node["id"])
    assert client.get(url, headers=viewer.headers).status_code == 200
    assert client.get(url, headers=operator.headers).status_code == 200
    for headers in ({}, {"Authorization": f"Bearer {node['token']}"},
                    {"Authorization": "Bearer nonsense"}):
        response = client.get(url, headers=headers)
        assert response.status_code == 401, response.get_json()
        assert response.get_json()["code"] == "ERR_UNAUTHORIZED"


@pytest.mark.parametrize("now", [datetime(2026, 1, 30, 0, 0, 30, tzinfo=UTC),
                                 datetime(2026, 1, 30, 12, 34, 56, tzinfo=UTC),
                                 datetime(2026, 1, 30, 23, 59, 59, tzinfo=UTC)])
def test_uptime_window_is_the_last_1440_minutes_with_the_current_one(app, node, now):
    from app.extensions import get_redis
    from app.redis_keys import presence_key
    from app.services.presence import mark_present, uptime_24h

    with app.app_context():
        handle = get_redis()
        pipe = handle.client.pipeline()
        for ago in (0, 1, 1439, 2000):   # 0, 1 and 1,439 minutes ago are inside
            mark_present(pipe, handle.prefix, node["id"], now - timedelta(minutes=ago))
        pipe.execute()
        assert uptime_24h([node["id"]], now=now) == {node["id"]: round(300 / 1440, 2)}
        mark_present(handle.client, handle.prefix, node["id"], now - timedelta(minutes=1440))
        assert uptime_24h([node["id"]], now=now) == {node["id"]: round(300 / 1440, 2)}
        # every minute of both days set: the window holds exactly 1,440 of them
        for day in (now, now - timedelta(days=1)):
            handle.client.set(presence_key(handle.prefix, node["id"], day.strftime("%Y%m%d")),
                              b"\xff" * 180)
        assert uptime_24h([node["id"]], now=now) == {node["id"]: 100.0}


def test_node_summary_has_no_doubles_when_results_carry_their_own_timestamps(
        app, client, node, node_headers, node_probes, make_heartbeat, metrics, now):
    """A Beacon stamps each result with its run's start, not the heartbeat's time: the live
    hour of the summary is the summaries in Redis, not also the probe rows around them."""
    beats = [now - timedelta(minutes=m) for m in (90, 30, 5)]
    items = []
    for beat in beats:
        item = make_heartbeat(node["id"], beat, node_probes, latency=[10.0, 20.0, 30.0],
                              latency_ms=20.0)
        for i, result in enumerate(item["results"]):
            result["timestamp"] = iso_utc(beat - timedelta(seconds=20 + i))
        items.append(item)
    assert client.post(BATCH, json={"heartbeats": items},
                       headers=node_headers).get_json()["accepted"] == 9
    with app.app_context():
        flush_pending()
        aggregate_pending_minutes()

    raw = metrics(resolution="raw", **{"from": now - timedelta(hours=2), "to": now})
    live_part = [t for t in stamps_of(raw["points"]) if t >= now - timedelta(hours=1)]
    assert live_part == beats[1:]
    assert len(stamps_of(raw["points"])) == len(set(stamps_of(raw["points"])))

    minutes = metrics(resolution="1m", **{"from": now - timedelta(hours=2), "to": now})
    recent = [p for p in minutes["points"]
              if parse(p["timestamp"]) >= now - timedelta(minutes=59)]
    assert [p["sample_count"] for p in recent] == [1, 1]
    assert [p["latency_ms"] for p in recent] == [20.0, 20.0]
