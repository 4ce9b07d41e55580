import asyncio
import random
import threading
import time

import pytest

from beacon.sdk import (
    AsyncHeartbeatClient,
    ConfigError,
    HeartbeatClient,
    NetworkError,
    ReporterError,
    ServerError,
)
from beacon.sdk.metadata import collect
from beacon.sdk.transport import backoff_delay, parse_retry_after

FAST = {"initial_retry_delay": 0.01, "max_retry_delay": 0.05}


def test_builder_validates_required_fields():
    with pytest.raises(ConfigError, match="server_url"):
        HeartbeatClient.builder().build()
    with pytest.raises(ConfigError, match="app") as info:
        HeartbeatClient.builder().server_url("http://localhost:8080").build()
    assert info.value.field == "app"
    with pytest.raises(ConfigError, match="profile"):
        HeartbeatClient.builder().server_url("http://localhost:8080").app("myapp").build()
    client = (
        HeartbeatClient.builder()
        .server_url("http://localhost:8080")
        .app("myapp")
        .profile("prod")
        .build()
    )
    assert isinstance(client, HeartbeatClient)
    with pytest.raises(ConfigError, match="interval"):
        HeartbeatClient(server_url="http://x", app="a", profile="p", interval=0)
    with pytest.raises(ConfigError):
        HeartbeatClient(server_url="http://x", app="a", profile="p", intervl=1)


def test_generates_instance_id():
    client = HeartbeatClient(server_url="http://localhost:8080", app="myapp", profile="prod")
    host, _, suffix = client.instance_id.rpartition("-")
    assert host and len(suffix) == 8 and all(c.isdigit() or c.islower() for c in suffix)
    assert HeartbeatClient(server_url="http://x", app="a", profile="p", instance_id="").instance_id
    assert (
        HeartbeatClient(server_url="http://x", app="a", profile="p", instance_id="i-1").instance_id
        == "i-1"
    )


def test_metadata_collector(monkeypatch, tmp_path):
    meta = collect()
    assert meta.hostname
    env = {
        "CLOUD_REGION": "eu-1",
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "HOSTNAME": "pod-7",
        "POD_NAMESPACE": "ns",
        "APP_VERSION": "1.2",
    }
    meta = collect({"team": "platform"}, env=env)
    assert (meta.region, meta.kubernetes_pod, meta.kubernetes_namespace) == ("eu-1", "pod-7", "ns")
    assert meta.app_version == "1.2" and meta.custom == {"team": "platform"}
    assert collect(env={"HOSTNAME": "h"}).kubernetes_pod is None
    assert collect({"a": "b"}, auto_detect=False).hostname is None


def test_client_start_stop():
    client = HeartbeatClient(
        server_url="http://127.0.0.1:9",
        app="test",
        profile="test",
        instance_id="test-instance",
        interval=60,
        **FAST,
    )
    assert not client.is_running
    client.start()  # cannot connect; must not raise
    assert client.is_running
    started = time.monotonic()
    client.stop()
    assert not client.is_running and time.monotonic() - started < 2


def test_client_config_version():
    client = HeartbeatClient(server_url="http://localhost:8080", app="test", profile="test")
    assert client.config_version == "unknown"
    client.set_config_version("v1.2.3")
    assert client.config_version == "v1.2.3"
    client.set_config_version("v2.0.0")
    assert client.config_version == "v2.0.0"


def test_heartbeats_sent_to_server(pulse):
    client = (
        HeartbeatClient.builder()
        .server_url(pulse.url)
        .app("test-app")
        .profile("test")
        .instance_id("test-instance")
        .interval(0.1)
        .token(pulse.token)
        .metadata("team", "x")
        .build()
    )
    client.set_config_version("v1.0.0")
    client.start()
    time.sleep(0.35)
    client.stop()
    assert len(pulse.drift_bodies) >= 3
    body = pulse.drift_bodies[0]
    assert body["instance_id"] == "test-instance" and body["config_version"] == "v1.0.0"
    assert body["metadata"]["team"] == "x" and body["health"] == "healthy" and body["hostname"]
    assert set(body) == {
        "instance_id",
        "config_version",
        "hostname",
        "ip_address",
        "region",
        "kubernetes_pod",
        "kubernetes_namespace",
        "metadata",
        "health",
    }
    assert ("POST", "/api/drift/heartbeat/test-app/test", 200) in pulse.requests


def test_first_heartbeat_immediate_and_stop_mid_sleep(pulse):
    client = HeartbeatClient(
        server_url=pulse.url, app="a", profile="p", token=pulse.token, interval=30
    )
    client.start()
    deadline = time.monotonic() + 2
    while not pulse.drift_bodies and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(pulse.drift_bodies) == 1
    started = time.monotonic()
    client.stop()
    assert time.monotonic() - started < 0.5


def test_report_now_and_drift(pulse):
    pulse.expected_version = "v2"
    client = HeartbeatClient(server_url=pulse.url, app="a", profile="p", token=pulse.token)
    client.set_config_version("v1")
    first = client.report_now()
    assert first.registered and first.drift_detected and first.expected_version == "v2"
    client.set_config_version("v2")
    again = client.report_now()
    assert not again.registered and not again.drift_detected


def _client(pulse, **kw):
    return HeartbeatClient(
        server_url=pulse.url, app="a", profile="p", token=pulse.token, **{**FAST, **kw}
    )


def _count(pulse):
    return sum(1 for m, path, _ in pulse.requests if path.startswith("/api/drift/"))


def test_retries_on_500_then_gives_up(pulse):
    for _ in range(5):
        pulse.scripted.append((500, {}, {"code": "ERR_INTERNAL", "message": "x", "details": {}}))
    with pytest.raises(ServerError) as info:
        _client(pulse).report_now()
    assert info.value.status == 500 and info.value.code == "ERR_INTERNAL"
    assert _count(pulse) == 3  # max_retries = attempts in all


def test_400_is_final(pulse):
    pulse.scripted.append((400, {}, {"code": "ERR_VALIDATION", "message": "bad", "details": {}}))
    with pytest.raises(ServerError) as info:
        _client(pulse).report_now()
    assert info.value.status == 400 and "ERR_VALIDATION" in info.value.body
    assert _count(pulse) == 1


def test_429_honours_retry_after_then_succeeds(pulse):
    pulse.scripted.append((429, {"Retry-After": "0.3"}, {"code": "ERR_RATE_LIMITED"}))
    started = time.monotonic()
    answer = _client(pulse, max_retry_delay=1.0).report_now()
    assert answer.drift_detected is False
    assert time.monotonic() - started >= 0.3
    assert _count(pulse) == 2


def test_401_is_final_and_wrong_token(pulse):
    client = HeartbeatClient(server_url=pulse.url, app="a", profile="p", token="wrong", **FAST)
    with pytest.raises(ServerError) as info:
        client.report_now()
    assert info.value.status == 401 and _count(pulse) == 1


def test_network_error_retried():
    client = HeartbeatClient(server_url="http://127.0.0.1:9", app="a", profile="p", **FAST)
    attempts = []
    real = client._core.transport.attempt
    client._core.transport.attempt = lambda *a, **k: attempts.append(a) or real(*a, **k)
    with pytest.raises(NetworkError):
        client.report_now()
    assert len(attempts) == 3  # max_retries defaults to 3 attempts in all
    assert issubclass(NetworkError, ReporterError)


def test_parse_error(pulse):
    pulse.scripted.append((200, {}, ["not", "an", "object"]))
    from beacon.sdk import ParseError

    with pytest.raises(ParseError):
        _client(pulse).report_now()


def test_backoff_and_jitter_bounds():
    rng = random.Random(1)
    for attempt, base in ((1, 1.0), (2, 2.0), (3, 4.0), (7, 60.0), (20, 60.0)):
        for _ in range(200):
            d = backoff_delay(attempt, 1.0, 60.0, rng)
            assert base <= d <= base * 1.1
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) is None
    assert parse_retry_after("garbage") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0


def test_default_waits_are_1s_then_2s(monkeypatch, pulse):
    waits = []
    client = HeartbeatClient(server_url=pulse.url, app="a", profile="p", token=pulse.token)
    monkeypatch.setattr(
        client._core.transport.stop_event, "wait", lambda t: waits.append(t) or False
    )
    for _ in range(3):
        pulse.scripted.append((503, {}, {}))
    with pytest.raises(ServerError):
        client.report_now()
    assert len(waits) == 2 and 1.0 <= waits[0] <= 1.1 and 2.0 <= waits[1] <= 2.2


def test_stop_interrupts_retry_backoff(pulse):
    for _ in range(3):
        pulse.scripted.append((503, {}, {}))
    client = _client(pulse, initial_retry_delay=10, max_retry_delay=10, interval=60)
    client.start()
    time.sleep(0.2)
    started = time.monotonic()
    client.stop()
    assert time.monotonic() - started < 1


def test_async_twin(pulse):
    async def scenario():
        client = (
            AsyncHeartbeatClient.builder()
            .server_url(pulse.url)
            .app("a")
            .profile("p")
            .token(pulse.token)
            .interval(0.1)
            .build()
        )
        assert client.config_version == "unknown"
        client.set_config_version("v9")
        answer = await client.report_now()
        assert answer.registered
        await client.start()
        assert client.is_running
        await asyncio.sleep(0.35)
        started = time.monotonic()
        await client.stop()
        assert time.monotonic() - started < 0.5 and not client.is_running

    asyncio.run(scenario())
    assert len(pulse.drift_bodies) >= 4 and pulse.drift_bodies[-1]["config_version"] == "v9"


def test_async_errors_and_config():
    with pytest.raises(ConfigError):
        AsyncHeartbeatClient(server_url="http://x", app="a")

    async def scenario():
        client = AsyncHeartbeatClient(
            server_url="http://127.0.0.1:9", app="a", profile="p", max_retries=1
        )
        with pytest.raises(NetworkError):
            await client.report_now()

    asyncio.run(scenario())


def test_metrics_only_when_prometheus_in_use(pulse):
    import prometheus_client  # noqa: F401 - the application "uses" it

    from beacon.sdk import metrics

    _client(pulse).report_now()
    assert metrics._metrics is not None
    total = metrics._metrics["total"].labels(status="success")._value.get()
    assert total >= 1


def test_threads_are_named_daemons(pulse):
    client = _client(pulse, interval=60)
    client.start()
    names = [t for t in threading.enumerate() if t.name == "heartbeat-a"]
    assert names and names[0].daemon
    client.stop()
