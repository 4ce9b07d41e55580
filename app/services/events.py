"""Invalidation of the cached node state the ingest hot path reads (SPEC §2 Scale-out)."""

from __future__ import annotations

import uuid

from app.extensions import get_redis
from app.services.keys import node_state_key


def config_changed(node_id: uuid.UUID | str) -> None:
    """A node, its token or its probe set changed: drop the cached state of that node.

    The cache lives in Redis, so every API process sees the change at once.
    """
    handle = get_redis()
    handle.client.delete(node_state_key(handle.prefix, str(node_id)))
