"""A password change ends that user's access tokens (issue 14): a token carries the stamp
of the password it was issued under, so once the password changes it is refused, in every
process at once (the change bumps the auth epoch; two processes on real Redis:
tests/integration/test_revocation.py). Dashboard sessions carry the same stamp
(tests/dashboard/test_access.py)."""

from __future__ import annotations

from itsdangerous import URLSafeTimedSerializer

from app.services.principals import ACCESS_SALT
from tests.support.api import assert_error, bearer

NEW_PASSWORD = "a brand new password"


def _user_id(client, admin, email: str) -> str:
    users = client.get("/api/v1/users", headers=admin.headers).get_json()
    return next(u["id"] for u in users if u["email"] == email)


def _login(client, email: str, password: str):
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_a_password_change_ends_the_users_access_tokens(client, admin, operator, viewer):
    second = _login(client, viewer.email, viewer.password).get_json()["access_token"]
    for token in (viewer.token, second):
        assert client.get("/api/v1/nodes", headers=bearer(token)).status_code == 200
    user_id = _user_id(client, admin, viewer.email)
    changed = client.patch(f"/api/v1/users/{user_id}", json={"password": NEW_PASSWORD},
                           headers=admin.headers)
    assert changed.status_code == 200
    for token in (viewer.token, second):
        for _ in range(3):
            assert_error(client.get("/api/v1/nodes", headers=bearer(token)), 401,
                         "ERR_UNAUTHORIZED")
    # the old password is refused, the new one gives a working token
    assert_error(_login(client, viewer.email, viewer.password), 401, "ERR_INVALID_CREDENTIALS")
    fresh = _login(client, viewer.email, NEW_PASSWORD).get_json()["access_token"]
    assert client.get("/api/v1/nodes", headers=bearer(fresh)).status_code == 200
    # nobody else's tokens end
    for other in (admin, operator):
        assert client.get("/api/v1/nodes", headers=other.headers).status_code == 200


def test_changing_ones_own_password_ends_the_token_that_did_it(client, admin):
    user_id = _user_id(client, admin, admin.email)
    assert client.patch(f"/api/v1/users/{user_id}", json={"password": NEW_PASSWORD},
                        headers=admin.headers).status_code == 200
    assert_error(client.get("/api/v1/users", headers=admin.headers), 401, "ERR_UNAUTHORIZED")


def test_a_role_change_alone_keeps_the_token(client, admin, viewer):
    user_id = _user_id(client, admin, viewer.email)
    assert_error(client.get("/api/v1/probes", headers=viewer.headers), 403, "ERR_FORBIDDEN")
    assert client.patch(f"/api/v1/users/{user_id}", json={"role": "operator"},
                        headers=admin.headers).status_code == 200
    assert client.get("/api/v1/probes", headers=viewer.headers).status_code == 200


def test_api_tokens_outlive_their_creators_password_change(client, admin):
    created = client.post("/api/v1/api-tokens", json={"name": "ci", "role": "viewer"},
                          headers=admin.headers).get_json()
    user_id = _user_id(client, admin, admin.email)
    assert client.patch(f"/api/v1/users/{user_id}", json={"password": NEW_PASSWORD},
                        headers=admin.headers).status_code == 200
    # an API token is its own credential (revoked by DELETE /api-tokens/{id}), not a login
    assert client.get("/api/v1/nodes", headers=bearer(created["token"])).status_code == 200


def test_a_signed_token_without_a_password_stamp_is_refused(app, client, admin):
    user_id = _user_id(client, admin, admin.email)
    unstamped = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=ACCESS_SALT).dumps(
        {"uid": user_id})
    assert_error(client.get("/api/v1/nodes", headers=bearer(unstamped)), 401,
                 "ERR_UNAUTHORIZED")
    stamped_wrong = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=ACCESS_SALT).dumps(
        {"uid": user_id, "pw": "0" * 16})
    assert_error(client.get("/api/v1/nodes", headers=bearer(stamped_wrong)), 401,
                 "ERR_UNAUTHORIZED")
