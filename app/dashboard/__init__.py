"""The web dashboard (SPEC §10): server-rendered pages over the same services as the API."""

from __future__ import annotations

from flask import Flask

from app.dashboard.blueprint import bp
from app.dashboard.errors import install_page_errors
from app.dashboard.security import DashboardSessions, add_page_headers


def init_dashboard(app: Flask) -> None:
    """Sessions on page paths, the blueprint, page headers and page errors. Called after
    the API's error handlers are registered (they are wrapped, not replaced)."""
    from app.dashboard.views import alerts, manage, node, pages  # noqa: F401 (routes on bp)

    app.session_interface = DashboardSessions()
    app.register_blueprint(bp)
    app.after_request(add_page_headers)
    install_page_errors(app)
