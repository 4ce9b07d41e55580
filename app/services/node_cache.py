"""What the ingest hot path needs about a node, cached in Redis instead of PostgreSQL.

Node tokens resolve through `{prefix}:nodeauth:<sha256>`; a node's expected config
version and probe ids through `{prefix}:node:{<id>}:state`. Every API process shares
these keys, so a change is seen everywhere at once:

* A rotated or deleted node's old token hash gets a tombstone (not a plain delete), and
  positive entries are written with SET NX: a request that read the token row just before
  the rotation committed cannot re-cache it afterwards.
* A node's state carries the generation it was computed at; any change to the node or its
  probes bumps the generation (events.config_changed), so a state computed from rows read
  before the change is never served after it.

In front of Redis, each process keeps what it resolved for LOCAL_TTL_SECONDS (SPEC §2: an
in-process cache lives at most 5 s), dropped at once in the process that makes a change.
Ingest revalidates against Redis before it rejects a probe id, so a probe created in
another process is never refused because of this cache.
"""

from __future__ import annotations

import time
import uuid

from flask import current_app
from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import Node, Probe
from app.services.keys import node_auth_key, node_generation_key, node_state_key
from app.services.probes import config_version_of
from app.services.tokens import hash_token, hashes_match

AUTH_TTL_SECONDS = 300
NEGATIVE_TTL_SECONDS = 5
TOMBSTONE_TTL_SECONDS = 86400
STATE_TTL_SECONDS = 300
_UNKNOWN = b"-"
LOCAL_TTL_SECONDS = 2.0
_LOCAL_MAX = 50_000
_local: dict[tuple, tuple[float, object]] = {}


def _local_get(key: tuple):
    hit = _local.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return None


def _local_put(key: tuple, value) -> None:
    if len(_local) >= _LOCAL_MAX:
        _local.clear()
    _local[key] = (time.monotonic() + LOCAL_TTL_SECONDS, value)


def _app_key() -> int:
    # Apps in one process (tests) have their own databases and Redis prefixes.
    return id(current_app._get_current_object())


def forget_local(node_id: uuid.UUID | str | None = None) -> None:
    """Drop this process's cached state of a node (or everything)."""
    if node_id is None:
        _local.clear()
    else:
        _local.pop((_app_key(), "state", str(node_id)), None)


def resolve_node_token(token: str) -> uuid.UUID | None:
    """The node a token belongs to, or None."""
    token_hash = hash_token(token)
    local_key = (_app_key(), "token", token_hash)
    node_id = _local_get(local_key)
    if node_id is None:
        node_id = _resolve_node_token(token, token_hash)
        if node_id is not None:
            _local_put(local_key, node_id)
    return node_id


def _resolve_node_token(token: str, token_hash: str) -> uuid.UUID | None:
    handle = get_redis()
    key = node_auth_key(handle.prefix, token_hash)
    cached = handle.client.get(key)
    if cached == _UNKNOWN:
        return None
    if cached:
        return uuid.UUID(cached.decode())
    node = db.session.scalar(select(Node).where(Node.token_hash == token_hash))
    if node is None or not hashes_match(node.token_hash, token):
        # A short negative entry keeps a token-guessing flood off PostgreSQL.
        handle.client.set(key, _UNKNOWN, ex=NEGATIVE_TTL_SECONDS, nx=True)
        return None
    handle.client.set(key, str(node.id), ex=AUTH_TTL_SECONDS, nx=True)
    return node.id


def forget_token(token_hash: str) -> None:
    """The token is no longer valid: tombstone it so no in-flight lookup re-caches it."""
    handle = get_redis()
    handle.client.set(node_auth_key(handle.prefix, token_hash), _UNKNOWN,
                      ex=TOMBSTONE_TTL_SECONDS)
    _local.pop((_app_key(), "token", token_hash), None)


def node_state(node_id: uuid.UUID, fresh: bool = False) -> tuple[str, frozenset[str]]:
    """(expected config version, ids of the node's probes) for ingest.

    fresh=True skips this process's short cache (Redis stays generation-checked).
    """
    local_key = (_app_key(), "state", str(node_id))
    if not fresh:
        state = _local_get(local_key)
        if state is not None:
            return state
    state = _node_state(node_id)
    _local_put(local_key, state)
    return state


def _node_state(node_id: uuid.UUID) -> tuple[str, frozenset[str]]:
    handle = get_redis()
    key = node_state_key(handle.prefix, str(node_id))
    generation_key = node_generation_key(handle.prefix, str(node_id))
    pipe = handle.client.pipeline(transaction=False)
    pipe.hgetall(key)
    pipe.get(generation_key)
    cached, generation = pipe.execute()
    generation = generation or b"0"
    if cached and cached.get(b"generation") == generation:
        probe_ids = cached.get(b"probes", b"").decode()
        return cached[b"config_version"].decode(), frozenset(filter(None, probe_ids.split(",")))
    probes = db.session.scalars(select(Probe).where(Probe.node_id == node_id)).all()
    version = config_version_of(probes)
    ids = frozenset(str(p.id) for p in probes)
    pipe = handle.client.pipeline(transaction=False)
    pipe.hset(key, mapping={"config_version": version, "probes": ",".join(sorted(ids)),
                            "generation": generation})
    pipe.expire(key, STATE_TTL_SECONDS)
    pipe.execute()
    return version, ids
