"""Sign-in, sessions, roles, CSRF, headers and error pages of the dashboard (SPEC §10)."""

from __future__ import annotations

import pytest

from tests.dashboard.conftest import csrf_of, page_csrf, sign_in

PAGES = ["/", "/matrix", "/probes", "/nodes/new", "/drift", "/alerts"]


@pytest.mark.parametrize("path", PAGES)
def test_a_visitor_not_signed_in_is_sent_to_login_with_next(client, path):
    from urllib.parse import parse_qs, urlsplit

    response = client.get(path + "?page=2")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": [path + "?page=2"]}


def test_chart_data_without_a_session_is_401_json(client, node):
    response = client.get(f"/nodes/{node['id']}/data")
    assert response.status_code == 401
    assert response.get_json()["code"] == "ERR_UNAUTHORIZED"


def test_login_form_signs_in_and_follows_next(client, personas):
    response = sign_in(client, personas["viewer"], next_path="/matrix")
    assert response.status_code == 302 and response.headers["Location"] == "/matrix"
    assert client.get("/matrix").status_code == 200


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
def test_next_never_leaves_the_site(client, personas, target):
    response = sign_in(client, personas["viewer"], next_path=target)
    assert response.headers["Location"] == "/"


def test_wrong_password_shows_the_message_and_no_session(client, personas):
    token = csrf_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": personas["admin"].email,
                                           "password": "wrong", "csrf_token": token})
    assert response.status_code == 401
    assert "Wrong email or password" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_session_cookie_is_httponly_and_lax(client, personas):
    response = sign_in(client, personas["viewer"])
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("pulse_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_session_cookie_is_secure_in_production(app_factory, personas):
    app = app_factory(PULSE_ENV="production")
    client = app.test_client()
    cookie = sign_in(client, personas["viewer"]).headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_the_api_takes_no_cookie_and_sets_none(signed_in):
    client = signed_in("admin")
    response = client.get("/api/v1/nodes")
    assert response.status_code == 401
    assert response.get_json()["code"] == "ERR_UNAUTHORIZED"
    assert "Set-Cookie" not in response.headers
    assert "Set-Cookie" not in client.get("/healthz").headers


def test_logout_ends_the_session(signed_in):
    client = signed_in("viewer")
    response = client.post("/logout", data={"csrf_token": page_csrf(client)})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_a_password_change_ends_existing_sessions(app, signed_in, personas):

    from app.extensions import db
    from app.models import User
    from app.services.auth import update_user

    client = signed_in("operator")
    assert client.get("/").status_code == 200
    with app.app_context():
        user = db.session.query(User).filter_by(email=personas["operator"].email).one()
        update_user(user, password="another password")  # the service every interface uses
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("path, data", [
    ("/probes", {"port": "80"}), ("/logout", {}), ("/nodes/new", {"name": "x"}),
    ("/nodes/new/enrollment", {}), ("/drift/expected", {"app": "a"}),
])
def test_a_post_without_csrf_token_is_refused(signed_in, path, data):
    client = signed_in("admin")
    response = client.post(path, data=data)
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    wrong = client.post(path, data={**data, "csrf_token": "not-the-token"})
    assert wrong.status_code == 400


def test_login_without_csrf_token_is_refused(client, personas):
    response = client.post("/login", data={"email": personas["admin"].email,
                                           "password": personas["admin"].password})
    assert response.status_code == 400


@pytest.mark.parametrize("path", ["/login", "/", "/nodes/not-a-node", "/no/such/page"])
def test_pages_carry_the_security_headers(signed_in, path):
    response = signed_in("viewer").get(path)
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_api_answers_are_unchanged(client):
    assert "Content-Security-Policy" not in client.get("/healthz").headers
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404 and response.mimetype == "application/json"
    assert response.get_json()["code"] == "ERR_NOT_FOUND"
    assert client.get("/openapi.json").status_code == 200


def test_errors_on_pages_are_pages(signed_in):
    client = signed_in("viewer")
    missing = client.get("/nodes/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert "does not exist" in missing.get_data(as_text=True)
    browser_accept = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    unknown = client.get("/no/such/page", headers=browser_accept)
    assert unknown.status_code == 404 and unknown.mimetype == "text/html"
    # Any other client keeps the JSON error outside the dashboard's own routes.
    assert client.get("/no/such/page").get_json()["code"] == "ERR_NOT_FOUND"
    wrong_method = client.get("/logout")
    assert wrong_method.status_code == 405 and wrong_method.mimetype == "text/html"


@pytest.mark.parametrize("path", ["/probes", "/nodes/new"])
def test_viewer_gets_no_management_page(signed_in, path):
    response = signed_in("viewer").get(path)
    assert response.status_code == 403 and response.mimetype == "text/html"


def test_viewer_cannot_post_management_forms(signed_in, app, node):
    client = signed_in("viewer")
    token = page_csrf(client)
    response = client.post("/probes", data={"csrf_token": token, "node_id": node["id"],
                                            "type": "TCP", "target": "192.0.2.9", "port": "80"})
    assert response.status_code == 403
    assert client.post("/drift/expected", data={"csrf_token": token, "app": "a",
                                                "profile": "p", "expected_version": "1"}
                       ).status_code == 403
    nav = client.get("/").get_data(as_text=True)
    assert 'href="/probes"' not in nav and 'href="/nodes/new"' not in nav


def test_failed_logins_are_limited_across_form_and_api(app_factory, personas):
    app = app_factory(PULSE_LOGIN_RATE_LIMIT="3/minute")
    client = app.test_client()
    email = personas["operator"].email
    for _ in range(2):
        token = csrf_of(client.get("/login").get_data(as_text=True))
        assert client.post("/login", data={"email": email, "password": "nope",
                                           "csrf_token": token}).status_code == 401
    api = client.post("/api/v1/auth/login", json={"email": email, "password": "nope"})
    assert api.status_code == 401
    limited = client.post("/api/v1/auth/login",
                          json={"email": email, "password": personas["operator"].password})
    assert limited.status_code == 429 and limited.get_json()["code"] == "ERR_RATE_LIMITED"
    assert int(limited.headers["Retry-After"]) >= 1
    token = csrf_of(client.get("/login").get_data(as_text=True))
    page = client.post("/login", data={"email": email, "password": personas["operator"].password,
                                       "csrf_token": token})
    assert page.status_code == 429
    assert "Too many failed logins" in page.get_data(as_text=True)
