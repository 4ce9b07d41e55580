"""Dashboard tests through Flask's test client: a signed-in client per persona."""

from __future__ import annotations

import re

import pytest

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "page has no CSRF token"
    return found.group(1)


def sign_in(client, persona, next_path: str | None = None):
    """Sign in through the form (GET for the token, POST the credentials)."""
    page = client.get("/login")
    assert page.status_code == 200
    data = {"email": persona.email, "password": persona.password, "csrf_token":
            csrf_of(page.get_data(as_text=True))}
    if next_path:
        data["next"] = next_path
    return client.post("/login", data=data)


@pytest.fixture
def signed_in(app, personas):
    """signed_in("operator") -> a test client with that persona's dashboard session."""

    def make(role: str):
        client = app.test_client()
        response = sign_in(client, personas[role])
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return client

    return make


def page_csrf(client, path: str = "/") -> str:
    """The CSRF token of the signed-in session, read from a page."""
    return csrf_of(client.get(path).get_data(as_text=True))
