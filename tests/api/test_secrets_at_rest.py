"""Tokens and passwords are never stored in plain text (SPEC §4): only SHA-256 of tokens,
a slow salted KDF for passwords — in the raw rows, the database file, Redis and the logs."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from sqlalchemy import text

from app.extensions import db, get_redis


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def raw_rows(app, sql: str, **params) -> list[dict]:
    with app.app_context():
        return [dict(row._mapping) for row in db.session.execute(text(sql), params)]


@pytest.fixture
def secrets(app, client, admin, operator, caplog):
    """Every kind of secret, made through the API; the logs are captured while doing so."""
    caplog.set_level(logging.DEBUG)
    made = {}
    node = client.post("/api/v1/nodes", json={"name": "secret-node"},
                       headers=operator.headers).get_json()
    made["node_id"], made["node_token"] = node["id"], node["token"]
    # Using the node token puts it through the token cache as well.
    client.get("/api/v1/beacon/config", headers={"Authorization": f"Bearer {node['token']}"})
    made["rotated_node_token"] = client.post(f"/api/v1/nodes/{node['id']}/token",
                                             headers=operator.headers).get_json()["token"]
    api = client.post("/api/v1/api-tokens", json={"name": "ci", "role": "viewer"},
                      headers=admin.headers).get_json()
    made["api_token_id"], made["api_token"] = api["id"], api["token"]
    client.get("/api/v1/nodes", headers={"Authorization": f"Bearer {api['token']}"})
    enroll = client.post("/api/v1/enrollment-tokens", json={"uses": 2},
                         headers=operator.headers).get_json()
    made["enroll_id"], made["enroll_token"] = enroll["id"], enroll["token"]
    registered = client.post("/api/v1/beacon/register",
                             json={"enroll_token": enroll["token"], "name": "enrolled"})
    made["enrolled_node_token"] = registered.get_json()["token"]
    made["password"] = "a very secret password"
    assert client.post("/api/v1/users", headers=admin.headers, json={
        "email": "pw@example.test", "password": made["password"], "role": "viewer",
    }).status_code == 201
    login = client.post("/api/v1/auth/login",
                        json={"email": "pw@example.test", "password": made["password"]})
    made["access_token"] = login.get_json()["access_token"]
    return made


PLAIN = ("node_token", "rotated_node_token", "api_token", "enroll_token",
         "enrolled_node_token", "password")


def test_user_passwords_use_a_slow_salted_kdf(app, secrets):
    rows = raw_rows(app, "SELECT email, password_hash FROM users")
    assert len(rows) == 4
    for row in rows:
        assert row["password_hash"].split(":")[0] in ("scrypt", "pbkdf2"), row
        assert secrets["password"] not in row["password_hash"]
    # The three personas share a password; salts make their hashes differ.
    assert len({row["password_hash"] for row in rows}) == 4


def test_api_token_stored_as_sha256(app, secrets):
    [row] = raw_rows(app, "SELECT * FROM api_tokens")
    assert row["token_hash"] == sha256(secrets["api_token"])
    assert row["token_hash"] != secrets["api_token"]
    assert not any(secrets["api_token"] in str(value) for value in row.values())


def test_node_tokens_stored_as_sha256(app, secrets):
    rows = {row["name"]: row for row in raw_rows(app, "SELECT * FROM nodes")}
    assert rows["secret-node"]["token_hash"] == sha256(secrets["rotated_node_token"])
    assert rows["enrolled"]["token_hash"] == sha256(secrets["enrolled_node_token"])
    for row in rows.values():
        assert not any(secrets[k] in str(v) for k in PLAIN for v in row.values())


def test_enrollment_token_stored_as_sha256(app, secrets):
    [row] = raw_rows(app, "SELECT * FROM enrollment_tokens")
    assert row["token_hash"] == sha256(secrets["enroll_token"])
    assert row["uses_left"] == 1


def test_no_secret_anywhere_in_the_database_file(app, secrets):
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
        path = Path(db.engine.url.database)
    data = path.read_bytes()
    for name in PLAIN + ("access_token",):
        assert secrets[name].encode() not in data, name


def test_no_secret_in_redis(app, secrets):
    with app.app_context():
        client = get_redis().client
        dump = []
        for key in client.scan_iter():
            dump.append(key)
            kind = client.type(key)
            if kind == b"string":
                dump.append(client.get(key) or b"")
            elif kind == b"hash":
                dump.extend(b"%s=%s" % kv for kv in client.hgetall(key).items())
    blob = b"\n".join(dump)
    for name in PLAIN:
        assert secrets[name].encode() not in blob, name


def test_no_secret_in_the_logs(secrets, caplog):
    for name in PLAIN + ("access_token",):
        assert secrets[name] not in caplog.text, name
