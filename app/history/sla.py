"""The SLA report (SPEC §12): per probe over a period, from the hourly rollups (runs,
availability, loss, jitter) and the minute aggregates (latency percentiles).

The period's partial hours at either end, and hours not rolled up yet (the open hour),
count from the raw runs, so the report reaches up to now. Latency percentiles are of the
minute means, null where the period reaches past the minute retention.
"""

from __future__ import annotations

import csv
import io
import math
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from flask import Response, current_app
from sqlalchemy import Float, and_, case, func, select, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import array as sa_array

from app.extensions import db
from app.models import Metric, MetricRollup, Node, Probe
from app.timeutil import HOUR_MS, from_ms, to_ms


def _totals_from_rollups(probe_ids: list, start: datetime, end: datetime) -> dict:
    """probe -> [runs, runs available, latency runs, loss sum, jitter sum] over whole hours
    in [start, end), and the first hour after the rolled-up ones."""
    rows = db.session.execute(select(
        MetricRollup.probe_id, func.sum(MetricRollup.sample_count),
        func.sum(MetricRollup.runs_available), func.sum(MetricRollup.latency_sample_count),
        func.sum(MetricRollup.packet_loss_rate * MetricRollup.sample_count),
        func.sum(MetricRollup.jitter_ms * MetricRollup.latency_sample_count),
        func.max(MetricRollup.hour),
    ).where(MetricRollup.probe_id.in_(probe_ids), MetricRollup.hour >= start,
            MetricRollup.hour < end).group_by(MetricRollup.probe_id))
    return {str(r[0]): [r[1] or 0, r[2] or 0, r[3] or 0, float(r[4] or 0), float(r[5] or 0),
                        r[6]] for r in rows}


def _totals_from_runs(probe_ids: list, start: datetime, end: datetime) -> dict:
    """The same totals from the raw runs (the edges of the period, hours not rolled up)."""
    raw = Metric.__table__
    rows = db.session.execute(select(
        raw.c.probe_id, func.count(),
        func.sum(case((raw.c.packet_loss_rate < 100, 1), else_=0)),
        func.count(raw.c.latency_ms), func.sum(raw.c.packet_loss_rate),
        func.sum(raw.c.jitter_ms),
    ).where(raw.c.is_aggregated.is_(False), raw.c.probe_id.in_(probe_ids),
            raw.c.timestamp >= start, raw.c.timestamp < end).group_by(raw.c.probe_id))
    return {str(r[0]): [r[1] or 0, r[2] or 0, r[3] or 0, float(r[4] or 0), float(r[5] or 0)]
            for r in rows}


def _percentiles(values: list[float], quantiles=(0.5, 0.95, 0.99)) -> list[float | None]:
    """Linear-interpolated percentiles (PostgreSQL's percentile_cont)."""
    if not values:
        return [None] * len(quantiles)
    ordered = sorted(values)
    result = []
    for q in quantiles:
        position = q * (len(ordered) - 1)
        low, high = math.floor(position), math.ceil(position)
        result.append(ordered[low] + (ordered[high] - ordered[low]) * (position - low))
    return result


def _latency_percentiles(probe_ids: list, start: datetime, end: datetime) -> dict:
    agg = Metric.__table__
    condition = and_(agg.c.is_aggregated.is_(True), agg.c.probe_id.in_(probe_ids),
                     agg.c.timestamp >= start, agg.c.timestamp < end,
                     agg.c.latency_ms.is_not(None))
    if db.engine.dialect.name == "postgresql":
        # the three percentiles from one sort of each probe's minutes (the array form)
        quantiles = sa_array([0.5, 0.95, 0.99], type_=Float)
        rows = db.session.execute(select(
            agg.c.probe_id, type_coerce(func.percentile_cont(quantiles).within_group(
                agg.c.latency_ms), ARRAY(Float))
        ).where(condition).group_by(agg.c.probe_id))
        return {str(r[0]): [None if v is None else float(v) for v in r[1] or (None,) * 3]
                for r in rows}
    values: dict[str, list[float]] = defaultdict(list)
    for probe, latency in db.session.execute(select(agg.c.probe_id, agg.c.latency_ms)
                                             .where(condition)):
        values[str(probe)].append(float(latency))
    return {probe: _percentiles(v) for probe, v in values.items()}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def sla_report(start: datetime, end: datetime, node_id: uuid.UUID | None = None,
               now: datetime | None = None) -> list[dict]:
    """One row per probe (of the node, or every node) over [start, end)."""
    now = now or datetime.now(UTC)
    end = min(end, now)
    query = select(Probe, Node.name).join(Node, Node.id == Probe.node_id)
    if node_id is not None:
        query = query.where(Probe.node_id == node_id)
    probes = db.session.execute(query.order_by(Node.name, Probe.created_at, Probe.id)).all()
    ids = [p.id for p, _ in probes]
    if not ids:
        return []
    # Whole hours from the rollups; before the first and after the last rolled-up hour the
    # minutes (the edges of the period, the open hour).
    first_hour = from_ms(to_ms(start) + (-to_ms(start)) % HOUR_MS)
    last_hour = from_ms(to_ms(end) - to_ms(end) % HOUR_MS)
    rolled = _totals_from_rollups(ids, first_hour, last_hour) if first_hour < last_hour else {}
    edges = [(start, first_hour), (last_hour, end)]
    minute_retention = now - timedelta(days=current_app.config["PULSE_AGG_RETENTION_DAYS"])
    percentiles = (_latency_percentiles(ids, start, end) if start >= minute_retention
                   else {})
    # the hours the rollups lack (the open hour, a late one) and the period's edges, each
    # span read for all its probes at once
    spans_of = {str(p.id): [*edges, (first_hour if str(p.id) not in rolled else from_ms(
        to_ms(rolled[str(p.id)][5]) + HOUR_MS), last_hour)] for p, _ in probes}
    probes_of: dict[tuple, list] = defaultdict(list)
    for probe, _ in probes:
        for span in spans_of[str(probe.id)]:
            if span[0] < span[1]:
                probes_of[span].append(probe.id)
    from_runs = defaultdict(dict, {span: _totals_from_runs(span_probes, *span)
                                   for span, span_probes in probes_of.items()})
    rows = []
    for probe, node_name in probes:
        key = str(probe.id)
        totals = (rolled.get(key) or [0] * 5)[:5]
        for extra in (from_runs[span].get(key) for span in spans_of[key]):
            totals = [a + b for a, b in zip(totals, extra or [0] * 5, strict=True)]
        runs, available, latency_runs, loss_sum, jitter_sum = totals
        expected = max(1, int((end - start).total_seconds() // probe.interval_seconds))
        p50, p95, p99 = percentiles.get(key, [None, None, None])
        rows.append({
            "node_id": probe.node_id, "node": node_name, "probe_id": probe.id,
            "probe": probe.label, "type": probe.type,
            "interval_seconds": probe.interval_seconds, "expected_runs": expected,
            "runs_with_data": runs,
            "availability_pct": _round(100.0 * available / runs) if runs else None,
            "no_data_pct": _round(max(0.0, 100.0 * (1 - runs / expected))),
            "loss_mean_pct": _round(loss_sum / runs) if runs else None,
            "latency_p50_ms": _round(p50), "latency_p95_ms": _round(p95),
            "latency_p99_ms": _round(p99),
            "jitter_mean_ms": _round(jitter_sum / latency_runs) if latency_runs else None,
        })
    return rows


SLA_COLUMNS = ("node", "probe", "type", "interval_seconds", "expected_runs", "runs_with_data",
               "availability_pct", "no_data_pct", "loss_mean_pct", "latency_p50_ms",
               "latency_p95_ms", "latency_p99_ms", "jitter_mean_ms", "node_id", "probe_id")


def sla_csv(rows: list[dict], start: datetime, end: datetime) -> Response:
    """The report as a CSV download (empty cells where a value is null)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SLA_COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in SLA_COLUMNS])
    name = f"pulse-sla-{start:%Y%m%d}-{end:%Y%m%d}.csv"
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
