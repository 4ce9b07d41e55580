import socket
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


def _tls11_handshake_works(ca, port: int) -> bool:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            return tls.version() == "TLSv1.1"
    except (OSError, ssl.SSLError):
        return False


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_floor_is_1_2(ca, tmp_path):
    """A server capped at TLS 1.1 is refused because of the floor of the adapter's context.

    Both sides drop to OpenSSL security level 0 so that nothing but the protocol version
    can refuse the handshake; the control then lowers the floor of that same context and
    the same server is accepted, so the refusal is the floor's doing (not Python's or
    OpenSSL's defaults) and the context is the one requests really uses.
    """
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    old = StandInPulse()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even configure TLS 1.1")
    old.tls_context = ctx
    old.start()
    try:
        if not _tls11_handshake_works(ca, old.port):
            pytest.skip("this host cannot do TLS 1.1 at all, so the floor is not observable")
        t = Transport(old.url, token=old.token, ca_file=str(ca_file), max_retries=1)
        client_ctx = t.session.get_adapter(old.url)._ssl_context
        assert client_ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        client_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with pytest.raises(NetworkError, match="SSL|version"):
            t.request("GET", "/api/v1/beacon/config")
        client_ctx.minimum_version = ssl.TLSVersion.TLSv1  # control: same context, no floor
        assert t.request("GET", "/api/v1/beacon/config").status == 200
    finally:
        old.stop()


def test_certificate_error_is_not_retried(https_pulse):
    t = Transport(https_pulse.url, token=https_pulse.token, max_retries=3, initial_retry_delay=5)
    calls = []
    real = t.session.request
    t.session.request = lambda *a, **k: calls.append(a) or real(*a, **k)
    with pytest.raises(NetworkError, match="SSL|certificate") as info:
        t.request("GET", "/api/v1/beacon/config")
    assert info.value.retryable is False and len(calls) == 1  # no 5 s backoff either
