"""Marks of what needs (re)computing — minutes to aggregate, hours to roll up — kept as
Redis sorted sets (member -> when marked), removed only if not renewed meanwhile."""

from __future__ import annotations

import logging

import redis

log = logging.getLogger(__name__)


def unmark(client, key: str, done: dict[bytes, float]) -> None:
    """Remove marks that were not renewed meanwhile (compare-and-delete under WATCH)."""
    if not done:
        return
    members = list(done)
    for _attempt in range(10):
        with client.pipeline() as pipe:
            try:
                pipe.watch(key)
                scores = pipe.zmscore(key, members)
                stale = [m for m, s in zip(members, scores, strict=True)
                         if s is not None and s == done[m]]
                pipe.multi()
                if stale:
                    pipe.zrem(key, *stale)
                pipe.execute()
                return
            except redis.WatchError:
                continue
    log.warning("aggregation marks kept after contention; they are recomputed next run")
