"""Assertions shared by the API tests."""

from __future__ import annotations


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    """The response is our unified JSON error with this status and code (and field)."""
    assert response.status_code == status, response.data[:500]
    assert response.mimetype == "application/json", response.data[:500]
    assert b"<html" not in response.data.lower()
    payload = response.get_json()
    assert set(payload) == {"code", "message", "details"}, payload
    assert payload["code"] == code, payload
    assert isinstance(payload["message"], str) and payload["message"], payload
    assert isinstance(payload["details"], dict), payload
    if field is not None:
        assert field in payload["details"]["fields"], payload
    return payload


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}
