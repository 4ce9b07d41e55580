"""A node's page and its chart data (`/nodes/<id>/data`, the 15 s refresh)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import abort, jsonify, render_template, request
from sqlalchemy import select

from app.alerts.views import spans as alert_spans
from app.dashboard.blueprint import bp
from app.dashboard.charts import columnar
from app.dashboard.security import current_principal, signed_in
from app.extensions import db
from app.history import queries
from app.history.columns import chart_columns
from app.history.sla import sla_csv, sla_report
from app.models import Probe
from app.services.nodes import get_node
from app.services.presence import node_views
from app.services.probes import node_config_version
from app.timeutil import to_ms

RANGES = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24),
          "7d": timedelta(days=7), "30d": timedelta(days=30)}
REFRESH_SECONDS = 15
BUCKET_SECONDS = {"1m": 60, "1h": 3600}


def _parse_time(raw: str | None) -> datetime | None:
    """A `datetime-local` value (taken as UTC) or ISO 8601 with an offset."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        abort(400, f"Not a date and time: {raw[:40]!r} (use YYYY-MM-DDTHH:MM, UTC)")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def chart_range(args, now: datetime) -> tuple[str, datetime, datetime]:
    """(range name, start, end) from ?range=1h|6h|24h|7d|30d|custom&from=&to=."""
    name = args.get("range", "1h")
    if name == "custom":
        end = _parse_time(args.get("to")) or now
        start = _parse_time(args.get("from")) or end - RANGES["1h"]
        if start >= end or end - start > queries.MAX_RANGE:
            abort(400, "The custom range must start before it ends and span at most "
                  f"{queries.MAX_RANGE.days} days.")
        return name, start, end
    if name not in RANGES:
        name = "1h"
    return name, now - RANGES[name], now


def _probes(node_id) -> list[Probe]:
    return db.session.scalars(select(Probe).where(Probe.node_id == node_id)
                              .order_by(Probe.created_at, Probe.id)).all()


def _probe_view(probe: Probe, show_targets: bool) -> dict:
    view = {"id": str(probe.id), "label": probe.label,
            "type": probe.type, "enabled": probe.enabled,
            "interval_seconds": probe.interval_seconds}
    if show_targets:
        view.update(target=probe.target, port=probe.port)
    return view


@bp.route("/nodes/<node_id>")
@signed_in("viewer")
def node_page(node_id):
    node = get_node(node_id)
    view = node_views([node])[0]
    show_targets = current_principal().has_role("operator")
    expected = node_config_version(node.id)
    range_name, start, end = chart_range(request.args, datetime.now(UTC))
    return render_template(
        "node.html", node=view, expected_version=expected,
        drifted=view["last_seen_at"] is not None and node.config_version != expected,
        probes=[_probe_view(p, show_targets) for p in _probes(node.id)],
        range_name=range_name, ranges=list(RANGES), start=start, end=end,
        custom_from=request.args.get("from", ""), custom_to=request.args.get("to", ""))


def _alert_marks(fired: list[dict], probe_id: str, now: datetime) -> list[dict]:
    """The spans a probe's chart shades: its own alerts and the node's (node_offline), as
    epoch seconds (to = now while firing)."""
    return [{"from": int(to_ms(a["from"]) / 1000),
             "to": int(to_ms(a["to"] or now) / 1000), "rule": a["rule"],
             "severity": a["severity"], "firing": a["firing"]}
            for a in fired if a["probe_id"] in (None, probe_id)]


@bp.route("/nodes/<node_id>/data")
@signed_in("viewer", data=True)
def node_data(node_id):
    """Every probe's points over the range, as columnar arrays for uPlot. The points are
    those of GET /api/v1/nodes/<id>/metrics?probe_id=…&resolution=auto for the same range."""
    node = get_node(node_id)
    now = datetime.now(UTC)
    range_name, start, end = chart_range(request.args, now)
    show_targets = current_principal().has_role("operator")
    resolution = queries.pick_resolution("auto", start, end)
    node_probes = _probes(node.id)
    fired = alert_spans(node.id, start, end)
    # every probe's points in one read (a query, not one per probe), as columns
    by_probe = chart_columns(node.id, [p.id for p in node_probes], start, end, now,
                             resolution)
    probes = []
    for probe in node_probes:
        columns = by_probe[str(probe.id)]
        step = max(probe.interval_seconds, BUCKET_SECONDS.get(resolution, 0))
        probes.append({**_probe_view(probe, show_targets), "resolution": resolution,
                       "count": len(columns["ts_ms"]), "series": columnar(columns, step),
                       "alerts": _alert_marks(fired, str(probe.id), now)})
    return jsonify({
        "node_id": str(node.id), "range": range_name,
        "from": start.isoformat().replace("+00:00", "Z"),
        "to": end.isoformat().replace("+00:00", "Z"),
        "resolution": resolution,
        "refresh_seconds": REFRESH_SECONDS if range_name == "1h" else None,
        "probes": probes,
    })


@bp.route("/nodes/<node_id>/sla")
@signed_in("viewer")
def node_sla(node_id):
    """The SLA report of the node's probes (GET /api/v1/reports/sla) over the page's range
    (30 days by default), as a table or, with ?format=csv, a download."""
    node = get_node(node_id)
    args = request.args if "range" in request.args else {**request.args, "range": "30d"}
    range_name, start, end = chart_range(args, datetime.now(UTC))
    rows = sla_report(start, end, node.id)
    if request.args.get("format") == "csv":
        return sla_csv(rows, start, end)
    return render_template("sla.html", node=node, rows=rows, start=start, end=end,
                           range_name=range_name, ranges=list(RANGES))
