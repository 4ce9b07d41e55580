"""redis_wire.round_trip on a real Redis: replies in order, error replies in place,
connections reused without leaking, recovery after a Redis restart, fork safety."""

from __future__ import annotations

import threading

import pytest
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from app.ingest import redis_wire

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_server):
    c = redis.Redis.from_url(redis_server.url, retry=Retry(ExponentialBackoff(cap=1.0), 6),
                             retry_on_error=[redis.ConnectionError, redis.TimeoutError])
    c.delete("wire:n", "wire:s")
    yield c
    c.close()


def test_replies_in_order_with_error_replies_in_place(client):
    replies = redis_wire.round_trip(client, [
        ("INCRBY", "wire:n", 5),
        ("INCRBY", "wire:n", "not-a-number"),
        ("SADD", "wire:s", "a", "b"),
        ("GET", "wire:n"),
    ])
    assert replies[0] == 5
    assert isinstance(replies[1], redis.ResponseError)
    assert replies[2:] == [2, b"5"]
    # every reply was read: the connection is in step for the next call
    assert redis_wire.round_trip(client, [("PING",)]) == [b"PONG"]


def test_a_connection_is_reused_and_not_taken_from_the_pool(client):
    redis_wire.round_trip(client, [("PING",)])
    idle = redis_wire._idle_list(client.connection_pool)
    assert len(idle) == 1
    first = idle[0][0]
    redis_wire.round_trip(client, [("PING",)])
    assert [connection for connection, _ in idle] == [first]
    assert not client.connection_pool._in_use_connections


def test_short_lived_threads_do_not_exhaust_connections(client):
    """flask run starts a thread per connection: 150 of them must not use up the pool
    (100 connections) or keep 150 sockets open."""
    errors = []
    open_before = len(client.client_list())

    def one_request():
        try:
            redis_wire.round_trip(client, [("INCRBY", "wire:n", 1)])
        except Exception as exc:  # noqa: BLE001 (collected for the assertion)
            errors.append(exc)

    for _ in range(150):
        thread = threading.Thread(target=one_request)
        thread.start()
        thread.join()
    assert errors == []
    assert int(client.get("wire:n")) == 150
    assert client.ping()
    assert len(redis_wire._idle_list(client.connection_pool)) <= redis_wire.MAX_IDLE
    assert len(client.client_list()) <= open_before + redis_wire.MAX_IDLE


def test_a_forked_child_does_not_use_the_parents_connections(client, monkeypatch):
    redis_wire.round_trip(client, [("PING",)])
    parents = list(redis_wire._idle_list(client.connection_pool))
    assert parents
    monkeypatch.setattr(redis_wire.os, "getpid", lambda: -1)
    assert redis_wire._idle_list(client.connection_pool) == []


def test_recovers_after_a_redis_restart(client, redis_server):
    assert redis_wire.round_trip(client, [("INCRBY", "wire:n", 1)]) == [1]
    redis_server.restart()  # AOF: the key survives; the held socket does not
    assert redis_wire.round_trip(client, [("INCRBY", "wire:n", 1)]) == [2]


def test_replies_larger_than_one_read_arrive_whole(client, monkeypatch):
    """Replies are parsed straight from the socket; one that spans many reads (here
    ~300 KB, the read size is 64 KB) and the small ones after it all come back intact."""
    direct_reads = []
    read = redis_wire._read_replies
    monkeypatch.setattr(redis_wire, "_read_replies",
                        lambda *args: direct_reads.append(1) or read(*args))
    value = bytes(range(256)) * 1200
    replies = redis_wire.round_trip(client, [("SET", "wire:s", value), ("GET", "wire:s"),
                                             ("STRLEN", "wire:s"), ("PING",)])
    assert replies == [b"OK", value, len(value), b"PONG"]
    assert direct_reads == [1]  # a real socket: hiredis read it, not redis-py


def test_a_connection_closed_while_replies_are_read_is_retried(client):
    """The server closes the socket after the first command: the read fails, the
    connection is dropped and the round trip is sent again on a fresh one."""
    victim = redis_wire.round_trip(client, [("CLIENT", "ID")])[0]
    replies = redis_wire.round_trip(client, [("CLIENT", "KILL", "ID", victim),
                                             ("INCRBY", "wire:n", 1)])
    # the first attempt's own connection was the victim: it got no reply, so the retry
    # killed nobody (0) and the counter was incremented by the retry alone
    assert replies == [0, 1]
    assert int(client.get("wire:n")) == 1


def test_connections_without_a_socket_use_redis_py_reads():
    """fakeredis (embedded mode) has no socket; round trips still work there."""
    import fakeredis

    fake = fakeredis.FakeRedis()
    replies = redis_wire.round_trip(fake, [("INCRBY", "wire:n", 2), ("INCRBY", "wire:n", "x"),
                                           ("GET", "wire:n")])
    assert replies[0] == 2
    assert isinstance(replies[1], redis.ResponseError)
    assert replies[2] == b"2"


def test_error_replies_keep_redis_py_classes(client):
    """A NOSCRIPT reply is a NoScriptError, as redis-py reports it (callers reload on it)."""
    (reply,) = redis_wire.round_trip(client, [("EVALSHA", "0" * 40, 0)])
    assert isinstance(reply, redis.exceptions.NoScriptError)


def test_an_idle_connection_closed_by_the_server_is_not_used(redis_server, monkeypatch):
    """A client without retries (as the rate limiter's): after the server closed the idle
    connection (a restart, its `timeout`), the next round trip still succeeds."""
    from redis.backoff import NoBackoff

    bare = redis.Redis.from_url(redis_server.url, retry=Retry(NoBackoff(), 0))
    assert redis_wire.round_trip(bare, [("PING",)]) == [b"PONG"]
    killer = redis.Redis.from_url(redis_server.url)
    assert killer.client_kill_filter(_type="normal", skipme=True) >= 1
    monkeypatch.setattr(redis_wire, "IDLE_CHECK_SECONDS", 0.0)  # instead of waiting 1 s
    assert redis_wire.round_trip(bare, [("PING",)]) == [b"PONG"]
    killer.close()
