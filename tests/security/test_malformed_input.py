"""Malformed input is a 400 in the unified JSON format, never a 500, and embedded
(SQLite) and production (PostgreSQL) answer alike: validated in the schemas, not left to
the database (PostgreSQL refuses NUL in text; SQLite stored it)."""

from __future__ import annotations

import json

import pytest

from app.services import auth as auth_service
from app.services import nodes as node_service
from tests.support.api import assert_error

DEEP_LIST = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000
NUL = "\u0000"

# (name, method, path, raw body or None, bearer kind, expected code, failing field)
CASES = [
    ("deep list in a node body", "POST", "/api/v1/nodes", '{"name": ' + DEEP_LIST + "}",
     "admin", "ERR_INVALID_JSON", None),
    ("deep object as a node body", "POST", "/api/v1/nodes", DEEP_OBJECT, "admin",
     "ERR_INVALID_JSON", None),
    ("deep heartbeat metadata", "POST", "/api/v1/beacon/heartbeat",
     '{"node_id": "{node}", "metadata": ' + DEEP_OBJECT + "}", "node", "ERR_INVALID_JSON", None),
    ("deep heartbeat batch", "POST", "/api/v1/beacon/heartbeats",
     '{"heartbeats": ' + DEEP_LIST + "}", "node", "ERR_INVALID_JSON", None),
    ("deep drift metadata", "POST", "/api/drift/heartbeat/app/prod",
     '{"instance_id": "i", "config_version": "v", "metadata": ' + DEEP_OBJECT + "}", "node",
     "ERR_INVALID_JSON", None),
    ("NUL in node name", "POST", "/api/v1/nodes", {"name": f"a{NUL}b"}, "admin",
     "ERR_INVALID_NAME", "name"),
    ("newline in node name", "POST", "/api/v1/nodes", {"name": "a\nb"}, "admin",
     "ERR_INVALID_NAME", "name"),
    ("NUL in region", "POST", "/api/v1/nodes", {"name": "n-r", "region": f"r{NUL}"}, "admin",
     "ERR_INVALID_REGION", "region"),
    ("NUL in a label value", "POST", "/api/v1/nodes", {"name": "n-l", "labels": {"k": NUL}},
     "admin", "ERR_INVALID_LABELS", "labels"),
    ("NUL in a label key", "POST", "/api/v1/nodes", {"name": "n-k", "labels": {NUL: "v"}},
     "admin", "ERR_INVALID_LABELS", "labels"),
    ("lone surrogate in a label", "POST", "/api/v1/nodes",
     '{"name": "n-s", "labels": {"k": "\\ud800"}}', "admin", "ERR_INVALID_LABELS", "labels"),
    ("NUL in a node rename", "PATCH", "/api/v1/nodes/{node}", {"name": f"x{NUL}"}, "admin",
     "ERR_INVALID_NAME", "name"),
    ("NUL in login email", "POST", "/api/v1/auth/login",
     {"email": f"admin{NUL}@example.test", "password": "x"}, None, "ERR_VALIDATION", "email"),
    ("NUL in API-token name", "POST", "/api/v1/api-tokens", {"name": f"t{NUL}", "role": "viewer"},
     "admin", "ERR_INVALID_NAME", "name"),
    ("NUL in a user email", "POST", "/api/v1/users",
     {"email": f"a{NUL}b@example.test", "password": "long enough", "role": "viewer"}, "admin",
     "ERR_INVALID_EMAIL", "email"),
    ("NUL in probe name", "POST", "/api/v1/probes",
     {"node_id": "{node}", "type": "TCP", "target": "example.com", "port": 80,
      "name": f"p{NUL}"}, "admin", "ERR_VALIDATION", "name"),
    ("NUL in drift instance id", "POST", "/api/drift/heartbeat/app/prod",
     {"instance_id": f"i{NUL}", "config_version": "v"}, "node", "ERR_VALIDATION", "instance_id"),
    ("NUL in drift config version", "POST", "/api/drift/heartbeat/app/prod",
     {"instance_id": "i", "config_version": f"v{NUL}"}, "node", "ERR_VALIDATION",
     "config_version"),
    ("NUL in drift hostname", "POST", "/api/drift/heartbeat/app/prod",
     {"instance_id": "i", "config_version": "v", "hostname": f"h{NUL}"}, "node",
     "ERR_VALIDATION", "hostname"),
    ("NUL in drift metadata", "POST", "/api/drift/heartbeat/app/prod",
     {"instance_id": "i", "config_version": "v", "metadata": {"k": f"v{NUL}"}}, "node",
     "ERR_INVALID_METADATA", "metadata"),
    ("NUL in expected version", "PUT", "/api/drift/expected/app/prod",
     {"expected_version": f"v{NUL}"}, "admin", "ERR_VALIDATION", "expected_version"),
    ("NUL in the app query", "GET", "/api/drift/instances?app=a%00b", None, "admin",
     "ERR_INVALID_APP", "app"),
    ("NUL in the app path", "POST", "/api/drift/heartbeat/a%00b/prod",
     {"instance_id": "i", "config_version": "v"}, "node", "ERR_VALIDATION", "app"),
    ("huge page", "GET", "/api/v1/nodes?page=99999999999999999999", None, "admin",
     "ERR_VALIDATION", "page"),
    ("huge probe page", "GET", "/api/v1/probes?page=99999999999999999999", None, "admin",
     "ERR_VALIDATION", "page"),
    ("year 1 in a metrics query", "GET", "/api/v1/nodes/{node}/metrics?to=0001-01-01T00:00:00Z",
     None, "admin", "ERR_INVALID_TIMESTAMP", "to"),
    ("NUL in registration metadata", "POST", "/api/v1/beacon/register",
     {"enroll_token": "pbe_x", "name": "n", "metadata": {"hostname": NUL}}, None,
     "ERR_INVALID_METADATA", "metadata"),
]


def _setup(app):
    with app.app_context():
        admin = auth_service.create_user("abuse-admin@example.test", "long enough", "admin")
        admin_token, _ = auth_service.issue_access_token(admin)
        node, node_token = node_service.create_node("abuse-node")
        return {"admin": admin_token, "node": node_token, "node_id": str(node.id)}


def _run(app, case):
    name, method, path, body, bearer, code, field = case
    ctx = getattr(app, "_abuse_ctx", None) or _setup(app)
    app._abuse_ctx = ctx
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    path = path.replace("{node}", ctx["node_id"])
    raw = raw.replace("{node}", ctx["node_id"]) if raw else raw
    headers = {"Content-Type": "application/json"}
    if bearer:
        headers["Authorization"] = f"Bearer {ctx[bearer]}"
    response = app.test_client().open(path, method=method, data=raw, headers=headers)
    assert_error(response, 400, code, field)


@pytest.fixture(scope="module")
def sqlite_app(shared_app):
    return shared_app


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_sqlite_answers_400(sqlite_app, case):
    _run(sqlite_app, case)


@pytest.mark.integration
def test_postgresql_answers_the_same(pg_app):
    """Every case again on PostgreSQL, where the database itself would refuse NUL."""
    for case in CASES:
        _run(pg_app, case)
