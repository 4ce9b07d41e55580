import socket
import time

import pytest

from beacon.probes import ProbeSpec
from beacon.probes.tcp import tcp_run


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    yield srv.getsockname()[1]
    srv.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now: the kernel answers RST
    return port


def test_open_port(listener):
    run = tcp_run(ProbeSpec("TCP", "127.0.0.1", listener, count=5, timeout_seconds=2), 0.01)
    s = run.stats
    assert (s.sent, s.received, s.packet_loss_rate) == (5, 5, 0.0)
    assert 0 < s.latency_ms < 50 and run.error is None
    assert run.resolve_ms is not None and run.address == "127.0.0.1"


def test_closed_port_refused():
    run = tcp_run(ProbeSpec("TCP", "127.0.0.1", closed_port(), count=3, timeout_seconds=2), 0.01)
    assert run.stats.received == 0 and run.stats.packet_loss_rate == 100.0
    assert run.error == "ERR_CONNECTION_REFUSED"
    assert run.result()["latency_ms"] == 0.0


def test_full_accept_queue_times_out():
    """listen(0) and never accept: once the queue is full, SYNs go unanswered."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    try:
        # Fill the backlog; stop as soon as a connect does not complete.
        for _ in range(8):
            c = socket.socket()
            c.settimeout(0.3)
            try:
                c.connect(("127.0.0.1", port))
                fillers.append(c)
            except TimeoutError:
                c.close()
                break
        else:
            pytest.fail("the accept queue never filled on this kernel")
        started = time.monotonic()
        run = tcp_run(ProbeSpec("TCP", "127.0.0.1", port, count=2, timeout_seconds=1), 0.0)
        elapsed = time.monotonic() - started
        assert run.stats.received == 0 and run.error == "ERR_CONNECTION_TIMEOUT"
        assert 1.8 <= elapsed < 4
    finally:
        for c in fillers:
            c.close()
        srv.close()


def test_unresolvable_name():
    run = tcp_run(ProbeSpec("TCP", "no-such-host.invalid", 80, count=3, timeout_seconds=1), 0.0)
    assert run.error == "ERR_DNS" and run.stats.sent == 3 and run.stats.packet_loss_rate == 100.0


def test_timing_is_connect_only(listener, monkeypatch):
    """A slow resolver does not show up in the RTT."""
    import beacon.probes.tcp as tcp

    real = tcp.resolve

    def slow(*args):
        time.sleep(0.2)
        return real(*args)

    monkeypatch.setattr(tcp, "resolve", slow)
    run = tcp_run(ProbeSpec("TCP", "127.0.0.1", listener, count=2, timeout_seconds=2), 0.0)
    assert run.resolve_ms >= 200 and run.stats.latency_max_ms < 100


def test_stop_event_ends_run_early(listener):
    import threading

    stop = threading.Event()
    stop.set()
    run = tcp_run(ProbeSpec("TCP", "127.0.0.1", listener, count=10, timeout_seconds=2), 1.0, stop)
    assert len(run.samples) == 0
