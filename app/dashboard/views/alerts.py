"""/alerts: firing and pending alerts, their history, and (operator+) the forms for rules,
channels and silences — the API's services and refusals, shown next to the field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from flask import redirect, render_template, request, url_for
from sqlalchemy import select

from app.alerts import channels as channel_service
from app.alerts import rules as rule_service
from app.alerts import silences as silence_service
from app.alerts import views as alert_views
from app.alerts.outbox import test_channel
from app.dashboard.blueprint import bp
from app.dashboard.security import current_principal, signed_in
from app.errors import ApiError
from app.extensions import db
from app.models import Node
from app.models.alert import CHANNEL_KINDS, METRICS, OPS, SEVERITIES

HISTORY_DAYS = 7
HISTORY_ROWS = 100
NUMBERS = {"threshold": float, "recovery_threshold": float, "for_minutes": int,
           "repeat_minutes": int}


def _node_names() -> dict:
    return {str(k): v for k, v in db.session.execute(
        select(Node.id, Node.name).order_by(Node.name)).all()}


def _page(forms: dict | None = None, errors: dict | None = None, status: int = 200):
    node_filter = request.args.get("node_id") or None
    try:
        node_uuid = uuid.UUID(node_filter) if node_filter else None
    except ValueError:
        node_uuid = None
    now = datetime.now(UTC)
    open_alerts = [a for a in alert_views.list_alerts(None, node_uuid)
                   if a["state"] in ("firing", "pending")]
    history = alert_views.list_events(now - timedelta(days=HISTORY_DAYS), None)[:HISTORY_ROWS]
    forms = forms or {}
    return render_template(
        "alerts.html", open_alerts=open_alerts, history=history,
        rules=rule_service.list_rules(), channels=channel_service.list_channels(),
        silences=silence_service.list_silences(False, now), names=_node_names(),
        node_filter=node_uuid, metrics=METRICS, ops=OPS, severities=SEVERITIES,
        kinds=CHANNEL_KINDS, rule_form=forms.get("rule", {"for_minutes": "3"}),
        channel_form=forms.get("channel", {}), silence_form=forms.get("silence", {}),
        errors=errors or {}, saved=request.args.get("saved"),
        tested=request.args.get("tested"), outcome=request.args.get("outcome"),
        now=now), status


@bp.route("/alerts", methods=["GET"])
@signed_in("viewer")
def alerts():
    return _page()


def _done(what: str, anchor: str):
    return redirect(url_for("dashboard.alerts", saved=what) + "#" + anchor)


def _refused(err: ApiError) -> dict[str, list[str]]:
    return err.details.get("fields") or {"_form": [err.message]}


def _rule_from_form(form) -> tuple[dict | None, dict]:
    data: dict = {"name": form.get("name", "").strip(), "metric": form.get("metric", ""),
                  "mode": form.get("mode") or "static",
                  "severity": form.get("severity") or "warning",
                  "op": form.get("op") or None, "node_id": None,
                  "channel_ids": form.getlist("channel_ids"),
                  "enabled": form.get("enabled") == "on"}
    errors: dict[str, list[str]] = {}
    for name, kind in NUMBERS.items():
        raw = form.get(name, "").strip()
        try:
            data[name] = kind(raw) if raw else None
        except ValueError:
            errors[name] = ["must be a number" if kind is float else "must be a whole number"]
    if data["for_minutes"] is None:
        data["for_minutes"] = 3
    if form.get("node_id"):
        try:
            data["node_id"] = uuid.UUID(form["node_id"])
        except ValueError:
            errors["node_id"] = ["no such node"]
    if not data["name"]:
        errors["name"] = ["required"]
    for name, allowed in (("metric", METRICS), ("severity", SEVERITIES)):
        if data[name] not in allowed:
            errors[name] = ["choose one of the list"]
    return (None, errors) if errors else (data, {})


@bp.route("/alerts/rules", methods=["POST"])
@signed_in("operator")
def alert_rule_create():
    data, errors = _rule_from_form(request.form)
    if data is not None:
        try:
            rule = rule_service.create_rule(data)
            return _done(rule.name, "rules")
        except ApiError as err:
            errors = _refused(err)
    form = request.form.to_dict() | {"channel_ids": request.form.getlist("channel_ids")}
    return _page({"rule": form}, errors, 400)


@bp.route("/alerts/rules/<rule_id>/enabled", methods=["POST"])
@signed_in("operator")
def alert_rule_enable(rule_id):
    rule = rule_service.get_rule(rule_id)
    rule_service.update_rule(rule, {"enabled": request.form.get("enabled") == "true"})
    return _done(rule.name, "rules")


@bp.route("/alerts/rules/<rule_id>/delete", methods=["POST"])
@signed_in("operator")
def alert_rule_delete(rule_id):
    rule = rule_service.get_rule(rule_id)
    name = rule.name
    rule_service.delete_rule(rule)
    return _done(name, "rules")


@bp.route("/alerts/channels", methods=["POST"])
@signed_in("operator")
def alert_channel_create():
    name, kind = request.form.get("name", "").strip(), request.form.get("kind", "")
    url = request.form.get("url", "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["required"]
    if kind not in CHANNEL_KINDS:
        errors["kind"] = ["choose apprise or webhook"]
    if not url:
        errors["url"] = ["required"]
    if not errors:
        try:
            channel_service.create_channel(name[:255], kind, url)
            return _done(name, "channels")
        except ApiError as err:
            errors = _refused(err)
    # The URL is a secret: never sent back into the page, even when refused.
    return _page({"channel": {"name": name, "kind": kind}}, errors, 400)


@bp.route("/alerts/channels/<channel_id>/test", methods=["POST"])
@signed_in("operator")
def alert_channel_test(channel_id):
    channel = channel_service.get_channel(channel_id)
    outcome = test_channel(channel)
    shown = outcome.status if outcome.error is None else f"{outcome.status}: {outcome.error}"
    return redirect(url_for("dashboard.alerts", tested=channel.name, outcome=shown)
                    + "#channels")


@bp.route("/alerts/channels/<channel_id>/delete", methods=["POST"])
@signed_in("operator")
def alert_channel_delete(channel_id):
    channel = channel_service.get_channel(channel_id)
    name = channel.name
    channel_service.delete_channel(channel)
    return _done(name, "channels")


def _when(raw: str) -> datetime | None:
    """A `datetime-local` value, taken as UTC."""
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@bp.route("/alerts/silences", methods=["POST"])
@signed_in("operator")
def alert_silence_create():
    form = request.form
    errors: dict[str, list[str]] = {}
    data: dict = {"comment": form.get("comment", "").strip()[:1000]}
    for name in ("starts_at", "ends_at"):
        data[name] = _when(form.get(name, ""))
        if data[name] is None:
            errors[name] = ["a date and time (UTC)"]
    for name in ("node_id", "rule_id"):
        try:
            data[name] = uuid.UUID(form[name]) if form.get(name) else None
        except ValueError:
            errors[name] = ["choose one of the list"]
    if not errors:
        try:
            silence_service.create_silence(data, current_principal().id)
            return _done("silence", "silences")
        except ApiError as err:
            errors = _refused(err)
    return _page({"silence": form.to_dict()}, errors, 400)


@bp.route("/alerts/silences/<silence_id>/delete", methods=["POST"])
@signed_in("operator")
def alert_silence_delete(silence_id):
    silence_service.delete_silence(silence_id)
    return _done("silence", "silences")
