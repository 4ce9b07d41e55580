"""Probe configuration: create, change, delete, and each node's config version.

Every change voids the node's cached state (ingest.node_lookup) here, so a change made
through the API, the dashboard, the CLI or a worker is seen by ingest at once."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.errors import ApiError
from app.extensions import db
from app.ingest.node_lookup import invalidate_node
from app.models import Node, Probe
from app.models.probe import config_version_of
from app.services import audit


def probe_exists_error(data: dict) -> ApiError:
    return ApiError(
        409, "ERR_PROBE_EXISTS",
        f"Node already has a {data['type']} probe for {data['target']}:{data['port']}",
        {"type": data["type"], "target": data["target"], "port": data["port"]},
    )


def _require_node(node_id: uuid.UUID) -> Node:
    node = db.session.get(Node, node_id)
    if node is None:
        raise ApiError(400, "ERR_NODE_NOT_FOUND", f"Node {node_id} does not exist",
                       {"node_id": str(node_id)})
    return node


def _duplicate(node_id, type_, target, port, exclude_id=None) -> bool:
    query = select(Probe.id).where(
        Probe.node_id == node_id, Probe.type == type_, Probe.target == target, Probe.port == port
    )
    if exclude_id is not None:
        query = query.where(Probe.id != exclude_id)
    return db.session.scalar(query) is not None


def _commit_or_conflict(data: dict) -> None:
    try:
        db.session.commit()
    except IntegrityError as exc:
        # Two concurrent creates: the unique key decides, the loser gets the same 409.
        db.session.rollback()
        raise probe_exists_error(data) from exc


def create_probe(data: dict, source: str = "api") -> Probe:
    _require_node(data["node_id"])
    if _duplicate(data["node_id"], data["type"], data["target"], data["port"]):
        raise probe_exists_error(data)
    probe = Probe(id=uuid.uuid4(), source=source, **data)
    db.session.add(probe)
    audit.record("probe.create", "probe", probe.id, _probe_details(probe))
    _commit_or_conflict(data)
    invalidate_node(probe.node_id)
    return probe


def _probe_details(probe: Probe) -> dict:
    return {"node_id": str(probe.node_id), "type": probe.type, "target": probe.target,
            "port": probe.port}


def get_probe(probe_id) -> Probe:
    probe = None
    if isinstance(probe_id, uuid.UUID):
        probe = db.session.get(Probe, probe_id)
    else:
        try:
            probe = db.session.get(Probe, uuid.UUID(str(probe_id)))
        except ValueError:
            probe = None
    if probe is None:
        raise ApiError(404, "ERR_PROBE_NOT_FOUND", f"Probe {probe_id} does not exist")
    return probe


def update_probe(probe: Probe, changes: dict) -> Probe:
    if "node_id" in changes and changes["node_id"] != probe.node_id:
        raise ApiError(400, "ERR_VALIDATION", "A probe cannot move to another node",
                       {"fields": {"node_id": ["cannot be changed"]}})
    merged = {k: changes.get(k, getattr(probe, k)) for k in ("type", "target", "port")}
    if _duplicate(probe.node_id, merged["type"], merged["target"], merged["port"], probe.id):
        raise probe_exists_error(merged)
    for key, value in changes.items():
        if key != "node_id":
            setattr(probe, key, value)
    audit.record("probe.update", "probe", probe.id,
                 {"changed": sorted(k for k in changes if k != "node_id")})
    _commit_or_conflict(merged)
    invalidate_node(probe.node_id)
    return probe


def delete_probe(probe: Probe) -> None:
    node_id = probe.node_id
    audit.record("probe.delete", "probe", probe.id, _probe_details(probe))
    db.session.delete(probe)
    db.session.commit()
    invalidate_node(node_id)


def list_probes(node_id=None, type_=None, page: int = 1, per_page: int = 50):
    query = select(Probe)
    if node_id is not None:
        query = query.where(Probe.node_id == node_id)
    if type_ is not None:
        query = query.where(Probe.type == type_)
    # The total rides along with the page (a window count): one round trip, not two.
    page_rows = db.session.execute(
        query.add_columns(func.count().over().label("total"))
        .order_by(Probe.created_at, Probe.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    rows = [row[0] for row in page_rows]
    if page_rows:
        total = page_rows[0].total
    else:  # past the last page (or nothing at all): count on its own
        total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    pages = (total + per_page - 1) // per_page if total else 0
    return rows, {"page": page, "per_page": per_page, "total": total, "pages": pages}


def node_config_version(node_id: uuid.UUID) -> str:
    probes = db.session.scalars(select(Probe).where(Probe.node_id == node_id)).all()
    return config_version_of(probes)
