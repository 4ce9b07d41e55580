"""The dashboard in a real browser (SPEC §10, issue 11's Tests): sign-in, overview status,
charts holding the API's points, the live refresh, forms, CSRF, the viewer's view, and
every page local and free of console errors (checked by the `watched` fixture)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.browser.conftest import history, run_result, screenshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet(pulse):
    """Four nodes: two reporting (one with three probes and an hour of history), one
    silent for an hour (offline) and one never seen."""
    edge = pulse.node("fra-edge-1", "eu-central")
    probes = [pulse.probe(edge, 443, "web"), pulse.probe(edge, 53, "dns", "UDP"),
              pulse.probe(edge, 8443, None)]
    history(pulse, edge, probes)
    nyc = pulse.node("nyc-core-2", "us-east")
    nyc_probe = pulse.probe(nyc, 443, "web")
    pulse.beat(nyc, datetime.now(UTC), [run_result(nyc_probe["id"], 71.3, 0.0)])
    offline = pulse.node("sgp-edge-3", "ap-southeast")
    never = pulse.node("lab-spare-4", None)
    with pulse.app.app_context():
        from app.extensions import db
        from app.models import Node

        row = db.session.get(Node, __import__("uuid").UUID(offline["id"]))
        row.last_seen_at = row.first_seen_at = datetime.now(UTC) - timedelta(hours=1)
        db.session.commit()
    return {"edge": edge, "probes": probes, "nyc": nyc, "offline": offline, "never": never}


def test_sign_in_through_the_form_and_the_overview_shows_each_status(watched, fleet, pulse):
    view = watched()
    view.page.goto(pulse.base + "/matrix")
    assert "/login?next=" in view.page.url
    view.page.fill("#email", "operator@example.test")
    view.page.fill("#password", "correct horse battery")
    view.page.click("button[type=submit]")
    view.page.wait_for_url(pulse.base + "/matrix")
    view.page.goto(pulse.base + "/")
    statuses = {row.get_attribute("data-node-id"): row.get_attribute("data-status")
                for row in view.page.query_selector_all("#overview tbody tr")}
    assert statuses == {fleet["edge"]["id"]: "online", fleet["nyc"]["id"]: "online",
                        fleet["offline"]["id"]: "offline", fleet["never"]["id"]: "never"}
    assert "waiting for the first report from lab-spare-4" in view.page.inner_text("#overview")
    assert view.page.query_selector(f'tr[data-node-id="{fleet["edge"]["id"]}"] svg.spark')
    screenshot(view.page, "overview.png")


def _chart_points(page, probe_id: str) -> dict:
    return page.evaluate("""id => {
        const c = window.pulseCharts[id];
        return {t: c.smoke.data[0], median: c.smoke.data[1], min: c.smoke.data[2],
                max: c.smoke.data[3], p95: c.smoke.data[4], loss: c.loss.data[1],
                jitter: c.jitter.data[1], from: window.pulseChartData.from,
                to: window.pulseChartData.to};
    }""", probe_id)


def test_node_page_draws_each_chart_with_the_apis_points(watched, fleet, pulse):
    from playwright.sync_api import expect  # as the browser fixture imports Playwright

    view = watched("viewer")
    view.page.goto(f"{pulse.base}/nodes/{fleet['edge']['id']}")
    view.page.wait_for_selector("body[data-chart-loads='1']", state="attached")
    for probe in fleet["probes"]:
        drawn = _chart_points(view.page, probe["id"])
        api = pulse.api("GET", f"/api/v1/nodes/{fleet['edge']['id']}/metrics", role="viewer",
                        params={"probe_id": probe["id"], "from": drawn["from"],
                                "to": drawn["to"], "resolution": "raw"}).json()["points"]
        shown = [i for i, loss in enumerate(drawn["loss"]) if loss is not None]
        assert len(shown) == len(api) > 30
        for i, point in zip(shown, api, strict=True):
            ts = datetime.fromisoformat(point["timestamp"].replace("Z", "+00:00")).timestamp()
            assert drawn["t"][i] == ts
            assert drawn["median"][i] == point["latency_median_ms"]
            assert (drawn["min"][i], drawn["max"][i], drawn["p95"][i]) == (
                point["latency_min_ms"], point["latency_max_ms"], point["latency_p95_ms"])
            assert drawn["loss"][i] == point["packet_loss_rate"]
            assert drawn["jitter"][i] == point["jitter_ms"]
        # The outage is a gap (a null inside the series), never a line across it.
        gaps = [i for i, loss in enumerate(drawn["loss"]) if loss is None]
        assert gaps and all(drawn["median"][i] is None for i in gaps)
    dead = _chart_points(view.page, fleet["probes"][2]["id"])
    dead_runs = [i for i, loss in enumerate(dead["loss"]) if loss == 100.0]
    assert len(dead_runs) == 1 and dead["median"][dead_runs[0]] is None  # never 0
    for name in ("smoke", "loss", "jitter"):
        assert view.page.locator(f"#probe-{fleet['probes'][0]['id']} .{name} canvas").count() == 1
    view.page.click(f"#probe-{fleet['probes'][0]['id']} details.points summary")
    rows = view.page.locator(f"#probe-{fleet['probes'][0]['id']} details.points tbody tr")
    # The table is filled on <details>' toggle event, which fires after the click returns:
    # to_have_count waits for it (up to its timeout) and then compares exactly.
    expect(rows).to_have_count(len([x for x in _chart_points(
        view.page, fleet['probes'][0]['id'])["loss"] if x is not None]))
    view.page.click(f"#probe-{fleet['probes'][0]['id']} details.points summary")
    screenshot(view.page, "node.png")


def test_one_hour_view_updates_after_a_heartbeat_without_a_reload(watched, fleet, pulse):
    view = watched("viewer")
    view.page.goto(f"{pulse.base}/nodes/{fleet['nyc']['id']}")
    view.page.wait_for_selector("body[data-chart-loads='1']", state="attached")
    view.page.evaluate("window.notReloaded = true")
    probe_id = view.page.get_attribute("section.panel", "data-probe-id")
    before = _chart_points(view.page, probe_id)["t"]
    stamp = datetime.now(UTC).replace(microsecond=0)
    pulse.beat(fleet["nyc"], stamp, [run_result(probe_id, 64.2, 0.0)])
    view.page.wait_for_function(
        "([id, t]) => window.pulseCharts[id].smoke.data[0].includes(t)",
        arg=[probe_id, stamp.timestamp()], timeout=25_000)
    assert view.page.evaluate("window.notReloaded") is True
    assert len(_chart_points(view.page, probe_id)["t"]) > len(before)


def test_probe_with_a_bad_port_shows_the_fields_message_and_creates_nothing(watched, fleet,
                                                                            pulse):
    view = watched("operator")
    view.expected_statuses.add(400)  # the form answers 400 with the field's message
    count = len(pulse.api("GET", "/api/v1/probes", role="operator").json()["data"])
    view.page.goto(pulse.base + "/probes")
    view.page.click("#add-probe summary")
    view.page.select_option("#node_id", fleet["never"]["id"])
    view.page.fill("#target", "192.0.2.77")
    view.page.fill("#port", "70000")
    view.page.click("#add-probe button[type=submit]")
    assert view.page.inner_text("#port-error") == "must be 1-65535, got 70000"
    assert view.page.get_attribute("#port", "aria-invalid") == "true"
    assert len(pulse.api("GET", "/api/v1/probes", role="operator").json()["data"]) == count
    view.page.fill("#port", "7000")
    view.page.click("#add-probe button[type=submit]")
    assert view.page.locator("#probes").inner_text().count("192.0.2.77") == 1


def test_a_form_posted_without_its_csrf_token_is_refused(watched, pulse):
    view = watched("operator")
    view.expected_statuses.add(400)
    view.page.goto(pulse.base + "/nodes/new")
    view.page.evaluate("document.querySelectorAll('input[name=csrf_token]')"
                       ".forEach(e => e.remove())")
    view.page.fill("#node-name", "no-token-node")
    with view.page.expect_navigation() as navigation:
        view.page.click("form[action='/nodes/new'] button[type=submit]")
    assert navigation.value.status == 400
    assert "security token" in view.page.inner_text("main")
    names = [n["name"] for n in pulse.api("GET", "/api/v1/nodes").json()["data"]]
    assert "no-token-node" not in names


def test_a_viewer_sees_no_target_and_no_management_page(watched, fleet, pulse):
    view = watched("viewer")
    view.expected_statuses.add(403)
    for path in ("/", "/matrix", f"/nodes/{fleet['edge']['id']}", "/drift", "/alerts"):
        view.page.goto(pulse.base + path)
        text = view.page.content()
        assert "198.51.100.40" not in text and ":443" not in text, path
    assert view.page.locator("nav a[href='/probes']").count() == 0
    for path in ("/probes", "/nodes/new"):
        response = view.page.goto(pulse.base + path)
        assert response.status == 403
        assert "needs the operator role" in view.page.inner_text("main")


@pytest.mark.parametrize("width", [375, 1920])
def test_every_page_is_local_readable_and_error_free(watched, fleet, pulse, width):
    """No request leaves the origin and no console error on any page (the fixture checks);
    nothing but the tables' own scroll areas is wider than the window."""
    view = watched("admin", width=width)
    paths = ["/", "/matrix", "/probes", "/nodes/new", "/drift", "/alerts",
             f"/nodes/{fleet['edge']['id']}", f"/nodes/{fleet['edge']['id']}?range=24h",
             f"/nodes/{fleet['never']['id']}", f"/probes/{fleet['probes'][0]['id']}/edit"]
    for path in paths:
        response = view.page.goto(pulse.base + path)
        assert response.status == 200, path
        headers = response.headers
        assert headers["content-security-policy"].startswith("default-src 'self'")
        if path.startswith("/nodes/") and path != "/nodes/new":
            view.page.wait_for_selector("body[data-chart-loads='1']", state="attached")
        overflow = view.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, (path, overflow)
    if width == 375:
        screenshot(view.page, "node-375.png")


def test_sign_in_and_navigate_by_keyboard(watched, pulse):
    view = watched()
    view.page.goto(pulse.base + "/login")
    view.page.keyboard.type("viewer@example.test")  # the email field has focus
    view.page.keyboard.press("Tab")
    view.page.keyboard.type("correct horse battery")
    view.page.keyboard.press("Enter")
    view.page.wait_for_url(pulse.base + "/")
    view.page.keyboard.press("Tab")
    assert view.page.evaluate("document.activeElement.className") == "skip"
    view.page.keyboard.press("Enter")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and view.page.evaluate("location.hash") != "#main":
        time.sleep(0.05)
    assert view.page.evaluate("location.hash") == "#main"
