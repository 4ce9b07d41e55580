"""redis_wire.round_trip on a real Redis: replies in order, error replies in place, one
held connection per thread and pool, recovery after a Redis restart, fork safety."""

from __future__ import annotations

import threading

import pytest
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from app.services import redis_wire

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


def test_one_held_connection_per_thread(client):
    redis_wire.round_trip(client, [("PING",)])
    mine = redis_wire._connection(client.connection_pool)
    assert redis_wire._connection(client.connection_pool) is mine
    other = []
    thread = threading.Thread(
        target=lambda: other.append(redis_wire._connection(client.connection_pool)))
    thread.start()
    thread.join()
    assert other[0] is not mine


def test_a_forked_child_does_not_use_the_parents_connection(client, monkeypatch):
    parent = redis_wire._connection(client.connection_pool)
    monkeypatch.setattr(redis_wire.os, "getpid", lambda: -1)
    monkeypatch.setattr(client.connection_pool, "_checkpid", lambda: None)
    assert redis_wire._connection(client.connection_pool) is not parent


def test_recovers_after_a_redis_restart(client, redis_server):
    assert redis_wire.round_trip(client, [("INCRBY", "wire:n", 1)]) == [1]
    redis_server.restart()  # AOF: the key survives; the held socket does not
    assert redis_wire.round_trip(client, [("INCRBY", "wire:n", 1)]) == [2]
