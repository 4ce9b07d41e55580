"""Probe create, list, get, replace, change and delete (SPEC §5 Probes)."""

from __future__ import annotations

import re
import uuid

import pytest

from app.extensions import db, get_redis
from app.redis_keys import node_state_key
from app.services.probes import node_config_version
from tests.support.api import assert_error

URL = "/api/v1/probes"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def new_probe(client, persona, node, **fields):
    data = {"node_id": node["id"], "type": "TCP", "target": "192.0.2.1", "port": 80}
    data.update(fields)
    return client.post(URL, json=data, headers=persona.headers)


def created(response) -> dict:
    assert response.status_code == 201, response.get_json()
    return response.get_json()



def test_create_returns_the_probe(client, operator, node):
    probe = created(new_probe(client, operator, node, type="udp", target="dns.example",
                              port=53, interval_seconds=120, count=5, timeout_seconds=2,
                              name="resolver", enabled=False))
    uuid.UUID(probe["id"])
    assert {k: probe[k] for k in ("node_id", "type", "target", "port", "interval_seconds",
                                  "count", "timeout_seconds", "name", "enabled", "source")} == {
        "node_id": node["id"], "type": "UDP", "target": "dns.example", "port": 53,
        "interval_seconds": 120, "count": 5, "timeout_seconds": 2, "name": "resolver",
        "enabled": False, "source": "api"}
    assert ISO_Z.match(probe["created_at"]) and ISO_Z.match(probe["updated_at"])


def test_get_returns_what_create_returned(client, operator, probe):
    response = client.get(f"{URL}/{probe['id']}", headers=operator.headers)
    assert response.status_code == 200
    assert response.get_json() == probe


@pytest.mark.parametrize("same", [
    {},                                   # identical
    {"type": "tcp"},                      # type compared after upper-casing
    {"interval_seconds": 300, "count": 1, "name": "again"},  # other settings do not matter
])
def test_duplicate_node_type_target_port_conflicts(client, operator, node, same):
    created(new_probe(client, operator, node))
    response = new_probe(client, operator, node, **same)
    assert_error(response, 409, "ERR_PROBE_EXISTS")
    assert response.get_json()["details"] == {"type": "TCP", "target": "192.0.2.1", "port": 80}


@pytest.mark.parametrize("differs", [{"type": "UDP"}, {"port": 81}, {"target": "192.0.2.2"}])
def test_same_probe_differing_in_one_key_field_is_fine(client, operator, node, differs):
    created(new_probe(client, operator, node))
    created(new_probe(client, operator, node, **differs))


def test_same_probe_on_another_node_is_fine(client, operator, node, other_node):
    created(new_probe(client, operator, node))
    created(new_probe(client, operator, other_node))


def test_unknown_node_is_400(client, operator, node):
    response = new_probe(client, operator, {"id": UNKNOWN_ID})
    assert_error(response, 400, "ERR_NODE_NOT_FOUND")


# -- list -----------------------------------------------------------------------------------

@pytest.fixture
def several(client, operator, node, other_node):
    specs = [(node, "TCP", 80), (node, "UDP", 53), (node, "TCP", 443),
             (other_node, "UDP", 53), (other_node, "TCP", 22)]
    return [created(new_probe(client, operator, n, type=t, port=p)) for n, t, p in specs]


def list_probes(client, persona, **params):
    response = client.get(URL, query_string=params, headers=persona.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_list_envelope(client, operator, several):
    payload = list_probes(client, operator)
    assert set(payload) == {"data", "pagination"}
    assert [p["id"] for p in payload["data"]] == [p["id"] for p in several]
    assert payload["pagination"] == {"page": 1, "per_page": 50, "total": 5, "pages": 1}


def test_list_empty(client, operator):
    assert list_probes(client, operator) == {
        "data": [], "pagination": {"page": 1, "per_page": 50, "total": 0, "pages": 0}}


def test_list_filters(client, operator, node, other_node, several):
    by_node = list_probes(client, operator, node_id=node["id"])
    assert {p["id"] for p in by_node["data"]} == {p["id"] for p in several[:3]}
    assert by_node["pagination"]["total"] == 3
    udp = list_probes(client, operator, type="udp")
    assert {p["id"] for p in udp["data"]} == {several[1]["id"], several[3]["id"]}
    both = list_probes(client, operator, node_id=other_node["id"], type="TCP")
    assert [p["id"] for p in both["data"]] == [several[4]["id"]]
    assert list_probes(client, operator, node_id=UNKNOWN_ID)["data"] == []


def test_list_pages(client, operator, several):
    first = list_probes(client, operator, per_page=2)
    third = list_probes(client, operator, per_page=2, page=3)
    assert [p["id"] for p in first["data"]] == [p["id"] for p in several[:2]]
    assert [p["id"] for p in third["data"]] == [several[4]["id"]]
    assert third["pagination"] == {"page": 3, "per_page": 2, "total": 5, "pages": 3}
    beyond = list_probes(client, operator, per_page=2, page=9)
    assert beyond == {"data": [], "pagination": {"page": 9, "per_page": 2, "total": 5,
                                                 "pages": 3}}


@pytest.mark.parametrize(("params", "code"), [
    ({"node_id": "nope"}, "ERR_INVALID_NODE_ID"),
    ({"type": "ICMP"}, "ERR_INVALID_PROBE_TYPE"),
    ({"page": 0}, "ERR_VALIDATION"),
    ({"per_page": 501}, "ERR_VALIDATION"),
])
def test_list_bad_filters(client, operator, params, code):
    response = client.get(URL, query_string=params, headers=operator.headers)
    assert_error(response, 400, code)
    assert set(response.get_json()["details"]["fields"]) == set(params)


# -- get / put / patch ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared_node(shared_client, shared_personas):
    response = shared_client.post("/api/v1/nodes", json={"name": "crud-shared"},
                                  headers=shared_personas["operator"].headers)
    return response.get_json()


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
@pytest.mark.parametrize("probe_id", [UNKNOWN_ID, "not-a-uuid", "123", "%20"])
def test_unknown_or_malformed_id_is_404(shared_client, shared_personas, shared_node, method,
                                        probe_id):
    client, operator = shared_client, shared_personas["operator"]
    body = {"node_id": shared_node["id"], "type": "TCP", "target": "192.0.2.1", "port": 80}
    kwargs = {"put": {"json": body}, "patch": {"json": {"port": 81}}}.get(method, {})
    query = "?confirm=true" if method == "delete" else ""
    response = getattr(client, method)(f"{URL}/{probe_id}{query}", headers=operator.headers,
                                       **kwargs)
    assert_error(response, 404, "ERR_PROBE_NOT_FOUND")


def test_put_replaces_every_setting(client, operator, node, probe):
    replacement = {"node_id": node["id"], "type": "udp", "target": "2001:db8::5", "port": 5353}
    response = client.put(f"{URL}/{probe['id']}", json=replacement, headers=operator.headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == probe["id"]
    assert (body["type"], body["target"], body["port"]) == ("UDP", "2001:db8::5", 5353)
    # Omitted settings go back to their defaults: PUT is a replacement.
    assert (body["interval_seconds"], body["count"], body["timeout_seconds"]) == (60, 10, 5)
    assert body["created_at"] == probe["created_at"]
    assert client.get(f"{URL}/{probe['id']}", headers=operator.headers).get_json() == body


def test_put_needs_the_whole_probe(client, operator, probe):
    response = client.put(f"{URL}/{probe['id']}", json={"port": 81}, headers=operator.headers)
    assert_error(response, 400, "ERR_VALIDATION")
    assert set(response.get_json()["details"]["fields"]) == {"node_id", "type", "target"}


def test_put_cannot_move_a_probe_to_another_node(client, operator, probe, other_node):
    replacement = {"node_id": other_node["id"], "type": "TCP", "target": "example.com",
                   "port": 443}
    response = client.put(f"{URL}/{probe['id']}", json=replacement, headers=operator.headers)
    assert_error(response, 400, "ERR_VALIDATION")
    assert "node_id" in response.get_json()["details"]["fields"]


def test_patch_changes_only_what_is_given(client, operator, probe):
    response = client.patch(f"{URL}/{probe['id']}", json={"count": 20, "enabled": False},
                            headers=operator.headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["count"], body["enabled"]) == (20, False)
    unchanged = {k: v for k, v in probe.items() if k not in ("count", "enabled", "updated_at")}
    assert {k: body[k] for k in unchanged} == unchanged
    assert body["updated_at"] >= probe["updated_at"]


def test_patch_type_is_upper_cased(client, operator, probe):
    response = client.patch(f"{URL}/{probe['id']}", json={"type": "udp"},
                            headers=operator.headers)
    assert response.get_json()["type"] == "UDP"


def test_patch_empty_body_changes_nothing(client, operator, probe):
    response = client.patch(f"{URL}/{probe['id']}", json={}, headers=operator.headers)
    assert response.status_code == 200
    assert {k: v for k, v in response.get_json().items() if k != "updated_at"} == {
        k: v for k, v in probe.items() if k != "updated_at"}


@pytest.mark.parametrize("method", ["put", "patch"])
def test_change_into_an_existing_probe_conflicts(client, operator, node, method):
    first = created(new_probe(client, operator, node, port=80))
    second = created(new_probe(client, operator, node, port=81))
    body = {"port": 80}
    if method == "put":
        body = {"node_id": node["id"], "type": "TCP", "target": "192.0.2.1", "port": 80}
    response = getattr(client, method)(f"{URL}/{second['id']}", json=body,
                                       headers=operator.headers)
    assert_error(response, 409, "ERR_PROBE_EXISTS")
    unchanged = client.get(f"{URL}/{second['id']}", headers=operator.headers).get_json()
    assert unchanged["port"] == 81
    assert first["id"] != second["id"]


def test_put_onto_itself_is_not_a_conflict(client, operator, node, probe):
    same = {k: probe[k] for k in ("node_id", "type", "target", "port")}
    response = client.put(f"{URL}/{probe['id']}", json=same, headers=operator.headers)
    assert response.status_code == 200, response.get_json()


# -- delete -----------------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["", "?confirm=false", "?confirm=no", "?confirmed=true"])
def test_delete_needs_confirm(client, operator, probe, query):
    response = client.delete(f"{URL}/{probe['id']}{query}", headers=operator.headers)
    assert_error(response, 400, "ERR_CONFIRMATION_REQUIRED")
    assert client.get(f"{URL}/{probe['id']}", headers=operator.headers).status_code == 200


def test_delete_with_confirm(client, operator, probe):
    response = client.delete(f"{URL}/{probe['id']}?confirm=true", headers=operator.headers)
    assert response.status_code == 204
    assert response.data == b""
    assert_error(client.get(f"{URL}/{probe['id']}", headers=operator.headers), 404,
                 "ERR_PROBE_NOT_FOUND")
    again = client.delete(f"{URL}/{probe['id']}?confirm=true", headers=operator.headers)
    assert_error(again, 404, "ERR_PROBE_NOT_FOUND")


def test_delete_frees_the_key_for_a_new_probe(client, operator, node, probe):
    client.delete(f"{URL}/{probe['id']}?confirm=true", headers=operator.headers)
    created(new_probe(client, operator, node, type=probe["type"], target=probe["target"],
                      port=probe["port"]))


# -- config version and the ingest cache ------------------------------------------------------

def test_every_change_to_the_enabled_set_changes_the_config_version(app, client, operator,
                                                                     node):
    node_id = uuid.UUID(node["id"])

    def version():
        with app.app_context():
            db.session.remove()
            return node_config_version(node_id)

    seen = [version()]
    probe = created(new_probe(client, operator, node))
    seen.append(version())
    client.patch(f"{URL}/{probe['id']}", json={"count": 3}, headers=operator.headers)
    seen.append(version())
    client.patch(f"{URL}/{probe['id']}", json={"enabled": False}, headers=operator.headers)
    seen.append(version())
    assert seen[-1] == seen[0]  # no enabled probe again: the empty set's version
    client.patch(f"{URL}/{probe['id']}", json={"enabled": True}, headers=operator.headers)
    seen.append(version())
    assert seen[-1] == seen[2]
    client.delete(f"{URL}/{probe['id']}?confirm=true", headers=operator.headers)
    seen.append(version())
    assert len(set(seen[:3])) == 3 and seen[-1] == seen[0]


@pytest.mark.parametrize("change", ["create", "put", "patch", "delete"])
def test_probe_changes_drop_the_cached_node_state(app, client, operator, node, probe, change):
    with app.app_context():
        handle = get_redis()
        key = node_state_key(handle.prefix, node["id"])
        handle.client.hset(key, mapping={"config_version": "stale", "probes": ""})
    url = f"{URL}/{probe['id']}"
    if change == "create":
        created(new_probe(client, operator, node, port=8080))
    elif change == "put":
        body = {k: probe[k] for k in ("node_id", "type", "target")} | {"port": 8081}
        assert client.put(url, json=body, headers=operator.headers).status_code == 200
    elif change == "patch":
        assert client.patch(url, json={"port": 8082}, headers=operator.headers).status_code == 200
    else:
        assert client.delete(url + "?confirm=true", headers=operator.headers).status_code == 204
    with app.app_context():
        assert not get_redis().client.exists(key)


def test_list_page_serialiser_matches_the_schema(app, client, operator, node):
    """The list's direct serialiser (probe_json) and ProbeSchema give the same JSON."""
    from app.api.probes.schemas import ProbeSchema, probe_json
    from app.services.probes import get_probe

    created = client.post("/api/v1/probes", json={
        "node_id": node["id"], "type": "udp", "target": "Example.COM", "port": 7,
        "name": "echo"}, headers=operator.headers).get_json()
    listed = client.get("/api/v1/probes", headers=operator.headers).get_json()["data"]
    assert listed == [created]
    with app.app_context():
        probe = get_probe(created["id"])
        assert probe_json(probe) == ProbeSchema().dump(probe)
