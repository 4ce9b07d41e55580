"""evaluate_alerts: every enabled rule against every subject in its scope, once a minute.

Reads are done once per run (rules, channels, silences, open alerts, the probes' recent
runs in one pipelined Redis read); what changes is written alert by alert through
`transitions` (compare-and-set), and the outbox rows written are handed to `dispatch`
after their transactions committed.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace

from sqlalchemy import func, select

from app.alerts import baseline, conditions, dispatch, readings, subjects, transitions
from app.alerts.rules import current
from app.alerts.silences import active_silences, silenced
from app.extensions import db, get_redis
from app.models import Alert, AlertRule, NotificationChannel
from app.models.alert import PROBE_METRICS
from app.telemetry.alert_stats import record_evaluation

log = logging.getLogger(__name__)
Rule = SimpleNamespace  # an enabled AlertRule's fields, copied (see evaluate)


@dataclass
class Report:
    rules: int = 0
    subjects: int = 0
    transitions: int = 0
    outbox: list[int] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Run:
    now: datetime
    channels: set[uuid.UUID]
    silences: list
    open: dict[tuple[str, str], transitions.OpenAlert]
    report: Report
    seen: set[tuple[str, str]] = field(default_factory=set)


def evaluate(now: datetime | None = None) -> Report:
    """Judge every enabled rule now (or at `now`: tests post back-dated points)."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    # Plain copies: every transition commits, which would expire session objects and
    # reload them attribute by attribute.
    rules = [SimpleNamespace(id=r.id, **current(r)) for r in db.session.scalars(
        select(AlertRule).where(AlertRule.enabled.is_(True)))]
    silences = [SimpleNamespace(rule_id=s.rule_id, node_id=s.node_id, probe_id=s.probe_id)
                for s in active_silences(now)]
    run = _Run(now=now, channels=set(db.session.scalars(select(NotificationChannel.id))),
               silences=silences, open=transitions.load_open(),
               report=Report(rules=len(rules)))
    probe_rules = [r for r in rules if r.metric in PROBE_METRICS]
    if probe_rules:
        _probe_rules(run, probe_rules)
    node_rules = [r for r in rules if r.metric == "node_offline"]
    if node_rules:
        _node_rules(run, node_rules)
    drift_rules = [r for r in rules if r.metric == "drift"]
    if drift_rules:
        _drift_rules(run, drift_rules)
    _close_orphans(run, {str(r.id): r for r in rules})
    db.session.commit()
    dispatch.dispatch(run.report.outbox)
    run.report.seconds = time.perf_counter() - started
    _record(run.report)
    return run.report


def _probe_rules(run: _Run, rules: list[Rule]) -> None:
    every = subjects.probe_subjects()
    scoped = {str(r.id): [s for s in every if subjects.in_scope(r, s)] for r in rules}
    needed = {s.probe_id: s for group in scoped.values() for s in group}
    window = max(max(r.for_minutes, conditions.CLEAN_MINUTES) for r in rules)
    runs = readings.recent_runs([(s.probe_id, s.node_id, s.interval_seconds)
                                 for s in needed.values()], window, run.now)
    now_ms = int(run.now.timestamp() * 1000)
    minutes = {}
    for probe_id, subject in needed.items():
        probe_runs = runs.get(probe_id, [])
        last = conditions.latest_minute_ms(probe_runs, now_ms, subject.interval_seconds)
        minutes[probe_id] = conditions.minutes(probe_runs, subject.interval_seconds, last,
                                               window)
    for rule in rules:
        medians = baseline.medians(rule.metric, run.now) if rule.mode == "baseline" else None
        recovery = rule.threshold if rule.recovery_threshold is None else rule.recovery_threshold
        count = max(rule.for_minutes, conditions.CLEAN_MINUTES)
        for subject in scoped[str(rule.id)]:
            run.report.subjects += 1
            scale = 1.0
            if medians is not None:
                if subject.probe_id not in medians:
                    run.seen.add((str(rule.id), subject.key))  # not evaluated: kept as is
                    continue
                scale = medians[subject.probe_id]
            values = conditions.values_of(minutes[subject.probe_id][-count:], rule.metric)
            alert = run.open.get((str(rule.id), subject.key))
            new = conditions.judge(alert.state if alert else None, values, rule.op,
                                   rule.threshold * scale, recovery * scale, rule.for_minutes)
            latest = values[-1] if isinstance(values[-1], float | int) else None
            _apply(run, rule, subject, alert, new, latest, rule.threshold * scale)


def _node_rules(run: _Run, rules: list[Rule]) -> None:
    nodes = subjects.node_subjects()
    for rule in rules:
        for subject in (s for s in nodes if subjects.in_scope(rule, s)):
            run.report.subjects += 1
            silent = (run.now - subject.last_seen_at).total_seconds()
            alert = run.open.get((str(rule.id), subject.key))
            new = conditions.judge_offline(alert.state if alert else None, silent,
                                           rule.for_minutes)
            _apply(run, rule, subject, alert, new, round(max(silent, 0) / 60, 2),
                   float(rule.for_minutes))


def _whole_minutes(since: datetime | None, now: datetime) -> int | None:
    if since is None:
        return None
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    return int(now.timestamp() // 60 - since.timestamp() // 60)


def _drift_rules(run: _Run, rules: list[Rule]) -> None:
    instances = subjects.drift_subjects(run.now)
    for rule in rules:
        for subject in instances:
            run.report.subjects += 1
            alert = run.open.get((str(rule.id), subject.key))
            state = alert.state if alert else None
            clear_since = None
            if alert is not None and not subject.drifted:
                clear_since = alert.clear_since or run.now
            new = conditions.judge_drift(
                state, subject.drifted, _whole_minutes(alert.started_at if alert else None,
                                                       run.now) or 0,
                _whole_minutes(clear_since, run.now), rule.for_minutes)
            _apply(run, rule, subject, alert, new, 1.0 if subject.drifted else 0.0, None,
                   clear_since=clear_since)


def _channels(run: _Run, rule: Rule) -> list[uuid.UUID]:
    ids = []
    for value in rule.channel_ids or []:
        channel_id = uuid.UUID(str(value))
        if channel_id in run.channels:
            ids.append(channel_id)
    return ids


def _apply(run: _Run, rule: Rule, subject, alert, new: str | None, value,
           threshold, clear_since: datetime | None = None) -> None:
    run.seen.add((str(rule.id), subject.key))
    if new is None and alert is None:
        return  # the common case: nothing open, nothing to open
    described = subject.describe()
    quiet = silenced(run.silences, rule.id, described.get("node_id"),
                     described.get("probe_id"))
    channels = _channels(run, rule)
    if new is None:
        if alert is not None:
            _keep(run, rule, alert, value, channels, quiet, clear_since)
        return
    run.report.transitions += 1
    if alert is None:
        run.report.outbox += transitions.open_alert(rule, subject, new, value, threshold,
                                                    run.now, channels, quiet)
    else:
        run.report.outbox += transitions.change(alert, new, value, run.now, channels, quiet)


def _keep(run: _Run, rule: Rule, alert, value, channels, quiet: bool,
          clear_since: datetime | None) -> None:
    """An alert staying in its state: re-notify when due, keep its value current."""
    if alert.state == "firing" and not quiet:
        reason = None
        if not alert.notified:
            reason = "silence ended"
        elif rule.repeat_minutes and alert.last_notified_at is not None:
            last = alert.last_notified_at
            last = last if last.tzinfo else last.replace(tzinfo=UTC)
            if (run.now - last).total_seconds() >= rule.repeat_minutes * 60:
                reason = "repeat"
        if reason:
            run.report.outbox += transitions.renotify(alert, value, run.now, channels, reason)
            return
    transitions.note(alert, value, clear_since)


def _close_orphans(run: _Run, rules: dict[str, Rule]) -> None:
    """Open alerts nobody evaluated: their rule was disabled, their subject left its
    scope or is gone (a disabled probe, a forgotten SDK instance). Firing ones resolve,
    pending ones close."""
    for key, alert in run.open.items():
        if key in run.seen:
            continue
        rule = rules.get(key[0])
        new = "resolved" if alert.state == "firing" else "ok"
        channels = _channels(run, rule) if rule is not None else []
        run.report.transitions += 1
        run.report.outbox += transitions.change(alert, new, alert.value, run.now, channels,
                                                False, reason="rule or subject gone")


def _record(report: Report) -> None:
    firing = dict(db.session.execute(
        select(AlertRule.severity, func.count()).join(Alert, Alert.rule_id == AlertRule.id)
        .where(Alert.state == "firing").group_by(AlertRule.severity)).all())
    db.session.commit()
    try:
        handle = get_redis()
        record_evaluation(handle.client, handle.prefix, firing, report.seconds)
    except Exception:  # telemetry must not fail the evaluation
        log.warning("could not record alert evaluation figures", exc_info=True)
