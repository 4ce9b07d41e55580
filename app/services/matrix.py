"""The nodes × targets matrix: each cell a probe's latest run, from the live hour.

Columns are keyed by (type, target, port) across every node (one grouped SQL query); a
page of nodes comes with its probes (a second query), and every cell of the page is read
in one pipelined Redis round trip.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select

from app.extensions import db, get_redis
from app.history import live_cache
from app.history.live_cache import LIVE_WINDOW_MS
from app.models import Node, Probe
from app.timeutil import to_ms


@dataclass
class Column:
    type: str
    heading: str  # the target for operators; a shared name or "<TYPE> #n" for viewers
    target: str | None = None  # None for viewers: they never see targets or ports
    port: int | None = None


@dataclass
class Cell:
    probe_id: uuid.UUID
    ts_ms: int | None = None
    latency_ms: float | None = None  # the run's median when known, else its mean
    packet_loss_rate: float | None = None


@dataclass
class MatrixRow:
    node_id: uuid.UUID
    name: str
    cells: dict[int, Cell] = field(default_factory=dict)  # column index -> cell


@dataclass
class Matrix:
    columns: list[Column]
    rows: list[MatrixRow]
    total: int
    page: int
    pages: int


def _columns(show_targets: bool) -> tuple[list[Column], dict[tuple, int]]:
    grouped = db.session.execute(
        select(Probe.type, Probe.target, Probe.port, func.count(),
               func.count(Probe.name), func.min(Probe.name), func.max(Probe.name))
        .group_by(Probe.type, Probe.target, Probe.port)
        .order_by(Probe.type, Probe.target, Probe.port)
    ).all()
    columns, index, numbers = [], {}, {}
    for type_, target, port, count, named, first, last in grouped:
        index[(type_, target, port)] = len(columns)
        numbers[type_] = numbers.get(type_, 0) + 1
        if show_targets:
            columns.append(Column(type_, f"{target}:{port}", target, port))
        else:
            shared = first if named == count and first == last else None
            columns.append(Column(type_, shared or f"{type_} #{numbers[type_]}"))
    return columns, index


def matrix(show_targets: bool, page: int = 1, per_page: int = 100,
           now: datetime | None = None) -> Matrix:
    """One page of nodes (by name) against every (type, target, port) column."""
    now = now or datetime.now(UTC)
    columns, column_of = _columns(show_targets)
    total = db.session.scalar(select(func.count(Node.id))) or 0
    pages = max(1, (total + per_page - 1) // per_page)
    page = min(max(1, page), pages)
    shown = (select(Node.id, Node.name).order_by(Node.name)
             .limit(per_page).offset((page - 1) * per_page).subquery())
    listed = db.session.execute(
        select(shown.c.id, shown.c.name, Probe.id, Probe.type, Probe.target, Probe.port)
        .outerjoin(Probe, Probe.node_id == shown.c.id)
        .order_by(shown.c.name)
    ).all()
    rows: dict[uuid.UUID, MatrixRow] = {}
    cells: list[tuple[str, Cell]] = []
    for node_id, name, probe_id, type_, target, port in listed:
        row = rows.setdefault(node_id, MatrixRow(node_id, name))
        if probe_id is None or (type_, target, port) not in column_of:
            continue  # a node without probes, or a probe created since the columns query
        cell = Cell(probe_id)
        row.cells[column_of[(type_, target, port)]] = cell
        cells.append((str(node_id), cell))
    _fill_latest(cells, to_ms(now))
    return Matrix(columns, list(rows.values()), total, page, pages)


def _fill_latest(cells: list[tuple[str, Cell]], now_ms: int) -> None:
    handle = get_redis()
    pipe = handle.client.pipeline(transaction=False)
    for node_id, cell in cells:
        pipe.zrange(live_cache.live_key(handle.prefix, node_id, str(cell.probe_id)), -1, -1)
    for (_node_id, cell), members in zip(cells, pipe.execute() if cells else [], strict=True):
        if not members:
            continue
        point = live_cache.decode_member(str(cell.probe_id), members[0])
        if point.ts_ms < now_ms - LIVE_WINDOW_MS:
            continue
        cell.ts_ms = point.ts_ms
        cell.packet_loss_rate = point.packet_loss_rate
        median = getattr(point, "latency_median_ms", None)
        latency = median if median is not None else point.latency_ms
        cell.latency_ms = None if (point.packet_loss_rate or 0) >= 100 else latency
