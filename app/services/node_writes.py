"""Every write to one node's own Redis keys, as a single Lua call.

The live sets of the node's series (ZADD, trim to the live hour, TTL), its presence bit
for uptime_24h and its last-seen hash all carry the `{node_id}` hash tag, so one script
may touch them all, also on Redis Cluster. One script call instead of ~15 commands is
what keeps the ingest hot path cheap: redis-py spends ~20 µs of client CPU per command.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import redis

from app.services.keys import live_key, node_seen_key, presence_key
from app.services.live_cache import LIVE_TTL_SECONDS, LIVE_WINDOW_MS, Point, encode_member
from app.services.redis_wire import round_trip

PRESENCE_TTL_SECONDS = 3 * 86400
ZADD_CHUNK = 500  # member/score pairs per ZADD, well inside Lua's unpack() limit

# KEYS: presence, seen, live series...
# ARGV: cutoff_exclusive, live_ttl, presence_bit (-1 = none), presence_ttl,
#       n_seen, seen field/value × n_seen, then per live key one argument:
#       "score member score member …" (members never contain spaces). One argument per
#       series instead of two per point keeps redis-py's per-argument encoding off the
#       hot path; splitting it is cheap for Redis.
NODE_WRITE_LUA = """
local i = 1
local cutoff = ARGV[i]; i = i + 1
local ttl = ARGV[i]; i = i + 1
local bit = tonumber(ARGV[i]); i = i + 1
local presence_ttl = ARGV[i]; i = i + 1
if bit >= 0 then
  redis.call('SETBIT', KEYS[1], bit, 1)
  redis.call('EXPIRE', KEYS[1], presence_ttl)
end
local n_seen = tonumber(ARGV[i]); i = i + 1
if n_seen > 0 then
  local fields = {}
  for j = 1, 2 * n_seen do fields[j] = ARGV[i + j - 1] end
  redis.call('HSET', KEYS[2], unpack(fields))
  i = i + 2 * n_seen
end
for k = 3, #KEYS do
  local pairs_ = {}
  for word in string.gmatch(ARGV[i], '%S+') do
    pairs_[#pairs_ + 1] = word
    if #pairs_ == 2 * ZADD_CHUNK then
      redis.call('ZADD', KEYS[k], unpack(pairs_))
      pairs_ = {}
    end
  end
  i = i + 1
  if #pairs_ > 0 then redis.call('ZADD', KEYS[k], unpack(pairs_)) end
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', cutoff)
  redis.call('EXPIRE', KEYS[k], ttl)
end
return 1
""".replace("ZADD_CHUNK", str(ZADD_CHUNK))


NODE_WRITE_SHA = hashlib.sha1(NODE_WRITE_LUA.encode()).hexdigest()


@dataclass
class NodeWrite:
    """One EVALSHA of NODE_WRITE_LUA: its keys, its arguments, how many live points."""

    keys: list[str]
    args: list
    live_points: int

    def command(self) -> tuple:
        return ("EVALSHA", NODE_WRITE_SHA, len(self.keys), *self.keys, *self.args)

    def run_alone(self, client) -> None:
        client.script_load(NODE_WRITE_LUA)
        client.evalsha(NODE_WRITE_SHA, len(self.keys), *self.keys, *self.args)


def node_write(prefix: str, node_id: str, points: Iterable[Point], now_ms: int,
               present_at: datetime | None = None,
               seen: Mapping[str, object] | None = None) -> NodeWrite:
    """The node's writes for these points (and optionally presence and last-seen).

    Points older than the live hour skip the live cache (they go to the database only).
    """
    cutoff = now_ms - LIVE_WINDOW_MS
    by_series: dict[str, dict[bytes, int]] = {}
    for point in points:
        if point.ts_ms > cutoff:
            by_series.setdefault(point.series, {})[encode_member(point)] = point.ts_ms
    bit = -1
    day = "none"
    if present_at is not None:
        bit = present_at.hour * 60 + present_at.minute
        day = f"{present_at.year:04d}{present_at.month:02d}{present_at.day:02d}"  # %Y%m%d
    seen = seen or {}
    keys = [presence_key(prefix, node_id, day), node_seen_key(prefix, node_id)]
    args: list = [f"({cutoff}", LIVE_TTL_SECONDS, bit, PRESENCE_TTL_SECONDS, len(seen)]
    for field, value in seen.items():
        args += [field, value]
    for series, members in by_series.items():
        keys.append(live_key(prefix, node_id, series))
        args.append(b" ".join(b"%d %s" % (score, member) for member, score in members.items()))
    return NodeWrite(keys, args, sum(len(m) for m in by_series.values()))


def execute(client, commands: list, write: NodeWrite, index: int) -> list:
    """Run commands (`write`'s at `index`) in one round trip; load the script and run it
    again if the server lacked it (first call, or after a Redis restart). Its writes are
    idempotent."""
    replies = round_trip(client, commands)
    if isinstance(replies[index], redis.exceptions.NoScriptError):
        write.run_alone(client)
        replies[index] = 1
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def write_points(client, prefix: str, node_id: str, points: Iterable[Point],
                 now_ms: int) -> int:
    """Write points to the live cache now (tests, benchmarks); returns how many."""
    write = node_write(prefix, node_id, points, now_ms)
    execute(client, [write.command()], write, 0)
    return write.live_points
