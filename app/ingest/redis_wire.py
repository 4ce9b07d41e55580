"""Several Redis commands in one round trip, for the ingest hot path.

The replacement for a redis-py pipeline there: the pipeline object, its per-command
bookkeeping and reply callbacks cost about as much CPU as the round trip itself
(docs/benchmarks.md). Here the commands are packed in one buffer (by hiredis, or by the
caller from parts it packed once: `round_trip_packed`), sent with one write and their raw
replies read back in order. Error replies come back as exception instances in their place
(every reply is read, so the connection never desyncs); connection errors are retried under
the client's own Retry policy, as redis-py does for a pipeline. Works with fakeredis's
connections as well.

Connections come from a small idle list of our own, built with the client pool's
connection class and settings but outside its count: a checkout from redis-py's pool
polls the socket and records pool metrics every time, and a
connection held per thread would leak one connection per finished thread. A connection
is taken off the list for one round trip and put back after it (list.pop and
list.append are atomic, so threads never share one); at most MAX_IDLE wait idle, the
rest are closed. Connections inherited across a fork are dropped, never used.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Sequence

import redis

try:
    import hiredis
except ImportError:  # redis[hiredis] is a dependency; keep working without it
    hiredis = None

try:  # redis-py's own mapping of error replies to classes (NoScriptError, ...)
    from redis._parsers import BaseParser

    _reply_error = BaseParser.parse_error
except ImportError:  # pragma: no cover (a redis-py that moved it: plain ResponseError)
    _reply_error = redis.ResponseError

Command = Sequence[object]
MAX_IDLE = 8
# A connection idle longer than this is checked before use (a cheap poll): a server
# restart or `timeout` may have closed it, and a client without a Retry policy (the rate
# limiter's) would fail the request. Under load connections come back within milliseconds.
IDLE_CHECK_SECONDS = 1.0
_NOT_ENOUGH_DATA = object()
# id(pool) -> (pool, pid, idle [(connection, monotonic time of its last use)])
_idle: dict[int, tuple[object, int, list]] = {}


def bulk(value: bytes | str | int | float) -> bytes:
    """One RESP bulk string: what a command's argument becomes on the wire (a number as its
    str(), as hiredis and redis-py send it)."""
    if not isinstance(value, bytes):
        value = (value if isinstance(value, str) else str(value)).encode()
    return b"$%d\r\n%s\r\n" % (len(value), value)


def command_head(name: str, arg_count: int) -> bytes:
    """The start of a command of `arg_count` arguments (its name included), for callers that
    append the arguments' bulk() strings themselves, some of them packed once and kept."""
    return b"*%d\r\n%s" % (arg_count, bulk(name))


def command(*args: bytes | str | int | float) -> bytes:
    """One command packed for the wire."""
    if hiredis is not None:
        return hiredis.pack_command(args)
    return b"*%d\r\n%s" % (len(args), b"".join(bulk(arg) for arg in args))


def pack(commands: Sequence[Command]) -> bytes:
    return b"".join(command(*c) for c in commands)


def _idle_list(pool) -> list:
    entry = _idle.get(id(pool))
    if entry is None or entry[0] is not pool or entry[1] != os.getpid():
        if len(_idle) >= 64:  # many short-lived clients (tests): forget the oldest
            _idle.clear()
        entry = _idle[id(pool)] = (pool, os.getpid(), [])
    return entry[2]


def round_trip(client: redis.Redis, commands: Sequence[Command]) -> list:
    """Send `commands` in one write and return their replies, in order."""
    return round_trip_packed(client, pack(commands), len(commands))


def round_trip_packed(client: redis.Redis, payload: bytes, count: int) -> list:
    """Send `count` commands already packed (command(), bulk()) in one write and return their
    replies, in order. The ingest hot path packs its commands from parts it keeps per node."""
    pool = client.connection_pool
    idle = _idle_list(pool)
    try:
        connection, last_used = idle.pop()
    except IndexError:
        connection = pool.connection_class(**pool.connection_kwargs)
    else:
        if time.monotonic() - last_used > IDLE_CHECK_SECONDS and _closed_by_server(connection):
            connection.disconnect()  # send_packed_command connects it again
    replies = connection.retry.call_with_retry(
        lambda: _send_and_read(connection, payload, count),
        lambda _error: connection.disconnect(),
    )
    if len(idle) < MAX_IDLE:
        idle.append((connection, time.monotonic()))
    else:
        connection.disconnect()
    return replies


def _closed_by_server(connection) -> bool:
    """Whether an idle connection's socket reads as ready: EOF (the server closed it: a
    restart, its `timeout`) or stray data; either way it must not carry a round trip."""
    sock = getattr(connection, "_sock", None)
    if not isinstance(sock, socket.socket):
        return False
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def raise_error_replies(replies: list) -> list:
    """The replies, unless one is an error reply: then that error is raised."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _send_and_read(connection, payload: bytes, count: int) -> list:
    connection.send_packed_command([payload])
    sock = getattr(connection, "_sock", None)
    if hiredis is not None and isinstance(sock, socket.socket):
        return _read_replies(connection, sock, count)
    replies: list = []
    for _ in range(count):
        try:
            replies.append(connection.read_response())
        except redis.ResponseError as error:
            replies.append(error)
    return replies


def _read_replies(connection, sock: socket.socket, count: int) -> list:
    """`count` replies parsed by a hiredis reader of our own, straight from the socket:
    redis-py's read_response costs ~10 times more Python per reply. Only between
    round trips does the connection's own parser hold no data, so this is safe here."""
    reader = hiredis.Reader(protocolError=redis.exceptions.InvalidResponse,
                            replyError=_reply_error, notEnoughData=_NOT_ENOUGH_DATA)
    replies: list = []
    try:
        while len(replies) < count:
            reply = reader.gets()
            if reply is _NOT_ENOUGH_DATA:
                data = sock.recv(65536)
                if not data:
                    raise redis.ConnectionError("Connection closed by server.")
                reader.feed(data)
            else:
                replies.append(reply)
    except TimeoutError as error:
        connection.disconnect()
        raise redis.TimeoutError("Timeout reading from Redis") from error
    except OSError as error:
        connection.disconnect()
        raise redis.ConnectionError(f"Error while reading from Redis: {error}") from error
    except BaseException:
        connection.disconnect()  # half-read replies: never reuse this connection
        raise
    return replies
