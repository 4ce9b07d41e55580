"""A revoked API token, a changed role or password, or a deleted user takes effect in every
process at once (SPEC §2; issue 14: some of ten requests right after a DELETE answered 200,
depending on the process that served them). Two Pulse apps share one PostgreSQL and one Redis, as
two API processes do; each has its own in-process principal cache."""

from __future__ import annotations

import pytest

from app.services import auth as auth_service
from tests.conftest import make_app

pytestmark = pytest.mark.integration


@pytest.fixture
def two_apps(pg_app, server_env):
    other = make_app(server_env["DATABASE_URL"], server_env["REDIS_URL"],
                     **{k: v for k, v in server_env.items()
                        if k not in ("DATABASE_URL", "REDIS_URL")})
    yield pg_app, other
    with other.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _user(app, email: str, role: str) -> tuple[str, str]:
    with app.app_context():
        user = auth_service.create_user(email, "long enough", role)
        token, _ = auth_service.issue_access_token(user)
        return str(user.id), token


def _warm(client, headers, path="/api/v1/nodes", times=3):
    for _ in range(times):  # cached in this process now
        assert client.get(path, headers=headers).status_code == 200


def test_revoked_api_token_fails_at_once_in_the_other_process(two_apps):
    a, b = two_apps
    _, admin = _user(a, "admin@rev.test", "admin")
    created = a.test_client().post("/api/v1/api-tokens", json={"name": "ci", "role": "viewer"},
                                   headers=_bearer(admin)).get_json()
    token = _bearer(created["token"])
    _warm(a.test_client(), token)
    _warm(b.test_client(), token)
    revoked = a.test_client().delete(f"/api/v1/api-tokens/{created['id']}",
                                     headers=_bearer(admin))
    assert revoked.status_code == 204
    answers = [c.get("/api/v1/nodes", headers=token).status_code
               for _ in range(5) for c in (a.test_client(), b.test_client())]
    assert answers == [401] * 10


def test_role_change_applies_at_once_in_the_other_process(two_apps):
    a, b = two_apps
    _, admin = _user(a, "admin@role.test", "admin")
    user_id, operator = _user(a, "op@role.test", "operator")
    _warm(b.test_client(), _bearer(operator), "/api/v1/probes")
    changed = a.test_client().patch(f"/api/v1/users/{user_id}", json={"role": "viewer"},
                                    headers=_bearer(admin))
    assert changed.status_code == 200 and changed.get_json()["role"] == "viewer"
    answers = [b.test_client().get("/api/v1/probes", headers=_bearer(operator)).status_code
               for _ in range(10)]
    assert answers == [403] * 10


def test_password_change_ends_tokens_at_once_in_the_other_process(two_apps):
    a, b = two_apps
    _, admin = _user(a, "admin@pw.test", "admin")
    user_id, viewer = _user(a, "v@pw.test", "viewer")
    _warm(b.test_client(), _bearer(viewer))
    _warm(a.test_client(), _bearer(viewer))
    assert a.test_client().patch(f"/api/v1/users/{user_id}", json={"password": "new one here"},
                                 headers=_bearer(admin)).status_code == 200
    answers = [c.get("/api/v1/nodes", headers=_bearer(viewer)).status_code
               for _ in range(5) for c in (a.test_client(), b.test_client())]
    assert answers == [401] * 10
    fresh = b.test_client().post("/api/v1/auth/login", json={
        "email": "v@pw.test", "password": "new one here"}).get_json()["access_token"]
    assert a.test_client().get("/api/v1/nodes", headers=_bearer(fresh)).status_code == 200


def test_deleted_user_fails_at_once_in_the_other_process(two_apps):
    a, b = two_apps
    _, admin = _user(a, "admin@del.test", "admin")
    user_id, viewer = _user(a, "v@del.test", "viewer")
    _warm(b.test_client(), _bearer(viewer))
    assert a.test_client().delete(f"/api/v1/users/{user_id}",
                                  headers=_bearer(admin)).status_code == 204
    answers = [b.test_client().get("/api/v1/nodes", headers=_bearer(viewer)).status_code
               for _ in range(10)]
    assert answers == [401] * 10


def test_a_cached_principal_costs_no_database_query(two_apps):
    """The cache is real: a warm bearer resolves without reading its user row."""
    from sqlalchemy import event

    a, _ = two_apps
    user_id, viewer = _user(a, "v@cache.test", "viewer")
    client = a.test_client()
    _warm(client, _bearer(viewer), "/api/v1/overview", times=1)
    statements = []
    with a.app_context():
        from app.extensions import db

        engine = db.engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert client.get("/api/v1/overview", headers=_bearer(viewer)).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert not [s for s in statements if "FROM users" in s], statements


def test_failed_logins_are_counted_across_processes(two_apps, server_env):
    """The login limit lives in Redis: two processes count one account together."""
    a, b = two_apps
    for app in (a, b):
        app.extensions["pulse_login_limit"] = None
    limited = [make_app(server_env["DATABASE_URL"], server_env["REDIS_URL"],
                        PULSE_LOGIN_RATE_LIMIT="4/minute",
                        **{k: v for k, v in server_env.items()
                           if k not in ("DATABASE_URL", "REDIS_URL")}) for _ in range(2)]
    _user(limited[0], "target@login.test", "viewer")
    codes = [limited[i % 2].test_client().post(
        "/api/v1/auth/login", json={"email": "target@login.test", "password": "wrong"},
        environ_base={"REMOTE_ADDR": f"10.1.0.{i}"}).status_code for i in range(6)]
    assert codes == [401, 401, 401, 401, 429, 429]
    for app in limited:
        with app.app_context():
            from app.extensions import db

            db.session.remove()
            db.engine.dispose()
