"""No secret — token, token hash, password or its hash — in any answer (but the one that
creates a token, once), any log line or /metrics."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken, Node, User
from app.tokens import hash_token
from tests.support.api import bearer


def test_no_secret_in_answers_logs_or_metrics(app, client, admin, operator, caplog,
                                              make_heartbeat):
    caplog.set_level(logging.DEBUG)
    password = "a very secret passphrase"
    answers: list[bytes] = []

    def keep(response):
        answers.append(response.get_data())
        return response

    node = client.post("/api/v1/nodes", json={"name": "secretive"}, headers=operator.headers)
    node = node.get_json()  # the creating answer is the one place the token is shown
    rotated = client.post(f"/api/v1/nodes/{node['id']}/token", headers=operator.headers)
    new_node_token = rotated.get_json()["token"]
    api = client.post("/api/v1/api-tokens", json={"name": "ci", "role": "viewer"},
                      headers=admin.headers).get_json()
    enroll = client.post("/api/v1/enrollment-tokens", json={"uses": 1},
                         headers=operator.headers).get_json()
    user = client.post("/api/v1/users", json={"email": "s@example.test", "password": password,
                                              "role": "viewer"}, headers=admin.headers)
    keep(user)
    login = client.post("/api/v1/auth/login", json={"email": "s@example.test",
                                                    "password": "wrong " + password})
    keep(login)
    keep(client.post("/api/v1/auth/login", json={"email": "s@example.test",
                                                  "password": password}))
    for path in ("/api/v1/nodes", f"/api/v1/nodes/{node['id']}", "/api/v1/api-tokens",
                 "/api/v1/users", "/api/v1/audit-log", "/api/v1/overview", "/openapi.json"):
        keep(client.get(path, headers=admin.headers))
    keep(client.post("/api/v1/beacon/heartbeat", headers=bearer(new_node_token),
                     json=make_heartbeat(node["id"], datetime.now(UTC))))
    keep(client.post("/api/v1/beacon/heartbeat", headers=bearer(node["token"]),  # old token
                     json=make_heartbeat(node["id"], datetime.now(UTC))))
    keep(client.get("/api/v1/nodes", headers=bearer(api["token"] + "x")))
    keep(client.get("/metrics"))

    with app.app_context():
        hashes = [n.token_hash for n in db.session.scalars(select(Node))]
        hashes += [t.token_hash for t in db.session.scalars(select(ApiToken))]
        password_hashes = [u.password_hash for u in db.session.scalars(select(User))]
    secrets = [node["token"], new_node_token, api["token"], enroll["token"], password,
               hash_token(enroll["token"]), *hashes, *password_hashes]
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    for secret in secrets:
        for answer in answers:
            assert secret.encode() not in answer, secret[:12]
        assert secret not in logged, secret[:12]
