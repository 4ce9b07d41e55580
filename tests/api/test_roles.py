"""The role matrix (SPEC §5 Auth): anonymous, viewer, operator and admin against every
management endpoint, with login access tokens and with API tokens of the same role.

viewer: reads nodes, metrics, overview and drift; 403 on probes entirely and on writes.
operator: nodes, probes, enrollment tokens, drift expectations, API tokens up to operator.
admin: everything, users included.

The table runs on one app per module: each case makes its own node, probe or token, so
a DELETE in one case cannot change what another case sees.
"""

from __future__ import annotations

import uuid

import pytest

from app.models.user import ROLES
from app.services import auth as auth_service
from app.services import nodes as node_service
from app.services import probes as probe_service

RANK = {None: -1, **{role: rank for rank, role in enumerate(ROLES)}}


class Objects:
    """Fresh objects for one case, made through the services (no HTTP, no role)."""

    def __init__(self, app):
        self.app = app
        self.tag = uuid.uuid4().hex[:10]
        self._node = self._probe = self._token = self._user = None

    @property
    def node(self) -> str:
        if self._node is None:
            with self.app.app_context():
                node, _ = node_service.create_node(f"roles-{self.tag}")
                self._node = str(node.id)
        return self._node

    @property
    def probe(self) -> str:
        if self._probe is None:
            with self.app.app_context():
                probe = probe_service.create_probe(self.probe_body())
                self._probe = str(probe.id)
        return self._probe

    def probe_body(self, port: int = 80) -> dict:
        return {"node_id": uuid.UUID(self.node), "type": "TCP",
                "target": f"t-{self.tag}.example", "port": port}

    @property
    def channel(self) -> str:
        from app.alerts.channels import create_channel

        if getattr(self, "_channel", None) is None:
            with self.app.app_context():  # refused at once: the test send fails fast
                self._channel = str(create_channel(f"roles-{self.tag}", "webhook",
                                                   "http://127.0.0.1:9/hook").id)
        return self._channel

    @property
    def rule(self) -> str:
        from app.alerts.rules import create_rule

        if getattr(self, "_rule", None) is None:
            with self.app.app_context():
                self._rule = str(create_rule(RULE_BODY).id)
        return self._rule

    @property
    def silence(self) -> str:
        from datetime import UTC, datetime, timedelta

        from app.alerts.silences import create_silence

        if getattr(self, "_silence", None) is None:
            now = datetime.now(UTC)
            with self.app.app_context():
                self._silence = str(create_silence(
                    {"starts_at": now, "ends_at": now + timedelta(hours=1)}).id)
        return self._silence

    @property
    def api_token(self) -> str:
        if self._token is None:
            with self.app.app_context():
                row, _ = auth_service.create_api_token(f"roles-{self.tag}", "viewer", None)
                self._token = str(row.id)
        return self._token


    @property
    def enrollment(self) -> str:
        with self.app.app_context():
            row, _ = node_service.create_enrollment_token(600, 1, None)
            return str(row.id)

    @property
    def expected(self) -> str:
        from app.services import drift as drift_service

        with self.app.app_context():
            drift_service.set_expected(f"app-{self.tag}", "production", "v1")
        return f"app-{self.tag}/production"

    @property
    def instance(self) -> str:
        from app.services import drift as drift_service

        with self.app.app_context():
            drift_service.record_heartbeat(f"app-{self.tag}", "production", {
                "instance_id": "host-1", "config_version": "v1", "health": "healthy"}, 1000)
        return f"app-{self.tag}/production/host-1"

    @property
    def user(self) -> str:
        if self._user is None:
            with self.app.app_context():
                row = auth_service.create_user(f"u-{self.tag}@example.test", "long enough",
                                               "viewer")
                self._user = str(row.id)
        return self._user


def jsonable(body: dict) -> dict:
    return {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in body.items()}


RULE_BODY = {"name": "loss", "metric": "packet_loss_rate", "op": ">", "threshold": 5}
SILENCE_BODY = {"starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-02T00:00:00Z"}

# (method, path, body, minimum role, status on success); paths and bodies are filled in
# from an Objects instance.
MATRIX = [
    ("GET", "/api/v1/nodes", None, "viewer", 200),
    ("POST", "/api/v1/nodes", lambda o: {"name": f"new-{o.tag}"}, "operator", 201),
    ("GET", "/api/v1/nodes/{node}", None, "viewer", 200),
    ("PATCH", "/api/v1/nodes/{node}", lambda o: {"region": "eu"}, "operator", 200),
    ("DELETE", "/api/v1/nodes/{node}", None, "operator", 204),
    ("POST", "/api/v1/nodes/{node}/token", None, "operator", 200),
    ("GET", "/api/v1/nodes/{node}/metrics", None, "viewer", 200),
    ("GET", "/api/v1/nodes/{node}/live", None, "viewer", 200),
    ("GET", "/api/v1/overview", None, "viewer", 200),
    ("GET", "/api/v1/reports/sla", None, "viewer", 200),
    ("POST", "/api/v1/enrollment-tokens", lambda o: {"uses": 2}, "operator", 201),
    ("GET", "/api/v1/probes", None, "operator", 200),
    ("POST", "/api/v1/probes", lambda o: jsonable(o.probe_body()), "operator", 201),
    ("GET", "/api/v1/probes/{probe}", None, "operator", 200),
    ("PUT", "/api/v1/probes/{probe}", lambda o: jsonable(o.probe_body(81)), "operator", 200),
    ("PATCH", "/api/v1/probes/{probe}", lambda o: {"count": 3}, "operator", 200),
    ("DELETE", "/api/v1/probes/{probe}?confirm=true", None, "operator", 204),
    ("GET", "/api/v1/api-tokens", None, "operator", 200),
    ("POST", "/api/v1/api-tokens", lambda o: {"name": o.tag, "role": "viewer"}, "operator", 201),
    ("DELETE", "/api/v1/api-tokens/{api_token}", None, "operator", 204),
    ("GET", "/api/v1/users", None, "admin", 200),
    ("POST", "/api/v1/users",
     lambda o: {"email": f"u-{o.tag}@example.test", "password": "long enough", "role": "viewer"},
     "admin", 201),
    ("GET", "/api/v1/alert-rules", None, "viewer", 200),
    ("POST", "/api/v1/alert-rules", lambda o: RULE_BODY, "operator", 201),
    ("GET", "/api/v1/alert-rules/{rule}", None, "viewer", 200),
    ("PUT", "/api/v1/alert-rules/{rule}", lambda o: RULE_BODY, "operator", 200),
    ("PATCH", "/api/v1/alert-rules/{rule}", lambda o: {"threshold": 9}, "operator", 200),
    ("DELETE", "/api/v1/alert-rules/{rule}", None, "operator", 204),
    ("GET", "/api/v1/alerts", None, "viewer", 200),
    ("GET", "/api/v1/alert-events", None, "viewer", 200),
    ("GET", "/api/v1/notification-channels", None, "viewer", 200),
    ("POST", "/api/v1/notification-channels",
     lambda o: {"name": f"c-{o.tag}", "kind": "webhook", "url": "https://example.com/h"},
     "operator", 201),
    ("GET", "/api/v1/notification-channels/{channel}", None, "viewer", 200),
    ("PATCH", "/api/v1/notification-channels/{channel}", lambda o: {"name": f"r-{o.tag}"},
     "operator", 200),
    ("DELETE", "/api/v1/notification-channels/{channel}", None, "operator", 204),
    ("POST", "/api/v1/notification-channels/{channel}/test", None, "operator", 200),
    ("GET", "/api/v1/silences", None, "viewer", 200),
    ("POST", "/api/v1/silences", lambda o: SILENCE_BODY, "operator", 201),
    ("DELETE", "/api/v1/silences/{silence}", None, "operator", 204),
    ("GET", "/api/v1/users/{user}", None, "admin", 200),
    ("PATCH", "/api/v1/users/{user}", lambda o: {"role": "operator"}, "admin", 200),
    ("DELETE", "/api/v1/users/{user}", None, "admin", 204),
    ("GET", "/api/v1/audit-log", None, "admin", 200),
    ("GET", "/api/drift/instances", None, "viewer", 200),
    ("DELETE", "/api/drift/instances/{instance}", None, "operator", 204),
    ("GET", "/api/drift/expected/{expected}", None, "viewer", 200),
    ("DELETE", "/api/drift/expected/{expected}", None, "operator", 204),
    ("GET", "/api/v1/enrollment-tokens", None, "operator", 200),
    ("DELETE", "/api/v1/enrollment-tokens/{enrollment}", None, "operator", 204),
    ("GET", "/api/v1/prometheus/probes", None, "viewer", 200),
    ("PUT", "/api/drift/expected/payments/production", lambda o: {"expected_version": "v1"},
     "operator", 200),
]


@pytest.fixture(scope="module")
def bearers(shared_app, shared_personas):
    """role -> {"login": headers, "api_token": headers}; None -> no Authorization."""
    result = {None: {"login": {}, "api_token": {}}}
    with shared_app.app_context():
        for role in ROLES:
            _, token = auth_service.create_api_token(f"matrix-{role}", role, None)
            result[role] = {"login": shared_personas[role].headers,
                            "api_token": {"Authorization": f"Bearer {token}"}}
    return result


def call(client, app, method, path, body, headers, objects=None):
    objects = objects or Objects(app)
    filled = path.format_map({k: getattr(objects, k) for k in (
        "node", "probe", "api_token", "rule", "channel", "silence", "user", "enrollment",
        "expected", "instance") if "{" + k + "}" in path})
    kwargs = {"json": body(objects)} if body else {}
    return client.open(filled, method=method, headers=headers, **kwargs)


CASES = [
    pytest.param(method, path, body, minimum, success, role, kind,
                 id=f"{role or 'anonymous'}-{kind}-{method} {path}")
    for method, path, body, minimum, success in MATRIX
    for role in (None, *ROLES)
    for kind in (("login",) if role is None else ("login", "api_token"))
]


@pytest.mark.parametrize(("method", "path", "body", "minimum", "success", "role", "kind"), CASES)
def test_role_matrix(shared_app, shared_client, bearers, method, path, body, minimum, success,
                     role, kind):
    response = call(shared_client, shared_app, method, path, body, bearers[role][kind])
    payload = response.get_json(silent=True)
    if role is None:
        expected, code = 401, "ERR_UNAUTHORIZED"
    elif RANK[role] < RANK[minimum]:
        expected, code = 403, "ERR_FORBIDDEN"
    else:
        expected, code = success, None
    assert response.status_code == expected, payload
    if code:
        assert payload["code"] == code


def test_matrix_covers_every_management_route(shared_app):
    """A new /api route must be added to the table above (or to the exempt list)."""
    exempt = {"/api/v1/auth/login", "/api/drift/heartbeat/<app_name>/<profile>"}
    covered = set()
    for method, path, *_ in MATRIX:
        template = path.split("?")[0]
        for name, arg in (("{node}", "<node_id>"), ("{probe}", "<probe_id>"),
                          ("{api_token}", "<token_id>"), ("{rule}", "<rule_id>"),
                          ("{channel}", "<channel_id>"), ("{silence}", "<silence_id>"),
                          ("{user}", "<user_id>"), ("{enrollment}", "<token_id>"),
                          ("{expected}", "<app_name>/<profile>"),
                          ("{instance}", "<app_name>/<profile>/<instance_id>")):
            template = template.replace(name, arg)
        template = template.replace("payments/production", "<app_name>/<profile>")
        covered.add((method, template))
    routes = {(method, rule.rule) for rule in shared_app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}
              if rule.rule.startswith("/api/") and not rule.rule.startswith("/api/v1/beacon/")
              and rule.rule not in exempt}
    assert routes - covered == set()


# -- node tokens are not management bearers ---------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [("GET", "/api/v1/nodes"), ("GET", "/api/v1/probes"),
                                              ("GET", "/api/v1/overview")])
def test_node_token_is_not_a_management_bearer(shared_app, shared_client, method, path):
    with shared_app.app_context():
        _, token = node_service.create_node(f"nodetoken-{uuid.uuid4().hex[:8]}")
    response = shared_client.open(path, method=method,
                                  headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.get_json()["code"] == "ERR_UNAUTHORIZED"


# -- API tokens above one's own role ----------------------------------------------------------

@pytest.mark.parametrize(("creator", "role", "expected"), [
    ("operator", "viewer", 201), ("operator", "operator", 201), ("operator", "admin", 403),
    ("admin", "admin", 201), ("viewer", "viewer", 403),
])
def test_api_token_roles_a_creator_may_grant(shared_client, bearers, creator, role, expected):
    for kind in ("login", "api_token"):
        response = shared_client.post("/api/v1/api-tokens", json={"name": "t", "role": role},
                                      headers=bearers[creator][kind])
        assert response.status_code == expected, (kind, response.get_json())


def test_operator_neither_sees_nor_revokes_admin_tokens(shared_app, shared_client, bearers):
    with shared_app.app_context():
        admin_id = str(auth_service.create_api_token("admin-only", "admin", None)[0].id)
        operator_id = str(auth_service.create_api_token("operator-own", "operator", None)[0].id)
    listed = shared_client.get("/api/v1/api-tokens", headers=bearers["operator"]["login"])
    ids = {t["id"] for t in listed.get_json()}
    assert operator_id in ids and admin_id not in ids
    assert all(t["role"] != "admin" for t in listed.get_json())
    response = shared_client.delete(f"/api/v1/api-tokens/{admin_id}",
                                    headers=bearers["operator"]["login"])
    assert response.status_code == 403
    assert response.get_json()["code"] == "ERR_FORBIDDEN"
    as_admin = shared_client.get("/api/v1/api-tokens", headers=bearers["admin"]["login"])
    assert admin_id in {t["id"] for t in as_admin.get_json()}
    response = shared_client.delete(f"/api/v1/api-tokens/{admin_id}",
                                    headers=bearers["admin"]["login"])
    assert response.status_code == 204


def test_auth_comes_before_validation(shared_client, bearers):
    """A viewer's invalid probe gets 403 (not 400), an anonymous one 401."""
    bad = {"port": "nope"}
    assert shared_client.post("/api/v1/probes", json=bad).status_code == 401
    assert shared_client.post("/api/v1/probes", json=bad,
                              headers=bearers["viewer"]["login"]).status_code == 403
    assert shared_client.post("/api/v1/probes", json=bad,
                              headers=bearers["operator"]["login"]).status_code == 400
