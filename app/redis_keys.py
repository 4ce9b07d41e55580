"""Redis key names. Keys of one node share a {node_id} hash tag (Redis Cluster)."""

from __future__ import annotations


def live_key(prefix: str, node_id: str, series: str) -> str:
    """series is a probe id or "_node" for the node summary."""
    return f"{prefix}:live:{{{node_id}}}:{series}"


def node_auth_key(prefix: str, token_hash: str) -> str:
    return f"{prefix}:nodeauth:{token_hash}"


def node_epoch_key(prefix: str) -> str:
    """Set to a fresh random value by every change to any node, token or probe set: what
    each API process's in-memory node cache is checked against (app.ingest.node_lookup)."""
    return f"{prefix}:nodes:epoch"


def node_state_key(prefix: str, node_id: str) -> str:
    return f"{prefix}:node:{{{node_id}}}:state"


def node_generation_key(prefix: str, node_id: str) -> str:
    """Bumped on every change to a node or its probes (cache validation)."""
    return f"{prefix}:node:{{{node_id}}}:gen"


def node_rate_gate_key(prefix: str, node_id: str) -> str:
    """Watched by a heartbeat's write round trip and touched by the rate-limit check when
    it refuses, so Redis discards the writes (app.ingest.rate_limit). Never stays set."""
    return f"{prefix}:node:{{{node_id}}}:rate-gate"


def presence_key(prefix: str, node_id: str, day: str) -> str:
    return f"{prefix}:presence:{{{node_id}}}:{day}"


def pending_stream(prefix: str) -> str:
    return f"{prefix}:pending"


def pending_points_key(prefix: str) -> str:
    """How many points the pending stream holds (its entries hold many points each)."""
    return f"{prefix}:pending:points"


def node_seen_key(prefix: str, node_id: str) -> str:
    """Last-seen state of a node, written by ingest, persisted by the flush task."""
    return f"{prefix}:node:{{{node_id}}}:seen"


def seen_dirty_key(prefix: str) -> str:
    return f"{prefix}:seen:dirty"


def flush_queued_key(prefix: str) -> str:
    return f"{prefix}:flush:queued"


def agg_alive_key(prefix: str) -> str:
    """Set once aggregation has checked the whole raw retention against the database; its
    absence means Redis lost its data (and the aggregation marks with it)."""
    return f"{prefix}:agg:alive"


def agg_dirty_key(prefix: str) -> str:
    """Minutes (probe_id:minute_ms) whose raw rows changed since their aggregate."""
    return f"{prefix}:agg:dirty"


def stats_key(prefix: str) -> str:
    """Figures of the Celery workers, read by /metrics (telemetry.stats)."""
    return f"{prefix}:stats"


def rollup_dirty_key(prefix: str) -> str:
    """Hours (probe_id:hour_ms) whose minutes changed since their rollup."""
    return f"{prefix}:rollup:dirty"
