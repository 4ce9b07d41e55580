"""Probe, node and drift forms: the API's rules and messages next to the field."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.dashboard.conftest import page_csrf


def _probe_count(app) -> int:
    from app.extensions import db
    from app.models import Probe

    with app.app_context():
        return db.session.query(Probe).count()


def _form(node_id, **changes) -> dict:
    data = {"node_id": node_id, "type": "TCP", "target": "192.0.2.10", "port": "443",
            "interval_seconds": "60", "count": "10", "timeout_seconds": "5", "enabled": "on"}
    data.update(changes)
    return data


@pytest.mark.parametrize("field, value", [
    ("port", "70000"), ("port", "0"), ("port", "abc"), ("target", "256.1.1.1"),
    ("target", "bad_host!"), ("type", "ICMP"), ("interval_seconds", "59"),
    ("count", "101"), ("timeout_seconds", "31"),
])
def test_a_bad_field_shows_the_apis_message_beside_it_and_creates_nothing(
        app, client, signed_in, operator, node, field, value):
    browser = signed_in("operator")
    before = _probe_count(app)
    response = browser.post("/probes", data=_form(node["id"], **{field: value},
                                                  csrf_token=page_csrf(browser)))
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    shown = re.search(rf'<p class="field-error" id="{field}-error" role="alert">([^<]*)</p>',
                      html)
    assert shown, html[-2000:]
    body = {"node_id": node["id"], "type": "TCP", "target": "192.0.2.10", "port": 443}
    body[field] = int(value) if value.isdigit() else value
    api = client.post("/api/v1/probes", json=body, headers=operator.headers).get_json()
    import html as html_lib

    assert html_lib.unescape(shown.group(1)) in api["details"].get("fields", {}).get(
        field, [api["message"]]) or html_lib.unescape(shown.group(1)) in api["message"]
    assert _probe_count(app) == before
    assert f'id="{field}" ' in html and 'aria-invalid="true"' in html


def test_add_edit_disable_and_delete_a_probe(app, signed_in, node):
    browser = signed_in("operator")
    token = page_csrf(browser)
    created = browser.post("/probes", data=_form(node["id"], name="edge", csrf_token=token))
    assert created.status_code == 302
    from app.extensions import db
    from app.models import Probe

    with app.app_context():
        probe = db.session.query(Probe).one()
        probe_id, assert_name = str(probe.id), probe.name
    assert assert_name == "edge"
    listing = browser.get("/probes").get_data(as_text=True)
    assert "192.0.2.10" in listing and probe_id in listing
    edited = browser.post(f"/probes/{probe_id}/edit",
                          data=_form(node["id"], port="8443", name="edge2", csrf_token=token))
    assert edited.status_code == 302
    bad_edit = browser.post(f"/probes/{probe_id}/edit",
                            data=_form(node["id"], port="99999", csrf_token=token))
    assert bad_edit.status_code == 400 and "must be 1-65535" in bad_edit.get_data(as_text=True)
    assert browser.post(f"/probes/{probe_id}/enabled",
                        data={"enabled": "false", "csrf_token": token}).status_code == 302
    with app.app_context():
        probe = db.session.get(Probe, probe.id)
        assert (probe.port, probe.name, probe.enabled) == (8443, "edge2", False)
    confirm = browser.get(f"/probes/{probe_id}/delete")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.get_data(as_text=True)
    assert browser.post(f"/probes/{probe_id}/delete",
                        data={"csrf_token": token}).status_code == 302
    assert _probe_count(app) == 0


def test_duplicate_probe_shows_the_conflict(app, signed_in, probe, node):
    browser = signed_in("operator")
    response = browser.post("/probes", data=_form(
        node["id"], target="example.com", port="443", csrf_token=page_csrf(browser)))
    assert response.status_code == 400
    assert "already has a TCP probe for example.com:443" in response.get_data(as_text=True)


def test_new_node_shows_its_token_once_and_a_working_beacon_yaml(signed_in, client):
    browser = signed_in("operator")
    response = browser.post("/nodes/new", data={"name": "edge-9", "region": "eu",
                                                "csrf_token": page_csrf(browser)})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    text = re.search(r'<textarea id="beacon-yaml"[^>]*>([^<]*)</textarea>', html).group(1)
    import html as html_lib

    config = yaml.safe_load(html_lib.unescape(text))
    assert config["node_name"] == "edge-9" and config["pulse_server"] == "http://localhost"
    answer = client.get("/api/v1/beacon/config",
                        headers={"Authorization": f"Bearer {config['token']}"})
    assert answer.status_code == 200 and answer.get_json()["node_id"] == config["node_id"]
    again = browser.post("/nodes/new", data={"name": "edge-9", "csrf_token": page_csrf(browser)})
    assert again.status_code == 400 and "exists" in again.get_data(as_text=True)


def test_enrollment_token_gives_a_register_line_that_works(signed_in, client):
    browser = signed_in("operator")
    response = browser.post("/nodes/new/enrollment", data={
        "name": "auto-1", "expires_in_seconds": "600", "uses": "1",
        "csrf_token": page_csrf(browser)})
    assert response.status_code == 200
    line = re.search(r'<textarea id="register-line"[^>]*>([^<]*)</textarea>',
                     response.get_data(as_text=True)).group(1)
    token = re.search(r"--enroll-token (\S+)", line).group(1)
    assert "beacon register --server http://localhost" in line and "--name auto-1" in line
    registered = client.post("/api/v1/beacon/register", json={"enroll_token": token,
                                                              "name": "auto-1"})
    assert registered.status_code == 201


def test_operator_sets_the_expected_drift_version(signed_in, client, operator, viewer):
    client.put("/api/drift/expected/shop/prod", json={"expected_version": "v1"},
               headers=operator.headers)
    client.post("/api/drift/heartbeat/shop/prod", json={
        "instance_id": "i-1", "config_version": "v1", "health": "healthy"},
        headers=operator.headers)
    browser = signed_in("operator")
    response = browser.post("/drift/expected", data={
        "app": "shop", "profile": "prod", "expected_version": "v2",
        "csrf_token": page_csrf(browser)})
    assert response.status_code == 302
    page = browser.get("/drift").get_data(as_text=True)
    assert "<strong>v2</strong>" in page and "drifted" in page
    viewer_page = signed_in("viewer").get("/drift").get_data(as_text=True)
    assert "i-1" in viewer_page and "Set expected version" not in viewer_page
