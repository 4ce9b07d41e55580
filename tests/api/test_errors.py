"""Every error status answers {"code", "message", "details"} as JSON, never an HTML page."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Node
from tests.support.api import assert_error

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


# Most cases here write nothing, so they share one app per module (see conftest.shared_app);
# the 413, 500 and 503 cases build apps of their own.

@pytest.fixture
def client(shared_client):
    return shared_client


@pytest.fixture
def operator(shared_personas):
    return shared_personas["operator"]


@pytest.fixture
def viewer(shared_personas):
    return shared_personas["viewer"]


@pytest.fixture(scope="module")
def node(shared_client, shared_personas):
    response = shared_client.post("/api/v1/nodes", json={"name": "errors-node"},
                                  headers=shared_personas["operator"].headers)
    assert response.status_code == 201
    return response.get_json()



# -- 400 --------------------------------------------------------------------------------------

def test_400_validation(client, operator, node):
    response = client.post("/api/v1/probes", headers=operator.headers,
                           json={"node_id": node["id"], "type": "TCP", "target": "x.example",
                                 "port": 0})
    payload = assert_error(response, 400, "ERR_INVALID_PORT")
    assert payload["details"] == {"fields": {"port": ["must be 1-65535, got 0"]}}


def test_400_validation_not_422(client, operator):
    # flask-smorest's own status for invalid input is 422; ours is 400.
    response = client.post("/api/v1/nodes", json={"name": ""}, headers=operator.headers)
    assert_error(response, 400, "ERR_INVALID_NAME", field="name")


@pytest.mark.parametrize("raw", [b"{", b'{"name": "a",}', b"nul", b"\xff\xfe", b"{'a': 1}"])
def test_400_malformed_json(client, operator, raw):
    response = client.post("/api/v1/nodes", data=raw, content_type="application/json",
                           headers=operator.headers)
    assert_error(response, 400, "ERR_INVALID_JSON")


@pytest.mark.parametrize("raw", [b"[]", b'"node"', b"42", b"null"])
def test_400_json_that_is_not_an_object(client, operator, raw):
    response = client.post("/api/v1/nodes", data=raw, content_type="application/json",
                           headers=operator.headers)
    assert_error(response, 400, "ERR_INVALID_JSON")


def test_400_malformed_json_on_login(client):
    response = client.post("/api/v1/auth/login", data=b"{", content_type="application/json")
    assert_error(response, 400, "ERR_INVALID_JSON")


# -- 401 / 403 --------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ", "Bearer garbage",
                                    "Basic dXNlcjpwYXNz", "Token abc"])
def test_401(client, header):
    headers = {"Authorization": header} if header is not None else {}
    response = client.get("/api/v1/nodes", headers=headers)
    assert_error(response, 401, "ERR_UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_403(client, viewer):
    assert_error(client.get("/api/v1/probes", headers=viewer.headers), 403, "ERR_FORBIDDEN")


# -- 404 --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/nope", "/api/v1/nope", "/api/v1/nodes/x/y/z",
                                  "/api/v1/probes/", "/api/v1/nodes/", "/static/x.js"])
def test_404_unknown_route(client, operator, path):
    assert_error(client.get(path, headers=operator.headers), 404, "ERR_NOT_FOUND")


def test_404_unknown_route_for_a_write(client):
    response = client.post("/api/v1/nope", json={})
    assert_error(response, 404, "ERR_NOT_FOUND")


def test_404_unknown_resources(client, operator):
    assert_error(client.get(f"/api/v1/probes/{UNKNOWN_ID}", headers=operator.headers), 404,
                 "ERR_PROBE_NOT_FOUND")
    assert_error(client.get(f"/api/v1/nodes/{UNKNOWN_ID}", headers=operator.headers), 404,
                 "ERR_NODE_NOT_FOUND")


# -- 405 --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [
    ("delete", "/api/v1/nodes"), ("put", "/api/v1/probes"), ("get", "/api/v1/auth/login"),
    ("post", "/healthz"), ("patch", "/api/v1/users"),
])
def test_405(client, operator, method, path):
    response = getattr(client, method)(path, headers=operator.headers)
    assert_error(response, 405, "ERR_METHOD_NOT_ALLOWED")
    assert response.headers.get("Allow")


# -- 409 --------------------------------------------------------------------------------------

def test_409(client, operator, node):
    response = client.post("/api/v1/nodes", json={"name": node["name"]}, headers=operator.headers)
    payload = assert_error(response, 409, "ERR_NODE_EXISTS")
    assert payload["details"] == {"name": node["name"]}


# -- 413 --------------------------------------------------------------------------------------

@pytest.fixture
def small_body_app(app_factory):
    return app_factory(PULSE_MAX_BODY_BYTES="1024")


def test_413_body_over_the_limit(small_body_app, operator):
    client = small_body_app.test_client()
    headers = operator.headers
    big = {"name": "n", "labels": {"pad": "x" * 2000}}
    assert_error(client.post("/api/v1/nodes", json=big, headers=headers), 413,
                 "ERR_PAYLOAD_TOO_LARGE")
    small = {"name": "n", "labels": {"pad": "x" * 250, "pad2": "x" * 250}}
    assert client.post("/api/v1/nodes", json=small, headers=headers).status_code == 201


def test_413_before_authentication_is_still_json(small_body_app):
    client = small_body_app.test_client()
    response = client.post("/api/v1/auth/login", json={"email": "a@b.c", "password": "x" * 4096})
    assert_error(response, 413, "ERR_PAYLOAD_TOO_LARGE")


def test_413_default_limit_is_8_mib(shared_app):
    assert shared_app.config["PULSE_MAX_BODY_BYTES"] == 8 * 1024 * 1024
    assert shared_app.config["MAX_CONTENT_LENGTH"] == 8 * 1024 * 1024


# -- 415 --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [
    ("post", "/api/v1/nodes"), ("post", "/api/v1/probes"), ("post", "/api/v1/auth/login"),
    ("patch", f"/api/v1/probes/{UNKNOWN_ID}"), ("put", f"/api/v1/probes/{UNKNOWN_ID}"),
])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
def test_415_non_json_write(client, operator, method, path, content_type):
    response = getattr(client, method)(path, data=b'{"name": "n"}', content_type=content_type,
                                       headers=operator.headers)
    assert_error(response, 415, "ERR_UNSUPPORTED_MEDIA_TYPE")


def test_json_with_charset_is_json(client, operator):
    response = client.post("/api/v1/nodes", data=b'{"name": "charset"}', headers=operator.headers,
                           content_type="application/json; charset=utf-8")
    assert response.status_code == 201, response.get_json()


# -- 500 --------------------------------------------------------------------------------------

@pytest.fixture
def failing_app(app_factory):
    """An app with a throwaway route that writes a node, flushes it, then fails."""
    failing = app_factory()
    seen = {}

    @failing.post("/_test/boom")
    def boom():
        node = Node(name="half-written", labels={}, metadata_={}, token_hash="0" * 64)
        db.session.add(node)
        db.session.flush()
        raise RuntimeError("secret internals: password=hunter2")

    @failing.after_request
    def record_session_state(response):
        session = db.session()
        seen["in_transaction"] = session.in_transaction()
        seen["pending"] = list(session.new) + list(session.identity_map.values())
        return response

    return failing, seen


def test_500_is_json_and_rolls_back(failing_app, caplog):
    failing, seen = failing_app
    response = failing.test_client().post("/_test/boom", json={})
    payload = assert_error(response, 500, "ERR_INTERNAL")
    assert "hunter2" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert payload["details"] == {}
    # The handler rolled the session back before answering: nothing half-done is left in it.
    assert seen == {"in_transaction": False, "pending": []}
    with failing.app_context():
        assert db.session.scalar(select(func.count()).select_from(Node)) == 0
    assert any("Unhandled error" in r.getMessage() for r in caplog.records)


def test_500_leaves_the_app_usable(failing_app, operator):
    failing, _ = failing_app
    client = failing.test_client()
    assert client.post("/_test/boom", json={}).status_code == 500
    response = client.post("/api/v1/nodes", json={"name": "half-written"},
                           headers=operator.headers)
    assert response.status_code == 201, response.get_json()


# -- 503 --------------------------------------------------------------------------------------

def test_503_readyz_when_redis_is_down(app_factory):
    broken = app_factory(REDIS_URL="redis://127.0.0.1:1/0")
    response = broken.test_client().get("/readyz")
    payload = assert_error(response, 503, "ERR_UNAVAILABLE")
    assert payload["details"]["checks"] == {"database": "ok", "redis": "unreachable"}


def test_readyz_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_415_chunked_non_json_write(client, operator):
    """No Content-Length (chunked transfer): still a body, still not JSON."""
    response = client.post("/api/v1/nodes", input_stream=io.BytesIO(b'{"name": "n"}'),
                           content_type="text/plain",
                           headers={**operator.headers, "Transfer-Encoding": "chunked"})
    assert_error(response, 415, "ERR_UNSUPPORTED_MEDIA_TYPE")


def test_500_is_json_even_when_the_rollback_fails(failing_app, monkeypatch):
    failing, _ = failing_app

    def broken_rollback():
        raise RuntimeError("connection lost during rollback")

    monkeypatch.setattr(db.session, "rollback", broken_rollback)
    response = failing.test_client().post("/_test/boom", json={})
    assert_error(response, 500, "ERR_INTERNAL")


def test_routing_redirects_are_not_turned_into_errors(app_factory):
    redirecting = app_factory()

    @redirecting.get("/_test/slash/")
    def slash():
        return {"ok": True}

    response = redirecting.test_client().get("/_test/slash")
    assert response.status_code == 308
    assert response.headers["Location"].endswith("/_test/slash/")
