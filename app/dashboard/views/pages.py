"""Sign-in, the overview, the matrix and drift (alerts: views/alerts.py)."""

from __future__ import annotations

import secrets

from flask import abort, redirect, render_template, request, session, url_for

from app.alerts.views import firing_by_node
from app.dashboard.blueprint import bp
from app.dashboard.charts import sparkline
from app.dashboard.security import current_principal, safe_next, signed_in
from app.errors import ApiError
from app.services import drift as drift_service
from app.services.auth import login as login_service
from app.services.auth import password_stamp
from app.services.matrix import matrix as build_matrix
from app.services.overview import SORT_KEYS, STATUSES
from app.services.overview import overview as build_overview

PER_PAGE = 100


def _page_arg() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1


@bp.route("/login", methods=["GET", "POST"])
def login():
    target = safe_next(request.values.get("next")) or url_for("dashboard.overview")
    if request.method == "GET":
        if current_principal() is not None:
            return redirect(target)
        return render_template("login.html", next=target, email="", error=None)
    email = request.form.get("email", "")
    try:
        user = login_service(email, request.form.get("password", ""), request.remote_addr)
    except ApiError as err:
        headers = {k: v for k, v in err.headers.items() if k == "Retry-After"}
        return render_template("login.html", next=target, email=email,
                               error=err.message), err.status, headers
    session.clear()  # a new session id for the signed-in user (no session fixation)
    session.permanent = True
    session.update(uid=str(user.id), pw=password_stamp(user), email=user.email,
                   csrf=secrets.token_urlsafe(32))
    return redirect(target)


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("dashboard.login"))


@bp.route("/")
@signed_in("viewer")
def overview():
    args = request.args
    status = args.get("status") if args.get("status") in STATUSES else None
    sort = args.get("sort") if args.get("sort") in SORT_KEYS else "name"
    descending = args.get("dir") == "desc"
    text = args.get("q", "").strip()[:100]
    result = build_overview(text, status, sort, descending, _page_arg(), PER_PAGE)
    sparks = {row.node_id: sparkline(row.sparkline) for row in result.rows}
    return render_template("overview.html", result=result, sparks=sparks, q=text,
                           firing=firing_by_node(),
                           status=status, sort=sort, descending=descending,
                           sort_keys=SORT_KEYS, statuses=STATUSES)


@bp.route("/matrix")
@signed_in("viewer")
def matrix():
    show_targets = current_principal().has_role("operator")
    result = build_matrix(show_targets, _page_arg(), PER_PAGE)
    return render_template("matrix.html", result=result)


@bp.route("/drift", methods=["GET"])
@signed_in("viewer")
def drift():
    from flask import current_app

    instances = drift_service.list_instances(
        request.args.get("app") or None, request.args.get("profile") or None,
        current_app.config["PULSE_DRIFT_STALE_SECONDS"])
    groups: dict[tuple[str, str], list[dict]] = {}
    for item in instances:
        groups.setdefault((item["app"], item["profile"]), []).append(item)
    return render_template("drift.html", groups=groups, saved=request.args.get("saved"))


@bp.route("/drift/expected", methods=["POST"])
@signed_in("operator")
def drift_expected():
    app_name = request.form.get("app", "").strip()
    profile = request.form.get("profile", "").strip()
    version = request.form.get("expected_version", "").strip()
    if not (app_name and profile and version) or max(map(len, (app_name, profile))) > 128:
        abort(400, "app, profile and expected version are all needed (app and profile at "
                   "most 128 characters).")
    drift_service.set_expected(app_name, profile, version[:128])
    return redirect(url_for("dashboard.drift", saved=f"{app_name}/{profile}"))

