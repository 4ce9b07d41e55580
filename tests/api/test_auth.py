"""Login, bearer access tokens, API tokens, users and the `users create` command."""

from __future__ import annotations

import uuid

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken, User
from tests.support.api import assert_error, bearer

LOGIN = "/api/v1/auth/login"


def login(client, email, password):
    return client.post(LOGIN, json={"email": email, "password": password})




# -- login ------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["admin", "operator", "viewer"])
def test_login_then_the_bearer_works(client, personas, role):
    persona = personas[role]
    response = login(client, persona.email, persona.password)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "role"}
    assert (body["token_type"], body["expires_in"], body["role"]) == ("Bearer", 3600, role)
    assert client.get("/api/v1/nodes", headers=bearer(body["access_token"])).status_code == 200


def test_login_email_is_case_insensitive(client, admin):
    assert login(client, "  " + admin.email.upper(), admin.password).status_code == 200


@pytest.mark.parametrize(("email", "password"), [
    ("admin@example.test", "wrong password"),
    ("admin@example.test", "correct horse battery "),
    ("nobody@example.test", "correct horse battery"),
])
def test_bad_credentials(client, email, password):
    payload = assert_error(login(client, email, password), 401, "ERR_INVALID_CREDENTIALS")
    # The same answer whether the email exists or not.
    assert payload["message"] == "Wrong email or password"
    assert payload["details"] == {}


@pytest.mark.parametrize("body", [{}, {"email": "admin@example.test"}, {"password": "x"},
                                  {"email": "", "password": "x"}, {"email": 1, "password": 2}])
def test_login_needs_email_and_password(client, body):
    response = client.post(LOGIN, json=body)
    assert response.status_code == 400
    assert response.get_json()["code"] in ("ERR_VALIDATION",)


# -- access tokens ----------------------------------------------------------------------------

def test_expired_access_token(client, admin, monkeypatch):
    assert client.get("/api/v1/nodes", headers=admin.headers).status_code == 200
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 3601)
    response = client.get("/api/v1/nodes", headers=admin.headers)
    assert_error(response, 401, "ERR_UNAUTHORIZED")


def test_access_token_still_valid_just_before_expiry(client, admin, monkeypatch):
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 3590)
    assert client.get("/api/v1/nodes", headers=admin.headers).status_code == 200


def test_tampered_access_token(client, admin):
    token = admin.token
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert_error(client.get("/api/v1/nodes", headers=bearer(flipped)), 401, "ERR_UNAUTHORIZED")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "pba_" + "x" * 43, "pbn_" + "x" * 43,
                                   "pbe_" + "x" * 43, "e30.AAAA.BBBB", "Ω"])
def test_garbage_tokens(client, token):
    assert_error(client.get("/api/v1/nodes", headers=bearer(token)), 401, "ERR_UNAUTHORIZED")


def test_access_token_of_another_secret_key(app_factory, admin):
    other = app_factory(SECRET_KEY="another-secret-key-" + "y" * 32)
    response = other.test_client().get("/api/v1/nodes", headers=admin.headers)
    assert_error(response, 401, "ERR_UNAUTHORIZED")


def test_role_is_read_at_each_request(app, client, operator):
    assert client.get("/api/v1/probes", headers=operator.headers).status_code == 200
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == operator.email))
        user.role = "viewer"
        db.session.commit()
    assert_error(client.get("/api/v1/probes", headers=operator.headers), 403, "ERR_FORBIDDEN")


def test_deleted_user_token_stops_working(app, client, viewer):
    with app.app_context():
        db.session.delete(db.session.scalar(select(User).where(User.email == viewer.email)))
        db.session.commit()
    assert_error(client.get("/api/v1/nodes", headers=viewer.headers), 401, "ERR_UNAUTHORIZED")


# -- API tokens -------------------------------------------------------------------------------

def create_api_token(client, persona, name="ci", role="operator"):
    response = client.post("/api/v1/api-tokens", json={"name": name, "role": role},
                           headers=persona.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_api_token_is_shown_once_and_works(client, admin):
    created = create_api_token(client, admin)
    assert created["token"].startswith("pba_")
    assert (created["name"], created["role"], created["revoked_at"]) == ("ci", "operator", None)
    listed = client.get("/api/v1/api-tokens", headers=admin.headers).get_json()
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0] and "token_hash" not in listed[0]
    assert created["token"] not in client.get("/api/v1/api-tokens",
                                              headers=admin.headers).get_data(as_text=True)
    assert client.get("/api/v1/probes", headers=bearer(created["token"])).status_code == 200


def test_api_token_records_its_creator_and_last_use(app, client, admin):
    created = create_api_token(client, admin)
    assert created["last_used_at"] is None
    client.get("/api/v1/nodes", headers=bearer(created["token"]))
    with app.app_context():
        row = db.session.get(ApiToken, uuid.UUID(created["id"]))
        admin_id = db.session.scalar(select(User.id).where(User.email == admin.email))
        assert row.last_used_at is not None
        assert row.created_by == admin_id


def test_api_token_revocation(client, admin):
    created = create_api_token(client, admin)
    token_headers = bearer(created["token"])
    assert client.get("/api/v1/nodes", headers=token_headers).status_code == 200
    response = client.delete(f"/api/v1/api-tokens/{created['id']}", headers=admin.headers)
    assert response.status_code == 204
    assert_error(client.get("/api/v1/nodes", headers=token_headers), 401, "ERR_UNAUTHORIZED")
    listed = client.get("/api/v1/api-tokens", headers=admin.headers).get_json()
    assert listed[0]["revoked_at"] is not None


def test_a_token_can_revoke_itself(client, admin):
    created = create_api_token(client, admin)
    response = client.delete(f"/api/v1/api-tokens/{created['id']}",
                             headers=bearer(created["token"]))
    assert response.status_code == 204
    assert client.get("/api/v1/nodes", headers=bearer(created["token"])).status_code == 401


@pytest.mark.parametrize("token_id", ["00000000-0000-4000-8000-000000000000", "nope"])
def test_revoke_unknown_token(client, admin, token_id):
    response = client.delete(f"/api/v1/api-tokens/{token_id}", headers=admin.headers)
    assert_error(response, 404, "ERR_TOKEN_NOT_FOUND")


@pytest.mark.parametrize("body", [{"name": "x"}, {"role": "viewer"}, {"name": "", "role": "viewer"},
                                  {"name": "x", "role": "root"}])
def test_api_token_create_validation(client, admin, body):
    response = client.post("/api/v1/api-tokens", json=body, headers=admin.headers)
    assert response.status_code == 400, response.get_json()


# -- users ------------------------------------------------------------------------------------

def test_admin_creates_a_user_who_can_log_in(client, admin):
    response = client.post("/api/v1/users", headers=admin.headers, json={
        "email": "New@Example.test", "password": "a long password", "role": "operator"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == {"id", "email", "role", "created_at"}
    assert (body["email"], body["role"]) == ("new@example.test", "operator")
    assert login(client, "new@example.test", "a long password").get_json()["role"] == "operator"
    emails = [u["email"] for u in client.get("/api/v1/users", headers=admin.headers).get_json()]
    assert "new@example.test" in emails


def test_duplicate_user(client, admin, viewer):
    response = client.post("/api/v1/users", headers=admin.headers, json={
        "email": viewer.email.upper(), "password": "a long password", "role": "viewer"})
    assert_error(response, 409, "ERR_USER_EXISTS")


@pytest.mark.parametrize("body", [
    {"email": "not-an-email", "password": "a long password", "role": "viewer"},
    {"email": "a@example.test", "password": "short", "role": "viewer"},
    {"email": "a@example.test", "password": "a long password", "role": "root"},
])
def test_user_create_validation(client, admin, body):
    response = client.post("/api/v1/users", headers=admin.headers, json=body)
    assert response.status_code == 400, response.get_json()


# -- CLI --------------------------------------------------------------------------------------

def test_cli_users_create_with_password_stdin(client, runner):
    result = runner.invoke(args=["users", "create", "root@example.test", "--role", "admin",
                                 "--password-stdin"], input="s3cret-from-stdin\n")
    assert result.exit_code == 0, result.output
    assert "Created admin root@example.test" in result.output
    assert "s3cret-from-stdin" not in result.output
    response = login(client, "root@example.test", "s3cret-from-stdin")
    assert response.status_code == 200
    assert response.get_json()["role"] == "admin"


def test_cli_users_create_with_prompt(client, runner):
    result = runner.invoke(args=["users", "create", "op@example.test", "--role", "operator"],
                           input="prompted-password\nprompted-password\n")
    assert result.exit_code == 0, result.output
    assert login(client, "op@example.test", "prompted-password").get_json()["role"] == "operator"


def test_cli_users_create_defaults_to_viewer(client, runner):
    result = runner.invoke(args=["users", "create", "v@example.test", "--password-stdin"],
                           input="viewer-password\n")
    assert result.exit_code == 0, result.output
    assert login(client, "v@example.test", "viewer-password").get_json()["role"] == "viewer"


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["admin@example.test", "--role", "admin"], "another-password\n", "exists"),
    (["x@example.test", "--role", "admin"], "short\n", "at least 8"),
    (["x@example.test", "--role", "root"], "long-enough\n", "root"),
])
def test_cli_users_create_refusals(runner, args, stdin, message):
    result = runner.invoke(args=["users", "create", *args, "--password-stdin"], input=stdin)
    assert result.exit_code != 0
    assert message in result.output


def test_cli_history_pack_says_blocks_are_postgresql_only(runner):
    result = runner.invoke(args=["history", "pack"])
    assert result.exit_code == 1
    assert "PostgreSQL only" in result.output
