"""SDK: the default instance id, drift warnings on a change only, payload limits,
and one short line for a failed heartbeat."""

import hashlib
import logging
import socket
import subprocess
import sys

from beacon.sdk import HeartbeatClient, NetworkError
from beacon.sdk.options import generate_instance_id

FAST = {"initial_retry_delay": 0.01, "max_retry_delay": 0.05}


def _base36_8(text: str) -> str:
    """The SPEC §8 suffix computed independently: base 36 digits of the sha256, low first."""
    n = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    out = ""
    for _ in range(8):
        n, d = divmod(n, 36)
        out += "0123456789abcdefghijklmnopqrstuvwxyz"[d]
    return out


def test_default_instance_id_is_hostname_and_hash_of_host_app_profile():
    assert generate_instance_id("payments", "prod", "web-1") == "web-1-" + _base36_8(
        "web-1|payments|prod"
    )
    ids = {
        generate_instance_id("payments", "prod", "web-1"),
        generate_instance_id("payments", "staging", "web-1"),
        generate_instance_id("billing", "prod", "web-1"),
        generate_instance_id("payments", "prod", "web-2"),
    }
    assert len(ids) == 4


def test_default_instance_id_survives_a_restart():
    """A new interpreter (a restarted application) gets the same id."""
    code = (
        "from beacon.sdk import HeartbeatClient;"
        "print(HeartbeatClient(server_url='http://x', app='a', profile='p').instance_id)"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert runs == {generate_instance_id("a", "p", socket.gethostname())}


def test_drift_warning_only_when_the_drift_state_changes(pulse, caplog):
    client = HeartbeatClient(server_url=pulse.url, app="a", profile="p", token=pulse.token)
    caplog.set_level(logging.WARNING, logger="beacon.sdk")

    def warnings():
        return [r.getMessage() for r in caplog.records if r.name == "beacon.sdk"]

    client.report_now()  # no expectation: in line, nothing to say
    assert warnings() == []
    pulse.expected_version = "v2"
    client.set_config_version("v1")
    for _ in range(3):
        assert client.report_now().drift_detected
    (drift,) = warnings()
    assert "config drift" in drift and "runs v1, expected v2" in drift
    client.set_config_version("v2")
    for _ in range(3):
        assert not client.report_now().drift_detected
    assert len(warnings()) == 2 and "back in line" in warnings()[1]
    pulse.expected_version = "v3"
    client.report_now()
    client.report_now()
    assert len(warnings()) == 3 and "expected v3" in warnings()[2]


def test_payload_trimmed_to_pulse_limits(pulse):
    labels = {f"label{i}": "v\x00" + "x" * 300 for i in range(40)}
    client = HeartbeatClient(
        server_url=pulse.url,
        app="a",
        profile="p",
        token=pulse.token,
        custom_metadata=labels,
        health="healthy\n",
    )
    client.set_config_version("v\x01" + "1" * 200)
    client.report_now()
    (body,) = pulse.drift_bodies
    assert len(body["metadata"]) == 32
    assert all(v == "v" + "x" * 255 for v in body["metadata"].values())
    assert body["config_version"] == "v" + "1" * 127
    assert body["health"] == "healthy"


def test_failed_heartbeat_is_one_short_line():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    srv.close()  # nothing listens: connection refused
    client = HeartbeatClient(
        server_url=f"http://127.0.0.1:{port}", app="a", profile="p", max_retries=2, **FAST
    )
    try:
        client.report_now()
    except NetworkError as exc:
        message = str(exc)
    else:
        raise AssertionError("no error")
    assert message == f"connection refused to http://127.0.0.1:{port}"
