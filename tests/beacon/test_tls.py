import ssl

import pytest
import trustme

from beacon.sdk import HeartbeatClient, NetworkError
from beacon.sdk.transport import Transport
from tests.beacon.standin import StandInPulse


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def https_pulse(ca):
    server = StandInPulse()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    server.tls_context = ctx
    server.start()
    yield server
    server.stop()


def test_refused_without_ca(https_pulse):
    client = HeartbeatClient(
        server_url=https_pulse.url, app="a", profile="p", token=https_pulse.token, max_retries=1
    )
    with pytest.raises(NetworkError, match="SSL|certificate"):
        client.report_now()
    assert https_pulse.drift_bodies == []


def test_accepted_with_ca_file(https_pulse, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client = HeartbeatClient(
        server_url=https_pulse.url,
        app="a",
        profile="p",
        token=https_pulse.token,
        ca_file=str(ca_file),
    )
    assert client.report_now().registered is True


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verify_false_accepts_unknown_ca(https_pulse):
    t = Transport(https_pulse.url, token=https_pulse.token, tls_verify=False, max_retries=1)
    assert t.request("GET", "/api/v1/beacon/config").status == 200


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_floor_is_1_2(https_pulse, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    t = Transport(https_pulse.url, ca_file=str(ca_file))
    adapter = t.session.get_adapter(https_pulse.url)
    assert adapter._ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2
    # A server that only speaks TLS 1.1 is refused.
    old = StandInPulse()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    try:
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even configure TLS 1.1")
    old.tls_context = ctx
    old.start()
    try:
        t2 = Transport(old.url, ca_file=str(ca_file), max_retries=1)
        with pytest.raises(NetworkError):
            t2.request("GET", "/api/v1/beacon/config")
    finally:
        old.stop()
