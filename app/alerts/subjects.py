"""What a rule watches: probes, nodes or SDK instances, with the labels a message shows.

A subject's key ("probe:<id>", "node:<id>", "drift:<app>/<profile>/<instance_id>") names
it in the `alerts` table; its labels are what viewers may see (probe labels, never
targets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import Text, cast, select

from app.extensions import db
from app.models import DriftExpected, DriftInstance, Node, Probe
from app.services.drift import is_drifted
from app.services.presence import fresh_seen


@dataclass(frozen=True)
class ProbeSubject:
    probe_id: str
    node_id: str
    interval_seconds: int
    node_name: str
    label: str

    @property
    def key(self) -> str:
        return f"probe:{self.probe_id}"

    def describe(self) -> dict:
        return {"node_id": self.node_id, "probe_id": self.probe_id, "node": self.node_name,
                "label": f"{self.node_name} / {self.label}", "probe": self.label}


@dataclass(frozen=True)
class NodeSubject:
    node_id: str
    node_name: str
    last_seen_at: datetime

    @property
    def key(self) -> str:
        return f"node:{self.node_id}"

    def describe(self) -> dict:
        return {"node_id": self.node_id, "node": self.node_name, "label": self.node_name}


@dataclass(frozen=True)
class DriftSubject:
    app: str
    profile: str
    instance_id: str
    drifted: bool
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return f"drift:{self.app}/{self.profile}/{self.instance_id}"

    def describe(self) -> dict:
        return {"instance_id": self.instance_id, "app": self.app, "profile": self.profile,
                "label": f"{self.app}/{self.profile}/{self.instance_id}"}


def probe_subjects() -> list[ProbeSubject]:
    """Every enabled probe, with its node's name (one query)."""
    probe_id, node_id = Probe.id, Probe.node_id
    if db.engine.dialect.name == "postgresql":
        # uuid::text in the database: 10,000 UUID objects built and printed again cost
        # more than the rest of the query.
        probe_id, node_id = cast(Probe.id, Text), cast(Probe.node_id, Text)
    rows = db.session.execute(
        select(probe_id, node_id, Probe.interval_seconds, Probe.name, Probe.type,
               Node.name).join(Node, Node.id == Probe.node_id).where(Probe.enabled.is_(True)))
    return [ProbeSubject(str(pid), str(nid), interval, node_name,
                         name or f"{type_} #{str(pid)[:8]}")
            for pid, nid, interval, name, type_, node_name in rows]


def node_subjects() -> list[NodeSubject]:
    """Every node that has ever reported, with its freshest last heartbeat (Redis holds
    what the flush has not written yet)."""
    rows = db.session.execute(select(Node.id, Node.name, Node.last_seen_at)).all()
    fresh = fresh_seen([str(r[0]) for r in rows])
    subjects = []
    for node_id, name, last_seen in rows:
        seen = fresh.get(str(node_id), (last_seen, None))[0]
        if seen is None:
            continue  # never seen: not offline, just not there yet
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)
        subjects.append(NodeSubject(str(node_id), name, seen))
    return subjects


def drift_subjects(now: datetime) -> list[DriftSubject]:
    """SDK instances not forgotten (silent less than PULSE_DRIFT_FORGET_HOURS)."""
    forget = timedelta(hours=current_app.config.get("PULSE_DRIFT_FORGET_HOURS", 24))
    expected = {(e.app, e.profile): e.expected_version
                for e in db.session.scalars(select(DriftExpected))}
    rows = db.session.execute(select(
        DriftInstance.app, DriftInstance.profile, DriftInstance.instance_id,
        DriftInstance.config_version, DriftInstance.last_seen_at))
    subjects = []
    for app_name, profile, instance_id, version, last_seen in rows:
        last_seen = last_seen if last_seen.tzinfo else last_seen.replace(tzinfo=UTC)
        if now - last_seen > forget:
            continue
        subjects.append(DriftSubject(app_name, profile, instance_id,
                                     is_drifted(version, expected.get((app_name, profile)))))
    return subjects


def in_scope(rule, subject) -> bool:
    """Whether a rule's node_id / probe_id filter admits the subject."""
    if rule.probe_id is not None and getattr(subject, "probe_id", None) != str(rule.probe_id):
        return False
    return rule.node_id is None or getattr(subject, "node_id", None) == str(rule.node_id)
