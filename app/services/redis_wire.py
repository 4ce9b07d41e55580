"""Several Redis commands in one round trip, on a connection held for the hot path.

The ingest hot path's replacement for a redis-py pipeline: the pipeline object, its
per-command bookkeeping and reply callbacks cost ~50 µs of CPU per request, about as much
as the round trip itself (docs/benchmarks.md). Here the commands are packed by hiredis
in one buffer, sent with one write and their raw replies read back in order. Error
replies come back as exception instances in their place (every reply is read, so the
connection never desyncs); connection errors are retried under the client's own Retry
policy, as redis-py does for a pipeline. Works with fakeredis's connections as well.

Each thread keeps one connection of the client's pool checked out for this (like a
pub/sub connection): a pool checkout polls the socket and records pool metrics every
time, another ~15 µs a request. A connection that fails is dropped by the retry and
reconnects on its next use; one inherited across a fork is never used by the child.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import redis

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis[hiredis] is a dependency; keep working without it
    _hiredis_pack = None

Command = Sequence[object]


def _pack(connection, commands: Sequence[Command]) -> list[bytes]:
    if _hiredis_pack is not None:
        return [b"".join(_hiredis_pack(tuple(command)) for command in commands)]
    return connection.pack_commands(commands)


_held = threading.local()
_MAX_HELD = 16


def _connection(pool):
    """This thread's held connection of `pool` (checked out once, never released)."""
    held = getattr(_held, "connections", None)
    if held is None:
        held = _held.connections = {}
    entry = held.get(id(pool))
    if entry is not None and entry[0] is pool and entry[1] == os.getpid():
        return entry[2]
    if len(held) >= _MAX_HELD:  # many apps in one process (tests): give them back
        for old_pool, pid, old in held.values():
            if pid == os.getpid():
                old_pool.release(old)
        held.clear()
    connection = pool.get_connection()
    held[id(pool)] = (pool, os.getpid(), connection)
    return connection


def round_trip(client: redis.Redis, commands: Sequence[Command]) -> list:
    """Send `commands` in one write and return their replies, in order."""
    connection = _connection(client.connection_pool)
    return connection.retry.call_with_retry(
        lambda: _send_and_read(connection, commands),
        lambda _error: connection.disconnect(),
    )


def _send_and_read(connection, commands: Sequence[Command]) -> list:
    connection.send_packed_command(_pack(connection, commands))
    replies: list = []
    for _ in commands:
        try:
            replies.append(connection.read_response())
        except redis.ResponseError as error:
            replies.append(error)
    return replies
