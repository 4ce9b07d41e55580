"""Overview, matrix and node data against what the API answers for the same nodes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from app.dashboard.charts import columnar, sparkline
from app.history.aggregation import aggregate_pending_minutes
from app.history.columns import from_points
from app.history.flush import flush_pending


@pytest.fixture
def beat(client, make_heartbeat):
    """beat(node, probe_ids, ts, **values) posts one heartbeat with the node's token."""

    def post(node, probe_ids, ts, **values):
        body = make_heartbeat(node["id"], ts, probe_ids, **values)
        response = client.post("/api/v1/beacon/heartbeat", json=body,
                               headers={"Authorization": f"Bearer {node['token']}"})
        assert response.status_code == 200, response.get_json()

    return post


def _rows(html: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(
        r'<tr data-node-id="([^"]+)" data-status="([^"]+)">', html)}


def test_overview_shows_status_latest_values_and_waiting(signed_in, node, other_node,
                                                         node_probes, beat, client, viewer):
    beat(node, node_probes, datetime.now(UTC), latency=12.5, loss=2.0, jitter=0.7)
    html = signed_in("viewer").get("/").get_data(as_text=True)
    assert _rows(html) == {node["id"]: "online", other_node["id"]: "never"}
    assert "12.5 ms" in html and "2.0 %" in html
    assert "waiting for the first report from node-b" in html
    api = {n["id"]: n for n in client.get("/api/v1/nodes", headers=viewer.headers)
           .get_json()["data"]}
    assert f'{api[node["id"]]["uptime_24h"]:.1f} %' in html
    assert "<polyline" in html  # the live-hour sparkline


def test_overview_filters_sorts_and_pages(app, signed_in, client, operator, beat):
    nodes = []
    for i in range(105):
        created = client.post("/api/v1/nodes", json={"name": f"n-{i:03d}",
                                                     "region": "eu" if i % 2 else "us"},
                              headers=operator.headers).get_json()
        nodes.append(created)
    beat(nodes[7], [], datetime.now(UTC))
    browser = signed_in("viewer")
    first = _rows(browser.get("/").get_data(as_text=True))
    assert len(first) == 100 and nodes[0]["id"] in first and nodes[104]["id"] not in first
    second = browser.get("/?page=2").get_data(as_text=True)
    assert list(_rows(second)) == [n["id"] for n in nodes[100:]]
    online = _rows(browser.get("/?status=online").get_data(as_text=True))
    assert online == {nodes[7]["id"]: "online"}
    us = _rows(browser.get("/?q=US").get_data(as_text=True))
    assert len(us) == 53
    by_status = list(_rows(browser.get("/?sort=status").get_data(as_text=True)))
    assert by_status[0] == nodes[7]["id"]
    descending = list(_rows(browser.get("/?sort=name&dir=desc").get_data(as_text=True)))
    assert descending[0] == nodes[104]["id"]


def test_overview_is_not_a_query_per_node(app, signed_in, client, operator):
    for i in range(30):
        client.post("/api/v1/nodes", json={"name": f"q-{i}"}, headers=operator.headers)
    browser = signed_in("viewer")
    browser.get("/")  # session and principal cache warm
    statements = []
    with app.app_context():
        from app.extensions import db

        engine = db.engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert browser.get("/").status_code == 200
        overview_count = len(statements)
        statements.clear()
        assert browser.get("/matrix").status_code == 200
        matrix_count = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert overview_count <= 2, statements
    assert matrix_count <= 4


def test_matrix_heads_columns_by_target_for_operators_and_by_label_for_viewers(
        signed_in, client, operator, node, other_node, beat):
    ids = {}
    for owner in (node, other_node):
        for port, name in ((443, "web"), (53, None)):
            created = client.post("/api/v1/probes", json={
                "node_id": owner["id"], "type": "TCP", "target": "198.51.100.20",
                "port": port, "name": name}, headers=operator.headers).get_json()
            ids[(owner["id"], port)] = created["id"]
    beat(node, [ids[(node["id"], 443)], ids[(node["id"], 53)]], datetime.now(UTC),
         latency=[5.0, 9.0], loss=0.0)
    operator_html = signed_in("operator").get("/matrix").get_data(as_text=True)
    assert "198.51.100.20:443" in operator_html and "198.51.100.20:53" in operator_html
    viewer_html = signed_in("viewer").get("/matrix").get_data(as_text=True)
    assert "198.51.100.20" not in viewer_html and ":443" not in viewer_html
    assert "</span> web</th>" in viewer_html and "TCP #1" in viewer_html
    assert f"#probe-{ids[(node['id'], 443)]}" in viewer_html
    assert "5.0 ms" in viewer_html and "loss-0" in viewer_html


def test_viewer_node_page_and_data_carry_no_target(signed_in, node, probe):
    browser = signed_in("viewer")
    page = browser.get(f"/nodes/{node['id']}").get_data(as_text=True)
    # The port as a number of its own: ids are random hex, and "3443" inside one is no port.
    assert "example.com" not in page and not re.search(r"\b443\b", page)
    data = browser.get(f"/nodes/{node['id']}/data").get_json()
    assert "target" not in data["probes"][0] and "port" not in data["probes"][0]
    assert data["probes"][0]["label"] == f"TCP #{probe['id'][:8]}"
    operator_data = signed_in("operator").get(f"/nodes/{node['id']}/data").get_json()
    assert operator_data["probes"][0]["target"] == "example.com"


@pytest.mark.parametrize("range_name, resolution", [("1h", "raw"), ("24h", "1m"),
                                                   ("7d", "1h")])
def test_node_data_holds_the_apis_points(app, signed_in, client, viewer, node, node_probes,
                                         beat, range_name, resolution):
    """The chart's columns (stored rows read as columns, the live tail as points) hold the
    points the API answers: stored minutes and rollups from before the live hour, folded
    minutes and raw runs inside it, the dead run included."""
    now = datetime.now(UTC).replace(microsecond=0)
    for minutes_ago, latency, loss in ((26 * 60, 9.0, 0.0), (5 * 60 + 7, 14.0, 100.0),
                                       (3 * 60, 13.0, 2.0)):
        beat(node, node_probes, now - timedelta(minutes=minutes_ago), latency=latency, loss=loss)
    with app.app_context():
        flush_pending()
        aggregate_pending_minutes()  # minutes, and the hours they complete
    for minutes_ago, latency, loss in ((30, 10.0, 0.0), (20, 11.0, 100.0), (5, 12.0, 4.0)):
        beat(node, node_probes, now - timedelta(minutes=minutes_ago), latency=latency, loss=loss)
    data = signed_in("viewer").get(f"/nodes/{node['id']}/data?range={range_name}").get_json()
    assert data["resolution"] == resolution
    for probe in data["probes"]:
        api = client.get(f"/api/v1/nodes/{node['id']}/metrics", query_string={
            "probe_id": probe["id"], "from": data["from"], "to": data["to"],
            "resolution": resolution}, headers=viewer.headers).get_json()
        series = probe["series"]
        shown = [i for i, t in enumerate(series["t"]) if series["loss"][i] is not None]
        assert len(shown) == len(api["points"]) == probe["count"] > 0
        assert len(shown) >= {"raw": 3, "1m": 5, "1h": 4}[resolution]  # hours: 3 + live
        for i, point in zip(shown, api["points"], strict=True):
            stamp = datetime.fromisoformat(point["timestamp"].replace("Z", "+00:00"))
            assert series["t"][i] == stamp.timestamp()
            assert series["loss"][i] == point["packet_loss_rate"]
            assert series["mean"][i] == point["latency_ms"]
            assert series["max"][i] == point["latency_max_ms"]
            assert series["p95"][i] == (None if point["packet_loss_rate"] >= 100
                                        else point["latency_p95_ms"])
        if resolution == "raw":  # the dead run: no latency at all, never 0
            dead = [i for i in shown if series["loss"][i] == 100.0]
            assert dead and all(series["median"][i] is None for i in dead)


def test_columnar_breaks_the_line_at_an_outage_and_never_draws_a_dead_run():
    points = [{"ts_ms": 0, "latency_ms": 5.0, "packet_loss_rate": 0.0, "jitter_ms": 1.0},
              {"ts_ms": 60_000, "latency_ms": 0.0, "packet_loss_rate": 100.0, "jitter_ms": 0.0},
              {"ts_ms": 600_000, "latency_ms": 6.0, "latency_median_ms": 5.5,
               "packet_loss_rate": 2.0, "jitter_ms": 1.0}]
    series = columnar(from_points(points), 60)
    assert series["t"] == [0, 60, 120, 600]
    assert series["median"] == [5.0, None, None, 5.5]
    assert series["loss"] == [0.0, 100.0, None, 2.0]
    assert series["jitter"] == [1.0, None, None, 1.0]


def test_sparkline_breaks_at_missing_minutes_and_marks_dead_ones():
    minute = 60_000
    spark = sparkline([(0, 5.0, 0.0), (minute, 6.0, 0.0), (5 * minute, 4.0, 0.0),
                       (6 * minute, None, 100.0), (7 * minute, 5.0, 10.0)])
    assert len(spark.lines) == 3 and len(spark.dead) == 1 and spark.lossy
    assert spark.peak_ms == 6.0


def test_node_page_links_its_sla_report_as_the_api_answers_it(app, signed_in, client, viewer,
                                                              node, node_probes, beat):
    from app.history.flush import flush_pending

    beat(node, node_probes, datetime.now(UTC) - timedelta(minutes=5), latency=10.0, loss=0.0)
    with app.app_context():
        flush_pending()  # the report reads what is persisted
    browser = signed_in("viewer")
    page = browser.get(f"/nodes/{node['id']}").get_data(as_text=True)
    assert f'href="/nodes/{node["id"]}/sla"' in page
    report = browser.get(f"/nodes/{node['id']}/sla")
    html = report.get_data(as_text=True)
    assert report.status_code == 200 and "SLA report" in html
    api = client.get(f"/api/v1/reports/sla?node_id={node['id']}",
                     headers=viewer.headers).get_json()["data"]
    assert [row["runs_with_data"] for row in api] == [1, 1, 1]
    for row in api:
        assert f"<th scope=\"row\">{row['probe']}</th>" in html
    assert "192.0.2.1" not in html                  # labels for a viewer, never targets
    download = browser.get(f"/nodes/{node['id']}/sla?format=csv")
    assert download.mimetype == "text/csv"
    assert download.get_data(as_text=True).splitlines()[0].startswith("node,probe,type")
    assert client.get(f"/nodes/{node['id']}/sla").status_code == 302  # not signed in
