"""Dashboard sessions, sign-in checks, CSRF tokens and the security headers of pages.

Sessions are Flask's signed cookies, opened only for dashboard paths: the API, the
operations endpoints and the API docs never read or set a cookie, so a cookie can never
authenticate an /api/ request (they take bearers only, SPEC §5).
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, abort, g, jsonify, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from app.services.auth import Principal, session_principal

# Paths that answer JSON errors and take no session (SPEC §5).
API_PREFIXES = ("/api/", "/docs-assets/")
API_PATHS = frozenset({"/api", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"})

# Pages: only our own origin, no inline script or style, never framed.
CSP = ("default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; "
       "object-src 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def is_api_path(path: str) -> bool:
    return path in API_PATHS or path.startswith(API_PREFIXES) or path.startswith("/docs/")


class DashboardSessions(SecureCookieSessionInterface):
    """Signed-cookie sessions on dashboard paths only."""

    def open_session(self, app: Flask, request):
        if is_api_path(request.path):
            return None  # Flask substitutes a null session that is never saved
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        if is_api_path(request.path):
            return
        super().save_session(app, session, response)


def add_page_headers(response):
    """after_request: the headers of SPEC §10 on everything but the API paths."""
    if not is_api_path(request.path):
        for name, value in PAGE_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            # Pages may show a token once; no cache keeps them.
            response.headers.setdefault("Cache-Control", "no-store")
    return response


def current_principal() -> Principal | None:
    """The signed-in user of this request, resolved once (role read fresh, ≤ 5 s cache)."""
    if "dash_principal" not in g:
        uid, stamp = session.get("uid"), session.get("pw")
        g.dash_principal = session_principal(uid, stamp) if uid and stamp else None
    return g.dash_principal


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site (no open redirect), else None."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return None
    return target


def signed_in(minimum: str = "viewer", data: bool = False) -> Callable:
    """View decorator: a visitor not signed in goes to /login?next=… (a data route answers
    401 JSON, which the page's script turns into a reload); a role below `minimum` gets
    the 403 page."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if principal is None:
                if data:
                    response = jsonify({"code": "ERR_UNAUTHORIZED", "message": "Sign in again",
                                        "details": {}})
                    response.status_code = 401
                    return response
                return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
            if not principal.has_role(minimum):
                abort(403, f"This page needs the {minimum} role or above.")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def csrf_token() -> str:
    """This session's CSRF token (created on first use); every form posts it back."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """before_request of the dashboard: a state-changing request without the session's
    token is refused with 400."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        abort(400, "The form's security token is missing or out of date: reload the page "
                   "and submit it again.")
