"""Several Redis commands in one round trip, for the ingest hot path.

The replacement for a redis-py pipeline there: the pipeline object, its per-command
bookkeeping and reply callbacks cost ~50 µs of CPU per request, about as much as the
round trip itself (docs/benchmarks.md). Here the commands are packed by hiredis in one
buffer, sent with one write and their raw replies read back in order. Error replies come
back as exception instances in their place (every reply is read, so the connection never
desyncs); connection errors are retried under the client's own Retry policy, as redis-py
does for a pipeline. Works with fakeredis's connections as well.

Connections come from a small idle list of our own, built with the client pool's
connection class and settings but outside its count: a checkout from redis-py's pool
polls the socket and records pool metrics every time (~15 µs a request), and a
connection held per thread would leak one connection per finished thread. A connection
is taken off the list for one round trip and put back after it (list.pop and
list.append are atomic, so threads never share one); at most MAX_IDLE wait idle, the
rest are closed. Connections inherited across a fork are dropped, never used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import redis

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis[hiredis] is a dependency; keep working without it
    _hiredis_pack = None

Command = Sequence[object]
MAX_IDLE = 8
# id(pool) -> (pool, pid, idle connections)
_idle: dict[int, tuple[object, int, list]] = {}


def _pack(connection, commands: Sequence[Command]) -> list[bytes]:
    if _hiredis_pack is not None:
        return [b"".join(_hiredis_pack(tuple(command)) for command in commands)]
    return connection.pack_commands(commands)


def _idle_list(pool) -> list:
    entry = _idle.get(id(pool))
    if entry is None or entry[0] is not pool or entry[1] != os.getpid():
        if len(_idle) >= 64:  # many short-lived clients (tests): forget the oldest
            _idle.clear()
        entry = _idle[id(pool)] = (pool, os.getpid(), [])
    return entry[2]


def round_trip(client: redis.Redis, commands: Sequence[Command]) -> list:
    """Send `commands` in one write and return their replies, in order."""
    pool = client.connection_pool
    idle = _idle_list(pool)
    try:
        connection = idle.pop()
    except IndexError:
        connection = pool.connection_class(**pool.connection_kwargs)
    replies = connection.retry.call_with_retry(
        lambda: _send_and_read(connection, commands),
        lambda _error: connection.disconnect(),
    )
    if len(idle) < MAX_IDLE:
        idle.append(connection)
    else:
        connection.disconnect()
    return replies


def _send_and_read(connection, commands: Sequence[Command]) -> list:
    connection.send_packed_command(_pack(connection, commands))
    replies: list = []
    for _ in commands:
        try:
            replies.append(connection.read_response())
        except redis.ResponseError as error:
            replies.append(error)
    return replies
