"""One node's bad reported state never holds the other nodes' state back (issue 14).

Before: a NUL character in one node's metadata (already in Redis) made every flush fail
on PostgreSQL (UntranslatableCharacter), because the node-state write committed up to 500
nodes at once; the clean nodes beside it kept empty last_seen_at, hostname and
agent_version for as long as the bad one kept reporting.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from app.extensions import db, get_redis
from app.history.node_state import persist_node_seen
from app.models import Node
from app.redis_keys import node_seen_key, seen_dirty_key, stats_key
from app.services import nodes as node_service

pytestmark = pytest.mark.integration


def _report(prefix: str, client, node_id, *, hostname: str, agent_version: str) -> int:
    seen_ms = int(time.time() * 1000)
    client.hset(node_seen_key(prefix, str(node_id)), mapping={
        "last_seen_ms": seen_ms, "agent_version": agent_version, "config_version": "cv",
        "metadata": json.dumps({"hostname": hostname})})
    client.sadd(seen_dirty_key(prefix), str(node_id))
    return seen_ms


@pytest.mark.parametrize("bad_field", ["metadata", "agent_version"])
def test_a_nul_in_one_node_state_does_not_block_the_others(pg_app, bad_field):
    with pg_app.app_context():
        handle = get_redis()
        client, prefix = handle.client, handle.prefix
        ids = [node_service.create_node(f"n{i}-{uuid.uuid4().hex[:6]}")[0].id for i in range(6)]
        bad, clean = ids[0], ids[1:]
        for i, node_id in enumerate(clean):
            _report(prefix, client, node_id, hostname=f"host-{i}", agent_version="1.0")
        if bad_field == "metadata":
            _report(prefix, client, bad, hostname="evil\u0000host", agent_version="1.0")
        else:
            _report(prefix, client, bad, hostname="bad-host", agent_version="1.\x000")

        assert persist_node_seen() == 6
        db.session.expire_all()
        for i, node_id in enumerate(clean):
            node = db.session.get(Node, node_id)
            assert node.last_seen_at is not None
            assert (node.hostname, node.agent_version) == (f"host-{i}", "1.0")
        bad_node = db.session.get(Node, bad)
        assert bad_node.last_seen_at is not None  # liveness kept, reported text dropped
        assert bad_node.agent_version is None and bad_node.hostname is None
        assert int(client.hget(stats_key(prefix), "node_state_quarantined")) == 1
        metrics = pg_app.test_client().get("/metrics").get_data(as_text=True)
        assert "pulse_node_state_quarantined_total 1.0" in metrics

        # The next run (the bad node still reporting) writes the clean ones again.
        for i, node_id in enumerate(clean):
            _report(prefix, client, node_id, hostname=f"host-{i}", agent_version="2.0")
        _report(prefix, client, bad, hostname="evil\u0000host", agent_version="2.\x00")
        persist_node_seen()
        db.session.expire_all()
        assert {db.session.get(Node, n).agent_version for n in clean} == {"2.0"}
        assert int(client.hget(stats_key(prefix), "node_state_quarantined")) == 2


def test_batches_are_written_apart(pg_app):
    """A bad node in the first batch leaves the second batch's commit alone."""
    with pg_app.app_context():
        handle = get_redis()
        client, prefix = handle.client, handle.prefix
        ids = [node_service.create_node(f"b{i}-{uuid.uuid4().hex[:6]}")[0].id for i in range(5)]
        for node_id in ids:
            _report(prefix, client, node_id, hostname="h", agent_version="\x00" if
                    node_id == ids[0] else "3.0")
        assert persist_node_seen(batch=2) == 5
        db.session.expire_all()
        assert [db.session.get(Node, n).agent_version for n in ids[1:]] == ["3.0"] * 4
        assert client.scard(seen_dirty_key(prefix)) == 0
