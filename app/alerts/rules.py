"""Alert rules: the checks across fields that a schema cannot make, and their storage.

Each refusal names its field: ERR_INVALID_RULE for what the rule says, and the missing
object's own code for an unknown node, probe or channel (as probes answer
ERR_NODE_NOT_FOUND).
"""

from __future__ import annotations

import math
import uuid

from sqlalchemy import delete, select

from app.errors import ApiError
from app.extensions import db
from app.models import AlertRule, Node, NotificationChannel, Probe
from app.models.alert import BASELINE_METRICS, PROBE_METRICS

RULE_FIELDS = ("name", "metric", "op", "threshold", "recovery_threshold", "for_minutes",
               "mode", "node_id", "probe_id", "severity", "channel_ids", "repeat_minutes",
               "enabled")
DEFAULTS = {"for_minutes": 3, "mode": "static", "severity": "warning", "channel_ids": [],
            "repeat_minutes": None, "enabled": True, "op": None, "threshold": None,
            "recovery_threshold": None, "node_id": None, "probe_id": None}


def _refuse(field: str, message: str, code: str = "ERR_INVALID_RULE") -> ApiError:
    return ApiError(400, code, f"{field}: {message}", {"fields": {field: [message]}})


def _check_ranges(rule: dict) -> None:
    """What the API's schema checks too, for callers without it (the dashboard's forms)."""
    if not 1 <= rule["for_minutes"] <= 1440:
        raise _refuse("for_minutes", "must be 1-1440")
    if rule["repeat_minutes"] is not None and not 1 <= rule["repeat_minutes"] <= 10080:
        raise _refuse("repeat_minutes", "must be 1-10080, or empty")


def _check_semantics(rule: dict) -> None:
    metric = rule["metric"]
    if metric in PROBE_METRICS:
        for name in ("op", "threshold"):
            if rule.get(name) is None:
                raise _refuse(name, f"required for {metric}")
        for name in ("threshold", "recovery_threshold"):
            value = rule.get(name)
            if value is not None and not math.isfinite(value):
                raise _refuse(name, "must be a finite number")
    else:
        for name in ("op", "threshold", "recovery_threshold"):
            if rule.get(name) is not None:
                raise _refuse(name, f"{metric} takes no {name}")
        if rule["probe_id"] is not None:
            raise _refuse("probe_id", f"{metric} watches nodes or SDK instances, not probes")
        if metric == "drift" and rule["node_id"] is not None:
            raise _refuse("node_id", "drift watches SDK instances, not nodes")
    if rule["mode"] == "baseline":
        if metric not in BASELINE_METRICS:
            raise _refuse("mode", "baseline is only for " + ", ".join(BASELINE_METRICS))
        if rule["threshold"] is not None and rule["threshold"] <= 0:
            raise _refuse("threshold", "a baseline factor must be above 0")
    recovery = rule.get("recovery_threshold")
    if recovery is not None and rule.get("threshold") is not None:
        upward = rule["op"] in (">", ">=")
        if (upward and recovery > rule["threshold"]) or (
                not upward and recovery < rule["threshold"]):
            raise _refuse("recovery_threshold", "must not be on the firing side of threshold")


def _check_references(rule: dict) -> None:
    if rule["node_id"] is not None and db.session.get(Node, rule["node_id"]) is None:
        raise _refuse("node_id", "no such node", "ERR_NODE_NOT_FOUND")
    if rule["probe_id"] is not None:
        probe = db.session.get(Probe, rule["probe_id"])
        if probe is None:
            raise _refuse("probe_id", "no such probe", "ERR_PROBE_NOT_FOUND")
        if rule["node_id"] is not None and probe.node_id != rule["node_id"]:
            raise _refuse("probe_id", "this probe is not on node_id")
    wanted = {uuid.UUID(str(c)) for c in rule["channel_ids"]}
    if wanted:
        found = set(db.session.scalars(select(NotificationChannel.id).where(
            NotificationChannel.id.in_(wanted))))
        if wanted - found:
            raise _refuse("channel_ids", "no such channel: " + ", ".join(
                sorted(str(c) for c in wanted - found)), "ERR_CHANNEL_NOT_FOUND")


def validated(rule: dict) -> dict:
    """A whole rule (defaults filled in) checked across its fields; raises ApiError."""
    rule = {**DEFAULTS, **rule}
    rule["channel_ids"] = list(dict.fromkeys(str(c) for c in rule["channel_ids"] or []))
    _check_ranges(rule)
    _check_semantics(rule)
    _check_references(rule)
    return rule


def create_rule(data: dict) -> AlertRule:
    rule = AlertRule(**validated(data))
    db.session.add(rule)
    db.session.commit()
    return rule


def get_rule(rule_id) -> AlertRule:
    try:
        rule = db.session.get(AlertRule, uuid.UUID(str(rule_id)))
    except ValueError:
        rule = None
    if rule is None:
        raise ApiError(404, "ERR_RULE_NOT_FOUND", "No such alert rule")
    return rule


def current(rule: AlertRule) -> dict:
    return {name: getattr(rule, name) for name in RULE_FIELDS}


def update_rule(rule: AlertRule, changes: dict, replace: bool = False) -> AlertRule:
    """PUT (`replace`: the body is the whole rule) or PATCH (the body's fields change)."""
    merged = validated(dict(changes) if replace else {**current(rule), **changes})
    for name, value in merged.items():
        setattr(rule, name, value)
    db.session.commit()
    return rule


def delete_rule(rule: AlertRule) -> None:
    """Its alerts and events go with it (an alert belongs to its rule)."""
    db.session.execute(delete(AlertRule).where(AlertRule.id == rule.id))
    db.session.commit()


def list_rules() -> list[AlertRule]:
    return list(db.session.scalars(select(AlertRule).order_by(AlertRule.created_at,
                                                              AlertRule.id)))
