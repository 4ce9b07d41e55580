"""Alerting in a real browser: the node chart shades a firing alert's span and says it in
words, /alerts lists it, the overview marks the node — no console error, nothing fetched
from elsewhere (the `watched` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.browser.conftest import run_result, screenshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def alerting(pulse):
    node = pulse.node("ams-edge-9", "eu-west")
    probe = pulse.probe(node, 443, "web")
    rule = pulse.api("POST", "/api/v1/alert-rules", json={
        "name": "loss over 5%", "metric": "packet_loss_rate", "op": ">", "threshold": 5,
        "for_minutes": 2, "severity": "critical"})
    assert rule.status_code == 201, rule.text
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=6)
    for minute, loss in enumerate([0, 0, 40, 40, 40]):
        pulse.beat(node, start + timedelta(minutes=minute, seconds=10),
                   [run_result(probe["id"], 20.0, loss)])
    from worker.tasks import evaluate_alerts

    with pulse.app.app_context():
        for minute in range(5):
            evaluate_alerts(now=start + timedelta(minutes=minute, seconds=30))
    return {"node": node, "probe": probe}


def test_the_node_chart_shades_the_alert_and_the_pages_list_it(watched, alerting, pulse):
    view = watched("viewer")
    view.page.goto(f"{pulse.base}/nodes/{alerting['node']['id']}")
    view.page.wait_for_selector("body[data-chart-loads='1']", state="attached")
    note = view.page.locator(f"#probe-{alerting['probe']['id']} .alert-spans")
    assert "loss over 5% (critical" in note.inner_text() and "firing" in note.inner_text()
    spans = view.page.evaluate("id => window.pulseCharts[id].data.alerts",
                               alerting["probe"]["id"])
    assert len(spans) == 1 and spans[0]["firing"] is True
    view.page.goto(f"{pulse.base}/alerts")
    assert view.page.locator("#open-alerts tr[data-state='firing']").count() == 1
    screenshot(view.page, "alerts.png")
    view.page.goto(f"{pulse.base}/")
    row = view.page.locator(f"tr[data-node-id='{alerting['node']['id']}']")
    assert "1 firing" in row.inner_text()
