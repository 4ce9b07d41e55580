"""Retry rules of the shared transport and SDK client options."""

import email.utils
import re
import time

import pytest

from beacon.sdk import ConfigError, HeartbeatClient, NetworkError, ServerError
from beacon.sdk import metadata as md
from beacon.sdk.client import generate_instance_id
from beacon.sdk.metadata import collect
from beacon.sdk.transport import Transport

FAST = {"initial_retry_delay": 0.01, "max_retry_delay": 0.05}


def _posts(pulse) -> int:
    return sum(1 for r in pulse.requests if r[1].startswith("/api/drift/heartbeat/"))


def _client(pulse, **options) -> HeartbeatClient:
    return HeartbeatClient(
        server_url=pulse.url, app="a", profile="p", token=pulse.token, **{**FAST, **options}
    )


def _record_waits(client: HeartbeatClient) -> list[float]:
    waits: list[float] = []
    client._core.transport.stop_event.wait = lambda t: waits.append(t) or False
    return waits


def test_408_is_retried(pulse):
    pulse.scripted.append((408, {}, {"code": "ERR_TIMEOUT", "message": "x"}))
    assert _client(pulse).report_now().drift_detected is False
    assert [r[2] for r in pulse.requests] == [408, 200]


def test_retry_after_http_date_is_honoured(pulse):
    client = _client(pulse, max_retry_delay=60)
    waits = _record_waits(client)
    when = email.utils.formatdate(time.time() + 3, usegmt=True)  # 1 s resolution
    pulse.scripted.append((429, {"Retry-After": when}, {"code": "ERR_RATE_LIMITED"}))
    client.report_now()
    (wait,) = waits
    assert 1.5 <= wait <= 3.1  # the date, not the 0.01 s backoff


def test_retry_after_http_date_is_capped(pulse):
    client = _client(pulse, max_retry_delay=0.5)
    waits = _record_waits(client)
    when = email.utils.formatdate(time.time() + 3600, usegmt=True)
    pulse.scripted.append((503, {"Retry-After": when}, {"code": "ERR_UNAVAILABLE"}))
    client.report_now()
    assert waits == [0.5]


def test_invalid_url_is_final_not_retried():
    t = Transport("http://127.0.0.1:99999", max_retries=3, initial_retry_delay=0.01)
    calls = []
    real = t.session.request
    t.session.request = lambda *a, **k: calls.append(a) or real(*a, **k)
    with pytest.raises(NetworkError) as info:
        t.request("GET", "/x")
    assert info.value.retryable is False and len(calls) == 1


def test_connection_error_is_retried_three_times():
    t = Transport("http://127.0.0.1:9", max_retries=3, initial_retry_delay=0.01)
    calls = []
    real = t.session.request
    t.session.request = lambda *a, **k: calls.append(a) or real(*a, **k)
    with pytest.raises(NetworkError) as info:
        t.request("GET", "/x")
    assert info.value.retryable is True and len(calls) == 3


def test_redirect_is_not_followed(pulse):
    pulse.scripted.append((302, {"Location": f"{pulse.url}/api/v1/beacon/config"}, None))
    t = Transport(pulse.url, token=pulse.token, max_retries=3)
    with pytest.raises(ServerError) as info:
        t.request("POST", "/api/v1/beacon/heartbeat", {"x": 1})
    assert info.value.status == 302 and len(pulse.requests) == 1


def test_report_now_after_stop_still_retries(pulse):
    client = _client(pulse, interval=60)
    client.start()
    deadline = time.monotonic() + 5
    while _posts(pulse) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    client.stop()
    assert not client.is_running
    n = len(pulse.requests)
    pulse.scripted.extend([(503, {}, {}), (503, {}, {})])
    client.report_now()  # the third attempt succeeds
    assert [r[2] for r in pulse.requests[n:]] == [503, 503, 200]


def test_restart_after_stop_reports_again(pulse):
    client = _client(pulse, interval=60)
    client.start()
    client.stop()
    n = len(pulse.drift_bodies)
    client.start()
    deadline = time.monotonic() + 5
    while len(pulse.drift_bodies) <= n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.is_running and len(pulse.drift_bodies) > n
    client.stop()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("interval", "abc"),
        ("interval", None),
        ("timeout", "5"),
        ("initial_retry_delay", True),
        ("max_retry_delay", float("nan")),
        ("max_retries", "3"),
        ("max_retries", 2.5),
        ("token", 123),
        ("tls_verify", "yes"),
        ("custom_metadata", ["a"]),
    ],
)
def test_bad_option_types_are_config_errors(option, value):
    with pytest.raises(ConfigError) as info:
        HeartbeatClient(server_url="http://x", app="a", profile="p", **{option: value})
    assert info.value.field == option


def test_instance_id_format():
    host = md.detect_hostname()
    ids = {
        HeartbeatClient(server_url="http://x", app="a", profile="p").instance_id for _ in range(20)
    }
    (iid,) = ids  # the same for every client of this app/profile on this host (SPEC §8)
    assert re.fullmatch(rf"{re.escape(host)}-[0-9a-z]{{8}}", iid), iid
    assert re.fullmatch(r"web-1-[0-9a-z]{8}", generate_instance_id("a", "p", "web-1"))


def test_metadata_region_precedence():
    full = {"AWS_REGION": "aws", "CLOUD_REGION": "cloud", "REGION": "plain"}
    assert collect(env=full).region == "aws"
    assert collect(env={"CLOUD_REGION": "cloud", "REGION": "plain"}).region == "cloud"
    assert collect(env={"REGION": "plain"}).region == "plain"
    assert collect(env={"AWS_REGION": "", "REGION": "plain"}).region == "plain"


def test_metadata_kubernetes_precedence(tmp_path, monkeypatch):
    k8s = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "pod-from-hostname"}
    assert collect(env={**k8s, "KUBERNETES_POD_NAME": "kp", "POD_NAME": "p"}).kubernetes_pod == "kp"
    assert collect(env={**k8s, "POD_NAME": "p"}).kubernetes_pod == "p"
    assert collect(env=k8s).kubernetes_pod == "pod-from-hostname"
    assert collect(env={"HOSTNAME": "pod-from-hostname"}).kubernetes_pod is None
    assert collect(env={"POD_NAMESPACE": "ns"}).kubernetes_namespace == "ns"
    both = {"KUBERNETES_NAMESPACE": "k", "POD_NAMESPACE": "ns"}
    assert collect(env=both).kubernetes_namespace == "k"
    sa = tmp_path / "namespace"
    sa.write_text("from-file\n")
    assert md.detect_kubernetes_namespace({}, str(sa)) == "from-file"
    assert md.detect_kubernetes_namespace({"POD_NAMESPACE": "ns"}, str(sa)) == "ns"
    assert md.detect_kubernetes_namespace({}, str(tmp_path / "missing")) is None
