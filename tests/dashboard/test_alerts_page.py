"""/alerts (SPEC §10, §11): what is firing, the history, and the operator's forms; the
overview's mark of a node with a firing alert; the node chart's alert spans."""

from __future__ import annotations

import re

import pytest

from tests.dashboard.conftest import page_csrf
from tests.support.alerting import (
    MINUTE,
    create_rule,
    evaluate_each_minute,
    minute_start,
    post_minutes,
)

SECRET = "hook-s3cret-path"


@pytest.fixture
def firing(app, client, operator, node, node_probes, node_headers):
    """A loss rule firing on the node's first probe."""
    rule = create_rule(client, operator.headers)
    start = minute_start(5)
    post_minutes(client, node["id"], node_headers, node_probes, start, node_probes[0],
                 [50, 50, 50])
    evaluate_each_minute(app, start, 3)
    return {"rule": rule, "probe": node_probes[0], "start": start}


def field_error(html: str, field: str) -> str | None:
    found = re.search(rf'id="{field}-error" role="alert">([^<]*)<', html)
    return found.group(1) if found else None


def test_viewer_sees_firing_alerts_and_history_but_no_forms(signed_in, firing, node):
    html = signed_in("viewer").get("/alerts").get_data(as_text=True)
    assert 'data-state="firing"' in html and "loss over 5%" in html
    assert f"node-a / TCP #{firing['probe'][:8]}" in html  # the label, never the target
    assert "192.0.2.1" not in html
    assert "pending → firing" in html
    assert "Add a rule" not in html and "Add a channel" not in html


def test_viewer_cannot_post_and_a_post_needs_the_csrf_token(signed_in):
    viewer = signed_in("viewer")
    token = page_csrf(viewer, "/alerts")
    assert viewer.post("/alerts/channels", data={"csrf_token": token, "name": "x",
                                                 "kind": "webhook",
                                                 "url": "https://e.com"}).status_code == 403
    operator = signed_in("operator")
    assert operator.post("/alerts/silences", data={"comment": "x"}).status_code == 400


def test_operator_adds_a_channel_a_rule_and_a_silence(app, signed_in):
    browser = signed_in("operator")
    token = page_csrf(browser, "/alerts")
    r = browser.post("/alerts/channels", data={
        "csrf_token": token, "name": "ops hook", "kind": "webhook",
        "url": f"https://hooks.example.com/{SECRET}"})
    assert r.status_code == 302
    html = browser.get("/alerts").get_data(as_text=True)
    assert "https://hooks.example.com" in html and SECRET not in html
    channel_id = re.search(r'data-channel-id="([^"]+)"', html).group(1)
    r = browser.post("/alerts/rules", data={
        "csrf_token": token, "name": "slow path", "metric": "latency_ms", "op": ">",
        "threshold": "150", "for_minutes": "3", "mode": "static", "severity": "critical",
        "channel_ids": channel_id, "enabled": "on"})
    assert r.status_code == 302, r.get_data(as_text=True)[-1500:]
    r = browser.post("/alerts/silences", data={
        "csrf_token": token, "starts_at": "2026-01-01T00:00", "ends_at": "2099-01-01T00:00",
        "comment": "move to the new rack"})
    assert r.status_code == 302
    html = browser.get("/alerts").get_data(as_text=True)
    assert re.search(r"latency_ms &gt; 150\s+for 3 min", html), html
    assert "move to the new rack" in html
    rules = browser.get("/api/v1/alert-rules")  # the API takes bearers, never the session
    assert rules.status_code == 401


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"threshold": "abc"}, "threshold", "must be a number"),
    ({"mode": "baseline", "metric": "packet_loss_rate"}, "mode", "baseline is only for"),
    ({"recovery_threshold": "500"}, "recovery_threshold", "firing side"),
    ({"for_minutes": "0"}, "for_minutes", "1-1440"),
    ({"op": ""}, "op", "required"),
])
def test_a_refused_rule_shows_the_apis_message_beside_the_field(signed_in, changes, field,
                                                               message):
    browser = signed_in("operator")
    data = {"csrf_token": page_csrf(browser, "/alerts"), "name": "r", "metric": "latency_ms",
            "op": ">", "threshold": "150", "for_minutes": "3", **changes}
    r = browser.post("/alerts/rules", data=data)
    assert r.status_code == 400
    assert message in (field_error(r.get_data(as_text=True), field) or "")


def test_a_refused_channel_url_is_not_sent_back(signed_in):
    browser = signed_in("operator")
    r = browser.post("/alerts/channels", data={
        "csrf_token": page_csrf(browser, "/alerts"), "name": "x", "kind": "webhook",
        "url": f"ftp://example.com/{SECRET}"})
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert field_error(html, "url") and SECRET not in html


def test_overview_marks_a_node_with_a_firing_alert(signed_in, firing, node, other_node):
    html = signed_in("viewer").get("/").get_data(as_text=True)
    row = re.search(rf'data-node-id="{node["id"]}".*?</tr>', html, re.S).group(0)
    assert "1 firing" in row
    other = re.search(rf'data-node-id="{other_node["id"]}".*?</tr>', html, re.S).group(0)
    assert "firing" not in other


def test_node_chart_data_carries_the_alert_span(signed_in, firing, node, node_probes):
    data = signed_in("viewer").get(f"/nodes/{node['id']}/data?range=1h").get_json()
    by_probe = {p["id"]: p["alerts"] for p in data["probes"]}
    (span,) = by_probe[firing["probe"]]
    assert span["rule"] == "loss over 5%" and span["firing"] is True
    assert span["from"] == int((firing["start"] + MINUTE).timestamp() + 30)
    assert by_probe[node_probes[1]] == []
