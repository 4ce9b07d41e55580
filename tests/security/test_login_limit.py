"""Login brute force (issue 14: 60 wrong passwords in 7 s, all 401). Failed logins are
limited per account and per client address (PULSE_LOGIN_RATE_LIMIT) -> 429 with
Retry-After, before the password is checked."""

from __future__ import annotations

import pytest

from tests.conftest import PERSONAS
from tests.support.api import assert_error

LOGIN = "/api/v1/auth/login"
ADMIN = PERSONAS["admin"]


def attempt(client, email, password, address="10.0.0.1", forwarded=None):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post(LOGIN, json={"email": email, "password": password}, headers=headers,
                       environ_base={"REMOTE_ADDR": address})


@pytest.fixture
def limited(app_factory):
    return app_factory(PULSE_LOGIN_RATE_LIMIT="3/minute").test_client()


def test_the_default_is_ten_a_minute(app):
    assert app.config["PULSE_LOGIN_RATE_LIMIT"] == "10/minute"
    client = app.test_client()
    for _ in range(10):
        assert attempt(client, ADMIN.email, "wrong").status_code == 401
    response = attempt(client, ADMIN.email, "wrong")
    assert_error(response, 429, "ERR_RATE_LIMITED")
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_an_account_locked_by_failures_refuses_even_the_right_password(limited):
    for i in range(3):
        assert attempt(limited, ADMIN.email, "wrong", address=f"10.0.1.{i}").status_code == 401
    response = attempt(limited, ADMIN.email, ADMIN.password, address="10.0.2.1")
    assert_error(response, 429, "ERR_RATE_LIMITED")
    assert int(response.headers["Retry-After"]) >= 1


def test_an_address_is_limited_across_accounts(limited):
    for i in range(3):
        assert attempt(limited, f"nobody{i}@example.test", "x").status_code == 401
    assert_error(attempt(limited, "someone-else@example.test", "x"), 429, "ERR_RATE_LIMITED")


def test_others_failures_on_other_accounts_never_slow_a_good_login(limited):
    viewer = PERSONAS["viewer"]
    for i in range(20):  # an attacker on many addresses, against the admin account
        attempt(limited, ADMIN.email, "wrong", address=f"192.0.2.{i}")
    response = attempt(limited, viewer.email, viewer.password, address="10.9.9.9")
    assert response.status_code == 200
    assert response.get_json()["access_token"]


def test_successful_logins_do_not_count(limited):
    for _ in range(6):
        assert attempt(limited, ADMIN.email, ADMIN.password).status_code == 200


def test_zero_turns_it_off(app_factory):
    client = app_factory(PULSE_LOGIN_RATE_LIMIT="0").test_client()
    for _ in range(30):
        assert attempt(client, ADMIN.email, "wrong").status_code == 401


def test_forwarded_for_is_ignored_without_trusted_proxies(limited):
    """A client cannot dodge the address limit by inventing X-Forwarded-For."""
    for i in range(3):
        attempt(limited, f"n{i}@example.test", "x", forwarded=f"203.0.113.{i}")
    assert_error(attempt(limited, "n9@example.test", "x", forwarded="203.0.113.99"), 429,
                 "ERR_RATE_LIMITED")


def test_trusted_proxy_gives_the_client_address(app_factory):
    client = app_factory(PULSE_LOGIN_RATE_LIMIT="3/minute",
                         PULSE_TRUSTED_PROXIES="1").test_client()
    for i in range(3):  # one proxy address, three clients behind it: each its own
        attempt(client, f"p{i}@example.test", "x", forwarded=f"203.0.113.{i}")
    assert attempt(client, "p9@example.test", "x", forwarded="203.0.113.50").status_code == 401
    for _ in range(2):
        attempt(client, f"q{_}@example.test", "x", forwarded="203.0.113.1")
    assert_error(attempt(client, "q9@example.test", "x", forwarded="203.0.113.1"), 429,
                 "ERR_RATE_LIMITED")
