"""What the ingest hot path knows about a node — which node a token belongs to, its probe
ids and its expected config version — without querying PostgreSQL per heartbeat.

Two cache layers, both invalidated through Redis so a change applies in every process at
once (SPEC §2): shared Redis entries (token -> node, node -> state; tombstones and a
per-node generation keep a racing lookup from re-caching an old answer) and each
process's memory, trusted only while the node epoch it last read is fresh and unchanged.
`invalidate_node` and `forget_token` are what every change to a node, token or probe set
calls. The design and its races: docs/architecture.md, "The node lookup cache".
"""

from __future__ import annotations

import os
import time
import uuid

from flask import current_app
from sqlalchemy import select

from app.extensions import db, get_redis
from app.ingest.redis_wire import raise_error_replies, round_trip
from app.models import Node, Probe
from app.models.probe import config_version_of
from app.redis_keys import (
    node_auth_key,
    node_epoch_key,
    node_generation_key,
    node_state_key,
)
from app.tokens import hash_token, hashes_match

# Token and state entries do not go stale while invalidation works (tombstones,
# generations); their TTL bounds how long a lost invalidation (Redis down or losing its last
# second of writes when a token is rotated) could last. 15 minutes: a Beacon reporting once
# a minute reads PostgreSQL on one heartbeat in 15 (with 5 minutes it was one in 5).
AUTH_TTL_SECONDS = 900
NEGATIVE_TTL_SECONDS = 5
TOMBSTONE_TTL_SECONDS = 86400
STATE_TTL_SECONDS = 900
_UNKNOWN = b"-"
EPOCH_TRUST_SECONDS = 2.0  # SPEC §2: a change applies everywhere within 5 s
LOCAL_MAX_AGE_SECONDS = 300.0
_LOCAL_MAX = 50_000
# (app, kind, id) -> (expires at, node epoch it was resolved under, value)
_local: dict[tuple, tuple[float, bytes, object]] = {}
# app -> (node epoch last read from Redis, monotonic time of that read)
_epoch_seen: dict[int, tuple[bytes, float]] = {}
epoch_clock = time.monotonic  # the clock of those reads and of entry ages (tests move it)


def epoch_command(prefix: str) -> tuple:
    """Reads the node epoch (for observe_epoch); where the key is missing (a new or emptied
    Redis) it sets a new random one, so a lost epoch is never read as an old value."""
    return ("SET", node_epoch_key(prefix), os.urandom(8).hex(), "NX", "GET")


def observe_epoch(command: tuple, reply: bytes | None, read_at: float | None = None) -> bytes:
    """Record the node epoch an epoch_command read. A reading that differs from this
    process's last one drops every in-memory entry of the app: whatever they were resolved
    under, something changed since (the epoch may even have gone back to an older value,
    after a failover). Returns the epoch read."""
    epoch = reply if reply is not None else command[2].encode()
    read_at = epoch_clock() if read_at is None else read_at
    app_key = _app_key()
    last = _epoch_seen.get(app_key)
    if last is not None and read_at < last[1]:
        return epoch  # another thread's later reading stands (threaded servers)
    if last is not None and last[0] != epoch:
        for key in [k for k in _local if k[0] == app_key]:
            _local.pop(key, None)
    _epoch_seen[app_key] = (epoch, read_at)
    return epoch


def _trusted_epoch(app_key: int, now: float) -> tuple[bool, bytes | None]:
    seen = _epoch_seen.get(app_key)
    if seen is None or now - seen[1] > EPOCH_TRUST_SECONDS:
        return False, None
    return True, seen[0]


def _local_get(key: tuple):
    hit = _local.get(key)
    if hit is None:
        return None
    now = epoch_clock()
    trusted, epoch = _trusted_epoch(key[0], now)
    if trusted and hit[1] == epoch and hit[0] > now:
        return hit[2]
    return None


def _local_put(key: tuple, value, epoch: bytes) -> None:
    if len(_local) >= _LOCAL_MAX:
        _local.clear()
    _local[key] = (epoch_clock() + LOCAL_MAX_AGE_SECONDS, epoch, value)


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
        node_id, epoch = _resolve_node_token(token, token_hash)
        if node_id is not None:
            _local_put(local_key, node_id, epoch)
    return node_id


def _read_with_epoch(handle, commands: list) -> tuple[bytes, list]:
    """The node epoch, read first, and the replies of `commands`, in one round trip."""
    started = epoch_clock()
    read_epoch = epoch_command(handle.prefix)
    epoch, *replies = raise_error_replies(round_trip(handle.client, [read_epoch, *commands]))
    return observe_epoch(read_epoch, epoch, read_at=started), replies


def _resolve_node_token(token: str, token_hash: str) -> tuple[uuid.UUID | None, bytes]:
    handle = get_redis()
    key = node_auth_key(handle.prefix, token_hash)
    epoch, (cached,) = _read_with_epoch(handle, [("GET", key)])
    if cached == _UNKNOWN:
        return None, epoch
    if cached:
        return uuid.UUID(cached.decode()), epoch
    node = db.session.scalar(select(Node).where(Node.token_hash == token_hash))
    if node is None or not hashes_match(node.token_hash, token):
        # A short negative entry keeps a token-guessing flood off PostgreSQL.
        handle.client.set(key, _UNKNOWN, ex=NEGATIVE_TTL_SECONDS, nx=True)
        return None, epoch
    handle.client.set(key, str(node.id), ex=AUTH_TTL_SECONDS, nx=True)
    return node.id, epoch


def forget_token(token_hash: str) -> None:
    """The token is no longer valid: tombstone it so no in-flight lookup re-caches it, then
    a new node epoch so no process keeps it in memory."""
    handle = get_redis()
    pipe = handle.client.pipeline(transaction=False)
    pipe.set(node_auth_key(handle.prefix, token_hash), _UNKNOWN, ex=TOMBSTONE_TTL_SECONDS)
    pipe.set(node_epoch_key(handle.prefix), uuid.uuid4().hex)
    pipe.execute()
    _local.pop((_app_key(), "token", token_hash), None)


def node_state(node_id: uuid.UUID, fresh: bool = False) -> tuple[str, frozenset[str]]:
    """(expected config version, ids of the node's probes) for ingest.

    fresh=True skips this process's memory (Redis stays generation-checked).
    """
    local_key = (_app_key(), "state", str(node_id))
    if not fresh:
        state = _local_get(local_key)
        if state is not None:
            return state
    state, epoch = _node_state(node_id)
    _local_put(local_key, state, epoch)
    return state


def _node_state(node_id: uuid.UUID) -> tuple[tuple[str, frozenset[str]], bytes]:
    handle = get_redis()
    key = node_state_key(handle.prefix, str(node_id))
    generation_key = node_generation_key(handle.prefix, str(node_id))
    epoch, (flat, generation) = _read_with_epoch(
        handle, [("HGETALL", key), ("GET", generation_key)])
    cached = flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2], strict=True))
    generation = generation or b"0"
    if cached and cached.get(b"generation") == generation:
        probe_ids = cached.get(b"probes", b"").decode()
        state = cached[b"config_version"].decode(), frozenset(filter(None, probe_ids.split(",")))
        return state, epoch
    probes = db.session.scalars(select(Probe).where(Probe.node_id == node_id)).all()
    version = config_version_of(probes)
    ids = frozenset(str(p.id) for p in probes)
    pipe = handle.client.pipeline(transaction=False)
    pipe.hset(key, mapping={"config_version": version, "probes": ",".join(sorted(ids)),
                            "generation": generation})
    pipe.expire(key, STATE_TTL_SECONDS)
    pipe.execute()
    return (version, ids), epoch


def invalidate_node(node_id: uuid.UUID | str) -> None:
    """A node, its token or its probe set changed: void every cached state of that node.

    The generation bump voids a state a concurrent request is computing from older rows;
    the new node epoch, set last, voids what every process holds in memory (they drop their
    entries on any new reading, even of an older value).
    """
    handle = get_redis()
    pipe = handle.client.pipeline(transaction=False)
    pipe.incr(node_generation_key(handle.prefix, str(node_id)))
    pipe.delete(node_state_key(handle.prefix, str(node_id)))
    pipe.set(node_epoch_key(handle.prefix), uuid.uuid4().hex)
    pipe.execute()
    forget_local(node_id)
