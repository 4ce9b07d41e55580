"""Nodes' last-seen state, copied from Redis (where ingest writes it) to the nodes table
by every flush run. One node's bad state never holds the others back: batches are written
whole, a failed batch node by node, and a node the database refuses is quarantined (its
last_seen_at still written, its reported text dropped) and counted."""

from __future__ import annotations

import json
import logging
import uuid

from sqlalchemy.exc import InterfaceError, OperationalError

from app.extensions import db, get_redis
from app.models import Node
from app.redis_keys import node_seen_key, seen_dirty_key
from app.telemetry.stats import record_stats
from app.timeutil import from_ms

log = logging.getLogger(__name__)

def persist_node_seen(batch: int = 500, max_batches: int = 20) -> int:
    """Copy nodes' last-seen state from Redis to the nodes table, `batch` nodes a
    transaction.

    One node's bad state (text PostgreSQL refuses, e.g. a NUL character) never holds the
    others back: a batch that fails is written again node by node, and a node that fails
    alone is quarantined — its reported fields dropped for this run, its last_seen_at still
    written — and counted (pulse_node_state_quarantined_total). A database that is down
    puts the taken nodes back in the dirty set and raises (the task retries).
    """
    handle = get_redis()
    client, prefix = handle.client, handle.prefix
    written = 0
    for _ in range(max_batches):
        node_ids = client.spop(seen_dirty_key(prefix), batch) or []
        if not node_ids:
            break
        try:
            written += _persist_batch(client, prefix, node_ids)
        except _DATABASE_DOWN:
            db.session.rollback()
            client.sadd(seen_dirty_key(prefix), *node_ids)
            raise
        if len(node_ids) < batch:
            break
    return written


_DATABASE_DOWN = (OperationalError, InterfaceError)


def _persist_batch(client, prefix: str, node_ids: list[bytes]) -> int:
    pipe = client.pipeline(transaction=False)
    for raw_id in node_ids:
        pipe.hgetall(node_seen_key(prefix, raw_id.decode()))
    states = [(raw_id.decode(), state)
              for raw_id, state in zip(node_ids, pipe.execute(), strict=True) if state]
    try:
        for node_id, state in states:
            _apply_state(node_id, state)
        db.session.commit()
        return len(states)
    except _DATABASE_DOWN:
        raise
    except Exception:  # one bad node's state: find it by writing each alone
        db.session.rollback()
        log.warning("node-state batch of %d failed; writing its nodes one by one",
                    len(states), exc_info=True)
    quarantined = 0
    for node_id, state in states:
        try:
            _apply_state(node_id, state)
            db.session.commit()
            continue
        except _DATABASE_DOWN:
            raise
        except Exception as exc:
            db.session.rollback()
            log.error("quarantined node %s reported state: %s", node_id,
                      type(exc).__name__)
        quarantined += 1
        try:
            _apply_state(node_id, state, liveness_only=True)
            db.session.commit()
        except _DATABASE_DOWN:
            raise
        except Exception:
            db.session.rollback()
            log.exception("could not write last_seen_at of node %s", node_id)
    record_stats(client, prefix, {"node_state_quarantined": quarantined})
    return len(states)


def _apply_state(node_id: str, state: dict, liveness_only: bool = False) -> None:
    node = db.session.get(Node, uuid.UUID(node_id))
    if node is None:
        return
    node.last_seen_at = from_ms(int(state[b"last_seen_ms"]))
    if node.first_seen_at is None:
        node.first_seen_at = from_ms(int(state.get(b"first_seen_ms") or state[b"last_seen_ms"]))
    if liveness_only:
        return
    if b"agent_version" in state:
        node.agent_version = state[b"agent_version"].decode()[:128]
    if b"config_version" in state:
        node.config_version = state[b"config_version"].decode()[:128]
    metadata = _load_metadata(state.get(b"metadata"))
    if metadata is not None:
        node.metadata_ = metadata
        node.hostname = _short(metadata.get("hostname"), 255) or node.hostname
        node.ip_address = _short(metadata.get("ip_address"), 64) or node.ip_address
        node.region = node.region or _short(metadata.get("region"), 64)
    # Flushed here, so a value the database refuses fails on this node, not at commit.
    db.session.flush()


def _load_metadata(raw: bytes | None) -> dict | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        log.warning("ignoring undecodable node metadata in Redis")
        return None
    return value if isinstance(value, dict) else None


def _short(value, limit: int) -> str | None:
    return str(value)[:limit] if value else None
