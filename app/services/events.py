"""Invalidation of the cached node state the ingest hot path reads (SPEC §2 Scale-out)."""

from __future__ import annotations

import uuid

from app.extensions import get_redis
from app.services.keys import node_epoch_key, node_generation_key, node_state_key


def config_changed(node_id: uuid.UUID | str) -> None:
    """A node, its token or its probe set changed: invalidate the cached state of that node.

    The cache lives in Redis, so every API process sees the change at once; the generation
    bump also voids a state that a concurrent request is computing from older rows, and the
    new node epoch voids what other processes hold in memory.
    """
    handle = get_redis()
    pipe = handle.client.pipeline(transaction=False)
    pipe.incr(node_generation_key(handle.prefix, str(node_id)))
    pipe.delete(node_state_key(handle.prefix, str(node_id)))
    # Last, after the tombstone and the generation: voids every process's in-memory
    # entries (node_cache), which drop them on any new reading, even of an older value.
    pipe.set(node_epoch_key(handle.prefix), uuid.uuid4().hex)
    pipe.execute()
    from app.services.node_cache import forget_local  # local: node_cache imports probes

    forget_local(node_id)
