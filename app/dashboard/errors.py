"""Errors on dashboard pages answer as pages; on API paths exactly as before (JSON).

An unknown path outside the API is a page for a browser (Accept: text/html) and JSON for
any other client, as before the dashboard.

Every app-level error handler (registered by app.api.error_handlers before this runs) is
wrapped: the original handler still decides the status, code and message, so 400, 404,
405, 413, 429, 500 and 503 mean the same on both sides; only a page path gets them
rendered as HTML.
"""

from __future__ import annotations

import functools
import logging

from flask import Flask, current_app, render_template, request
from werkzeug.exceptions import HTTPException

from app.dashboard.security import is_api_path

log = logging.getLogger(__name__)
KEPT_HEADERS = ("Retry-After", "Allow")
TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found",
          405: "Method not allowed", 413: "Too large", 429: "Too many attempts",
          500: "Something went wrong", 503: "Temporarily unavailable"}


def render_error_page(status: int, message: str, headers=None):
    try:
        body = render_template("error.html", status=status, message=message,
                               title=TITLES.get(status, "Error"))
    except Exception:  # the page must not turn an error into a worse one
        log.exception("error page failed to render")
        body = f"{status} {TITLES.get(status, 'Error')}: {message}"
    return body, status, {k: v for k, v in (headers or {}).items() if k in KEPT_HEADERS}


def wants_page() -> bool:
    """A dashboard route's error is a page; so is any other non-API path's when the client
    asks for HTML first (a browser). Everything else keeps the JSON error."""
    if is_api_path(request.path):
        return False
    if request.blueprint == "dashboard" or _dashboard_path():
        return True
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def _dashboard_path() -> bool:
    """Whether the path is a dashboard route for some method (a 405 has no blueprint)."""
    adapter = current_app.url_map.bind("localhost")
    for method in ("GET", "POST"):
        try:
            endpoint, _args = adapter.match(request.path, method=method)
        except HTTPException:
            continue
        return endpoint.startswith("dashboard.")
    return False


def _as_page(handler):
    @functools.wraps(handler)
    def handle(err):
        response = handler(err)
        if not wants_page():
            return response
        body = response.get_json(silent=True) or {}
        message = body.get("message") or TITLES.get(response.status_code, "Error")
        if response.status_code >= 500 and response.status_code != 503:
            message = "Pulse could not answer this page. The error is in the server log."
        return render_error_page(response.status_code, message, response.headers)

    return handle


def install_page_errors(app: Flask) -> None:
    """Wrap the app's error handlers (call after they are registered)."""
    for by_class in app.error_handler_spec[None].values():
        for exc_class, handler in list(by_class.items()):
            by_class[exc_class] = _as_page(handler)
