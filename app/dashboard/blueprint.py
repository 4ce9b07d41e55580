"""The dashboard blueprint: pages at the fixed paths of SPEC §10, assets under /assets."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, session

from app.dashboard.charts import loss_class
from app.dashboard.security import check_csrf, csrf_token, current_principal

bp = Blueprint("dashboard", __name__, template_folder="templates", static_folder="static",
               static_url_path="/assets")
bp.before_request(check_csrf)


@bp.app_context_processor
def page_globals() -> dict:
    """What every template may use: the signed-in user and the CSRF token."""
    return {"csrf_token": csrf_token, "principal": current_principal,
            "user_email": lambda: session.get("email")}


@bp.app_template_filter("iso")
def iso(value) -> str:
    """ISO 8601 UTC with Z (naive values, from SQLite, are UTC)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@bp.app_template_filter("ago")
def ago(value) -> str:
    if value is None:
        return "never"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - value).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


@bp.app_template_filter("combine_page")
def combine_page(args, page: int) -> dict:
    """The query arguments of this page with another page number (pager links)."""
    return {**args.to_dict(), "page": page}


bp.add_app_template_filter(loss_class, "loss_class")
