"""What a Beacon runs: its config (enabled probes + version) and its declared local probes."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.extensions import db
from app.ingest.node_lookup import invalidate_node
from app.models import Probe
from app.models.probe import PROBE_SETTINGS, config_version_of
from app.services import audit


def beacon_config(node_id: uuid.UUID) -> dict:
    probes = db.session.scalars(
        select(Probe).where(Probe.node_id == node_id).order_by(Probe.created_at, Probe.id)
    ).all()
    return {
        "node_id": node_id,
        "config_version": config_version_of(probes),
        "probes": [p for p in probes if p.enabled],
    }


def declare_probes(node_id: uuid.UUID, declared: list[dict]) -> dict:
    """Make the node's source=beacon probes exactly `declared` (upsert by type+target+port).

    Probes created through the API are never touched; a declared probe that matches one
    of them is answered with that probe (the unique key allows only one).
    """
    existing = db.session.scalars(select(Probe).where(Probe.node_id == node_id)).all()
    by_key = {(p.type, p.target, p.port): p for p in existing}
    wanted: dict[tuple, dict] = {}
    for item in declared:
        wanted[(item["type"], item["target"], item["port"])] = item
    answered = []
    changed = False
    for key, item in wanted.items():
        probe = by_key.get(key)
        if probe is None:
            probe = Probe(node_id=node_id, source="beacon", enabled=True, **item)
            db.session.add(probe)
            changed = True
        elif probe.source == "beacon":
            for name in PROBE_SETTINGS:
                if getattr(probe, name) != item[name]:
                    setattr(probe, name, item[name])
                    changed = True
        answered.append(probe)
    for key, probe in by_key.items():
        if probe.source == "beacon" and key not in wanted:
            db.session.delete(probe)
            changed = True
    if changed:
        audit.record("probes.declare", "node", node_id, {"probes": len(wanted)})
    db.session.commit()
    if changed:  # a Beacon restart re-declaring the same probes voids no cache anywhere
        invalidate_node(node_id)
    remaining = db.session.scalars(select(Probe).where(Probe.node_id == node_id)).all()
    return {"config_version": config_version_of(remaining), "probes": answered}
