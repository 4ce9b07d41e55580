"""PULSE_NODE_RATE_LIMIT on a real Redis, through both heartbeat paths: the hits are the
`limits` library's own moving-window entries (sent through redis_wire), so the library
reads what ingest counted, a flushed script cache is reloaded, and nodes are apart."""

from __future__ import annotations

import pytest

from tests.integration.helpers import heartbeat, recent, setup_node

pytestmark = pytest.mark.integration
URL = "/api/v1/beacon/heartbeat"


@pytest.fixture(params=["1", "0"], ids=["fast-path", "view"])
def server_env(server_env, request):
    """pg_app with a limit of 3 a minute, through the fast path and through the view."""
    return {**server_env, "PULSE_NODE_RATE_LIMIT": "3/minute",
            "PULSE_HEARTBEAT_FAST_PATH": request.param}


@pytest.fixture
def limited_app(pg_app):
    return pg_app


def _window(app, node_id: str):
    limiter, limit = app.extensions["pulse_rate_limit"]
    return limiter.get_window_stats(limit, "node", node_id)


def test_the_fourth_heartbeat_in_a_minute_is_429(limited_app):
    ctx = setup_node(limited_app, probe_count=1)
    other = setup_node(limited_app, probe_count=1)
    client = ctx["client"]
    for i in range(3):
        body = heartbeat(ctx["node_id"], ctx["probe_ids"], recent(30 - i))
        assert client.post(URL, json=body, headers=ctx["node_headers"]).status_code == 200
        assert _window(limited_app, ctx["node_id"]).remaining == 2 - i  # the library sees it
    response = client.post(URL, json=heartbeat(ctx["node_id"], ctx["probe_ids"], recent(5)),
                           headers=ctx["node_headers"])
    assert response.status_code == 429
    assert response.get_json()["code"] == "ERR_RATE_LIMITED"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert _window(limited_app, ctx["node_id"]).remaining == 0
    # another node has its own window
    body = heartbeat(other["node_id"], other["probe_ids"], recent(5))
    assert other["client"].post(URL, json=body, headers=other["node_headers"]).status_code == 200


def test_hits_are_the_librarys_own_entries(limited_app):
    """Two hits through ingest, then the library's own hit(): the third passes, the fourth
    does not — one window, not two."""
    ctx = setup_node(limited_app, probe_count=1)
    for i in range(2):
        body = heartbeat(ctx["node_id"], ctx["probe_ids"], recent(30 - i))
        assert ctx["client"].post(URL, json=body,
                                  headers=ctx["node_headers"]).status_code == 200
    limiter, limit = limited_app.extensions["pulse_rate_limit"]
    assert limiter.hit(limit, "node", ctx["node_id"]) is True
    assert limiter.hit(limit, "node", ctx["node_id"]) is False


def test_a_flushed_script_cache_is_reloaded(limited_app, redis_server, monkeypatch):
    """The hit goes through redis_wire; after Redis lost its scripts (a restart) the
    library's script is loaded again and the hit counted once."""
    import redis

    from app.ingest import rate_limit

    sent = []
    real = rate_limit.round_trip
    monkeypatch.setattr(rate_limit, "round_trip",
                        lambda client, commands: sent.append(commands[0][0]) or real(client,
                                                                                  commands))
    ctx = setup_node(limited_app, probe_count=1)
    body = heartbeat(ctx["node_id"], ctx["probe_ids"], recent(20))
    assert ctx["client"].post(URL, json=body, headers=ctx["node_headers"]).status_code == 200
    assert sent and set(sent) == {"EVALSHA"}
    redis.Redis.from_url(redis_server.url).script_flush()
    body = heartbeat(ctx["node_id"], ctx["probe_ids"], recent(10))
    assert ctx["client"].post(URL, json=body, headers=ctx["node_headers"]).status_code == 200
    assert _window(limited_app, ctx["node_id"]).remaining == 1
