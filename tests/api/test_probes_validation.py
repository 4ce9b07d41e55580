"""Probe input rules (SPEC §5 Probes): every bound at -1, edge and +1, types, targets.

These tables run on one app per module (`shared_app`): a refused request writes nothing,
and every accepted one uses a target of its own, so no test depends on another.
"""

from __future__ import annotations

import uuid

import pytest

from app.extensions import db
from app.models import Probe
from tests.support.api import assert_error

URL = "/api/v1/probes"

# field -> (low, high, own error code); bounds are inclusive.
BOUNDS = {
    "port": (1, 65535, "ERR_INVALID_PORT"),
    "interval_seconds": (60, 300, "ERR_INVALID_INTERVAL"),
    "count": (1, 100, "ERR_INVALID_COUNT"),
    "timeout_seconds": (1, 30, "ERR_INVALID_TIMEOUT"),
}

BOUND_CASES = [
    pytest.param(field, value, ok, id=f"{field}={value}")
    for field, (low, high, _) in BOUNDS.items()
    for value, ok in ((low - 1, False), (low, True), (high, True), (high + 1, False))
]


@pytest.fixture(scope="module")
def operator(shared_personas):
    return shared_personas["operator"]


@pytest.fixture(scope="module")
def node(shared_client, operator):
    response = shared_client.post("/api/v1/nodes", json={"name": "validation-node"},
                                  headers=operator.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def client(shared_client):
    return shared_client


@pytest.fixture
def app(shared_app):
    return shared_app


@pytest.fixture
def probe(client, operator, node):
    response = create(client, operator, node, target=unique_host())
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def unique_host() -> str:
    return f"h-{uuid.uuid4().hex[:12]}.example"


def body(node, **overrides):
    data = {"node_id": node["id"], "type": "TCP", "target": unique_host(), "port": 80}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not ...}


def create(client, persona, node, **overrides):
    return client.post(URL, json=body(node, **overrides), headers=persona.headers)



@pytest.mark.parametrize(("field", "value", "ok"), BOUND_CASES)
def test_bounds_on_create(client, operator, node, field, value, ok):
    response = create(client, operator, node, **{field: value})
    if ok:
        assert response.status_code == 201, response.get_json()
        assert response.get_json()[field] == value
    else:
        assert_error(response, 400, BOUNDS[field][2], field)
        assert "must be" in response.get_json()["message"]


@pytest.mark.parametrize(("field", "value", "ok"), BOUND_CASES)
def test_bounds_on_patch(client, operator, probe, field, value, ok):
    response = client.patch(f"{URL}/{probe['id']}", json={field: value}, headers=operator.headers)
    if ok:
        assert response.status_code == 200, response.get_json()
        assert response.get_json()[field] == value
    else:
        assert_error(response, 400, BOUNDS[field][2], field)


@pytest.mark.parametrize("field", sorted(BOUNDS))
@pytest.mark.parametrize("value", ["80", 80.5, True, None, [80], {"v": 80}])
def test_wrong_type_reports_the_fields_own_code(client, operator, node, field, value):
    response = create(client, operator, node, **{field: value})
    assert_error(response, 400, BOUNDS[field][2], field)


def test_defaults(client, operator, node):
    response = create(client, operator, node)
    assert response.status_code == 201, response.get_json()
    probe = response.get_json()
    assert (probe["interval_seconds"], probe["count"], probe["timeout_seconds"]) == (60, 10, 5)
    assert probe["enabled"] is True
    assert probe["source"] == "api"
    assert probe["name"] is None


@pytest.mark.parametrize("given", ["TCP", "tcp", "Tcp", "UDP", "udp", "uDp"])
def test_type_any_case_stored_upper(app, client, operator, node, given):
    response = create(client, operator, node, type=given)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["type"] == given.upper()

    with app.app_context():
        stored = db.session.get(Probe, uuid.UUID(response.get_json()["id"]))
        assert stored.type == given.upper()


@pytest.mark.parametrize("given", ["ICMP", "tcp_ping", "", "T CP", 6, None, ["TCP"]])
def test_bad_type(client, operator, node, given):
    assert_error(create(client, operator, node, type=given), 400, "ERR_INVALID_PROBE_TYPE", "type")


def test_missing_type(client, operator, node):
    assert_error(create(client, operator, node, type=...), 400, "ERR_INVALID_PROBE_TYPE", "type")


def test_missing_port(client, operator, node):
    assert_error(create(client, operator, node, port=...), 400, "ERR_INVALID_PORT", "port")


GOOD_TARGETS = [
    "192.0.2.1", "0.0.0.0", "255.255.255.255", "::1", "2001:db8::1",
    "2001:0db8:0000:0000:0000:0000:0000:0001", "::ffff:192.0.2.1", "fe80::1%eth0",
    "localhost", "example.com", "EXAMPLE.com", "a.b", "xn--bcher-kva.example",
    "my-host.example.net", "1host.example", "host.1a", "a" * 63 + ".example",
    "0-0.example", ".".join(["a" * 63] * 3) + "." + "b" * 61,  # 253 characters
]

BAD_TARGETS = [
    "256.1.1.1", "1.2.3.4.5", "1.2.3", "192.168.1.999", "example.123", "01.02.03.004",
    "2001:db8::1::1", "2001:db8:::1", "gggg::1",
    "", " ", "-example.com", "example-.com", "exa_mple.com", "ex ample.com", "example..com",
    ".example.com", "example.com.", "a" * 64 + ".example", "héllo.example", "example.com/path",
    "http://example.com", "example.com:80", "*.example.com", "exa\nmple.com", "exa\n.com",
    ".".join(["a" * 63] * 3) + "." + "b" * 62,  # 254 characters
    "fe80::1%" + "x" * 300, "fe80::1%eth 0", "fe80::1%eth0\nx",
]


CANONICAL = {"EXAMPLE.com": "example.com", "2001:0db8:0000:0000:0000:0000:0000:0001":
             "2001:db8::1"}


@pytest.mark.parametrize(("port", "target"), list(enumerate(GOOD_TARGETS, start=1000)),
                         ids=GOOD_TARGETS)
def test_good_targets(client, operator, node, port, target):
    response = create(client, operator, node, target=target, port=port)
    assert response.status_code == 201, (target, response.get_json())
    assert response.get_json()["target"] == CANONICAL.get(target, target)


@pytest.mark.parametrize(("first", "again"), [
    ("Case-Test.Example", "case-test.example"),
    ("2001:db8:0:0:0:0:0:77", "2001:DB8::77"),
    ("::ffff:192.0.2.9", "::ffff:c000:209"),
    ("  spaced.example ", "spaced.example"),
])
def test_one_target_spelled_two_ways_is_a_duplicate(client, operator, node, first, again):
    assert create(client, operator, node, target=first, port=7).status_code == 201
    assert_error(create(client, operator, node, target=again, port=7), 409, "ERR_PROBE_EXISTS")


@pytest.mark.parametrize("target", BAD_TARGETS, ids=lambda t: repr(t)[:40])
def test_bad_targets(client, operator, node, target):
    assert_error(create(client, operator, node, target=target), 400, "ERR_INVALID_TARGET", "target")


@pytest.mark.parametrize("target", [80, None, ["example.com"], {"host": "example.com"}])
def test_target_wrong_type(client, operator, node, target):
    assert_error(create(client, operator, node, target=target), 400, "ERR_INVALID_TARGET", "target")


def test_several_bad_fields_answer_err_validation(client, operator, node):
    response = create(client, operator, node, port=0, count=101, type="ICMP", target="256.1.1.1")
    assert_error(response, 400, "ERR_VALIDATION")
    fields = response.get_json()["details"]["fields"]
    assert set(fields) == {"port", "count", "type", "target"}
    assert all(isinstance(msgs, list) and msgs and all(isinstance(m, str) for m in msgs)
               for msgs in fields.values())


def test_one_bad_field_lists_it_in_details(client, operator, node):
    response = create(client, operator, node, port=70000)
    assert_error(response, 400, "ERR_INVALID_PORT")
    assert response.get_json()["details"]["fields"] == {"port": [
        "must be 1-65535, got 70000"]}


def test_empty_body_lists_every_required_field(client, operator):
    response = client.post(URL, json={}, headers=operator.headers)
    assert_error(response, 400, "ERR_VALIDATION")
    assert set(response.get_json()["details"]["fields"]) == {"node_id", "type", "target", "port"}


def test_unknown_field_is_refused(client, operator, node):
    response = create(client, operator, node, colour="blue")
    assert_error(response, 400, "ERR_VALIDATION", "colour")


@pytest.mark.parametrize("node_id", ["not-a-uuid", 12, None])
def test_malformed_node_id(client, operator, node, node_id):
    assert_error(create(client, operator, node, node_id=node_id), 400, "ERR_INVALID_NODE_ID",
                 "node_id")


def test_unknown_node(client, operator, node):
    response = create(client, operator, node, node_id="00000000-0000-4000-8000-000000000000")
    assert_error(response, 400, "ERR_NODE_NOT_FOUND")


@pytest.mark.parametrize("enabled", ["true", 1, None])
def test_enabled_must_be_a_json_boolean(client, operator, node, enabled):
    assert_error(create(client, operator, node, enabled=enabled), 400, "ERR_VALIDATION",
                 "enabled")


def test_name_too_long(client, operator, node):
    assert_error(create(client, operator, node, name="n" * 256), 400, "ERR_VALIDATION", "name")


def test_put_validates_like_create(client, operator, node, probe):
    response = client.put(f"{URL}/{probe['id']}", json=body(node, interval_seconds=59),
                          headers=operator.headers)
    assert_error(response, 400, "ERR_INVALID_INTERVAL", "interval_seconds")
