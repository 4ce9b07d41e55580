"""Bearer authentication and role checks for the views."""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import g, request

from app.errors import ApiError
from app.services import audit
from app.services.auth import Principal, authenticate


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_principal(allow_node: bool = False) -> Principal:
    principal = authenticate(bearer_token() or "", allow_node=allow_node)
    if principal is None:
        raise ApiError(401, "ERR_UNAUTHORIZED", "Missing or invalid bearer token",
                       headers={"WWW-Authenticate": "Bearer"})
    g.principal = principal
    audit.set_actor(principal.kind, principal.id, principal.label)
    return principal


def require_role(minimum: str) -> Callable:
    """View decorator: 401 without a valid bearer, 403 below `minimum`."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if not principal.has_role(minimum):
                raise ApiError(403, "ERR_FORBIDDEN", f"This needs the {minimum} role or above")
            return view(*args, **kwargs)

        return wrapper

    return decorator
