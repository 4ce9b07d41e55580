"""PULSE_NODE_RATE_LIMIT on a real Redis and PostgreSQL, through the fast path and the
view: the `limits` library's MovingWindowRateLimiter is the reference (same accept/refuse
decisions for the same request times, and it reads the window ingest keeps), a 429 stores
nothing in Redis or, after a flush, in PostgreSQL, and the check is one with the write."""

from __future__ import annotations

import random
import types

import pytest
from limits import parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.extensions import get_redis
from app.history.flush import flush_pending
from app.history.live_cache import read_series
from app.ingest import rate_limit
from app.redis_keys import node_rate_gate_key, pending_stream
from tests.integration.helpers import heartbeat, raw_count, recent, setup_node

pytestmark = pytest.mark.integration
URL = "/api/v1/beacon/heartbeat"
BATCH_URL = "/api/v1/beacon/heartbeats"


@pytest.fixture(params=["1", "0"], ids=["fast-path", "view"])
def server_env(server_env, request):
    """pg_app with a limit of 3 a minute, through the fast path and through the view."""
    return {**server_env, "PULSE_NODE_RATE_LIMIT": "3/minute",
            "PULSE_HEARTBEAT_FAST_PATH": request.param}


def _library(app) -> tuple[MovingWindowRateLimiter, object]:
    """The library's own limiter reading the keys ingest writes."""
    with app.app_context():
        handle = get_redis()
        url = app.config["REDIS_URL"]
        storage = storage_from_string(url, key_prefix=f"{handle.prefix}:limits")
    return MovingWindowRateLimiter(storage), parse(app.config["PULSE_NODE_RATE_LIMIT"])


def _ident(ctx) -> str:
    """The identifier the library is given for a node (its id as the key's hash tag)."""
    return "{" + ctx["node_id"] + "}"


def _post(ctx, seconds_ago: float, batch: bool = False):
    body = heartbeat(ctx["node_id"], ctx["probe_ids"], recent(seconds_ago))
    if batch:
        return ctx["client"].post(BATCH_URL, json={"heartbeats": [body]},
                                  headers=ctx["node_headers"])
    return ctx["client"].post(URL, json=body, headers=ctx["node_headers"])


def test_the_fourth_request_in_a_minute_is_429(pg_app):
    ctx = setup_node(pg_app, probe_count=1)
    other = setup_node(pg_app, probe_count=1)
    limiter, limit = _library(pg_app)
    for i in range(3):
        assert _post(ctx, 30 - i, batch=i == 1).status_code == 200
        # the library reads the window ingest counted
        assert limiter.get_window_stats(limit, "node", _ident(ctx)).remaining == 2 - i
    for batch in (False, True):
        response = _post(ctx, 5, batch=batch)
        assert response.status_code == 429
        assert response.get_json()["code"] == "ERR_RATE_LIMITED"
        assert set(response.get_json()) == {"code", "message", "details"}
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    # another node has its own window
    assert _post(other, 5).status_code == 200
    # and the library's own hit() sees the full window
    assert limiter.hit(limit, "node", _ident(ctx)) is False


def test_a_refused_request_stores_nothing(pg_app):
    """Three heartbeats stored; the refused ones (single and batch, new points each) are in
    neither the live cache nor the pending stream, nor in PostgreSQL after a flush."""
    ctx = setup_node(pg_app, probe_count=2)
    accepted_ago = [50, 40, 30]
    for seconds in accepted_ago:
        assert _post(ctx, seconds).status_code == 200
    with pg_app.app_context():
        handle = get_redis()
        stream_before = handle.client.xlen(pending_stream(handle.prefix))
    for seconds, batch in ((20, False), (15, True), (10, False)):
        assert _post(ctx, seconds, batch=batch).status_code == 429
    with pg_app.app_context():
        handle = get_redis()
        assert handle.client.xlen(pending_stream(handle.prefix)) == stream_before
        for series in [*ctx["probe_ids"], "_node"]:
            assert len(read_series(handle.client, handle.prefix, ctx["node_id"], series)) == 3
        assert not handle.client.exists(node_rate_gate_key(handle.prefix, ctx["node_id"]))
        flush_pending()
    assert raw_count(pg_app) == 3 * 2


def test_a_flushed_script_cache_changes_nothing(pg_app, redis_server):
    """The check goes as EVAL (its source with it): after Redis lost its scripts the check
    still runs before the writes, and the hit is counted once."""
    import redis

    ctx = setup_node(pg_app, probe_count=1)
    assert _post(ctx, 20).status_code == 200
    redis.Redis.from_url(redis_server.url).script_flush()
    assert _post(ctx, 10).status_code == 200
    limiter, limit = _library(pg_app)
    assert limiter.get_window_stats(limit, "node", _ident(ctx)).remaining == 1


@pytest.mark.parametrize("spec", ["5/10 seconds", "3/second"])
def test_decisions_agree_with_the_limits_library(pg_app, monkeypatch, spec):
    """Requests at irregular times (a clock of our own) through ingest and through the
    library's moving window in memory: the same requests accepted, the same refused."""
    pg_app.extensions["pulse_rate_limit"] = rate_limit.NodeRateLimit(parse(spec))
    ctx = setup_node(pg_app, probe_count=1)
    rng = random.Random(14)
    now = [1_900_000_000.0]  # a fixed start: the window entries are ours alone
    steps = [rng.choice([0.05, 0.3, 0.9, 2.5, 4.0]) for _ in range(60)]
    monkeypatch.setattr(rate_limit, "clock", lambda: now[0])
    ours = []
    for i, step in enumerate(steps):
        now[0] += step
        status = _post(ctx, 120 - i, batch=i % 7 == 3).status_code
        assert status in (200, 429)
        ours.append(status == 200)
    reference_time = [1_900_000_000.0]
    import limits.storage.memory as memory

    monkeypatch.setattr(memory, "time", types.SimpleNamespace(time=lambda: reference_time[0]))
    reference = MovingWindowRateLimiter(MemoryStorage())
    limit = parse(spec)
    theirs = []
    for step in steps:
        reference_time[0] += step
        theirs.append(reference.hit(limit, "node", "x"))
    assert ours == theirs
    assert 0 < sum(ours) < len(ours)  # both kinds of answer were exercised
