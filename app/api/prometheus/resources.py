"""/api/v1/prometheus/probes — every probe's latest minute in Prometheus text format, for
sites that already run Prometheus (SPEC §13; deploy/grafana/ has a dashboard on it)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import select

from app.api.common import Blueprint
from app.api.security import current_principal, require_role
from app.extensions import db
from app.history.latest import latest_minutes
from app.models import Node, Probe
from app.services.presence import node_views

blp = Blueprint("prometheus", __name__, url_prefix="/api/v1/prometheus",
                description="Probe results for Prometheus")
PROBE_METRICS = (
    ("pulse_probe_latency_ms", "Mean RTT of the probe's latest minute (ms)", "latency_ms", 1),
    ("pulse_probe_latency_p95_ms", "Mean p95 RTT of the latest minute's runs (ms)",
     "latency_p95_ms", 1),
    ("pulse_probe_loss_ratio", "Packet loss of the latest minute (0-1)", "packet_loss_rate",
     0.01),
    ("pulse_probe_jitter_ms", "Mean jitter of the latest minute (ms)", "jitter_ms", 1),
)


class _Exposition:
    """A one-scrape collector: the families built for this request."""

    def __init__(self, families) -> None:
        self.families = families

    def collect(self):
        return iter(self.families)


@blp.route("/probes")
@require_role("viewer")
@blp.response(200, description="Prometheus text exposition format (version 0.0.4)")
def probes():
    """Every probe's latest minute (target and port labels for operators and admins)"""
    with_targets = current_principal().has_role("operator")
    rows = db.session.execute(select(Probe, Node.name).join(Node, Node.id == Probe.node_id)
                              .where(Probe.enabled.is_(True))
                              .order_by(Node.name, Probe.created_at)).all()
    latest = latest_minutes([(str(p.id), str(p.node_id), p.interval_seconds) for p, _ in rows],
                            datetime.now(UTC))
    labels = ["node", "node_id", "probe", "probe_id", "type"] + (
        ["target", "port"] if with_targets else [])
    families = [GaugeMetricFamily(name, doc, labels=labels) for name, doc, _, _ in PROBE_METRICS]
    for probe, node_name in rows:
        minute = latest[str(probe.id)]
        if minute is None:
            continue  # nothing recent: no sample, rather than a stale one
        values = [node_name, str(probe.node_id), probe.label, str(probe.id), probe.type]
        if with_targets:
            values += [probe.target, str(probe.port)]
        for family, (_name, _doc, field, scale) in zip(families, PROBE_METRICS, strict=True):
            if minute.get(field) is not None:  # a dead minute has loss, never a latency
                family.add_metric(values, minute[field] * scale)
    up = GaugeMetricFamily("pulse_node_up", "1 when the node reported in the last 3 minutes",
                           labels=["node", "node_id"])
    for view in node_views(db.session.scalars(select(Node).order_by(Node.name)).all()):
        up.add_metric([view["name"], str(view["id"])], 1.0 if view["status"] == "online" else 0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Exposition([*families, up]))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
