"""Several Redis commands in one round trip, read straight off a pooled connection.

The ingest hot path's replacement for a redis-py pipeline: the pipeline object, its
per-command bookkeeping and reply callbacks cost ~50 µs of CPU per request, about as much
as the round trip itself (docs/benchmarks.md). Here the commands are packed by hiredis
in one buffer, sent with one write and their raw replies read back in order. Error
replies come back as exception instances in their place (every reply is read, so the
connection never desyncs); connection errors are retried under the client's own Retry
policy, as redis-py does for a pipeline. Works with fakeredis's connections as well.
"""

from __future__ import annotations

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


def round_trip(client: redis.Redis, commands: Sequence[Command]) -> list:
    """Send `commands` in one write and return their replies, in order."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        return connection.retry.call_with_retry(
            lambda: _send_and_read(connection, commands),
            lambda _error: connection.disconnect(),
        )
    finally:
        pool.release(connection)


def _send_and_read(connection, commands: Sequence[Command]) -> list:
    connection.send_packed_command(_pack(connection, commands))
    replies: list = []
    for _ in commands:
        try:
            replies.append(connection.read_response())
        except redis.ResponseError as error:
            replies.append(error)
    return replies
