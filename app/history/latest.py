"""Each probe's latest minute, for many probes at once (the Prometheus export, SPEC §13).

Read from the live cache: the runs of the minute of each probe's newest run, if that run
is recent enough to stand for now (within the probe's interval + 60 s, as alerting carries
a minute), folded as the minute aggregation folds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from app.extensions import get_redis
from app.history.live_cache import decode_member
from app.history.points import MINUTE_MS, fold, from_live
from app.redis_keys import live_key
from app.timeutil import to_ms

PIPELINE_CHUNK = 2000


def latest_minutes(probes: Sequence[tuple[str, str, int]],
                   now: datetime) -> dict[str, dict | None]:
    """(probe id, node id, interval seconds) -> that probe's latest minute, or None."""
    now_ms = to_ms(now)
    handle = get_redis()
    latest: dict[str, dict | None] = {}
    for first in range(0, len(probes), PIPELINE_CHUNK):
        chunk = probes[first:first + PIPELINE_CHUNK]
        pipe = handle.client.pipeline(transaction=False)
        for probe_id, node_id, interval in chunk:
            # The newest run and everything else of its minute, at most.
            low = now_ms - (interval + 60) * 1000 - MINUTE_MS
            pipe.zrevrangebyscore(live_key(handle.prefix, node_id, probe_id), now_ms, low,
                                  start=0, num=60)
        for (probe_id, _node, interval), members in zip(chunk, pipe.execute(), strict=True):
            runs = [from_live(decode_member(probe_id, m)) for m in members]
            if not runs or runs[0]["ts_ms"] < now_ms - (interval + 60) * 1000:
                latest[probe_id] = None
                continue
            minute = runs[0]["ts_ms"] - runs[0]["ts_ms"] % MINUTE_MS
            latest[probe_id] = fold([r for r in runs if r["ts_ms"] >= minute])[minute]
    return latest
