import errno
import socket
import threading
import time

import pytest

from beacon.probes import ProbeSpec
from beacon.probes.tcp import classify, tcp_run
from tests.beacon.fullqueue import FullQueue


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


@pytest.fixture
def full_queue():
    fq = FullQueue()
    yield fq.port
    fq.close()


def test_full_accept_queue_times_out(full_queue):
    started = time.monotonic()
    run = tcp_run(ProbeSpec("TCP", "127.0.0.1", full_queue, count=2, timeout_seconds=1), 0.0)
    elapsed = time.monotonic() - started
    assert run.stats.received == 0 and run.error == "ERR_CONNECTION_TIMEOUT"
    assert run.stats.sent == 2
    assert 1.8 <= elapsed < 4


def test_stop_interrupts_a_slow_connect(full_queue):
    """A connect waiting on an unanswered SYN notices ``stop`` within a slice (0.2 s)."""
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    run = tcp_run(ProbeSpec("TCP", "127.0.0.1", full_queue, count=1, timeout_seconds=30), 0, stop)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, elapsed
    assert run.samples == [None] and run.errors == ["ERR_CONNECTION_TIMEOUT"]


def test_run_is_bounded_by_80_percent_of_interval(full_queue):
    """interval 2 s → the run ends by 1.6 s: the second sample gets 0.6 s, no third one."""
    spec = ProbeSpec("TCP", "127.0.0.1", full_queue, interval_seconds=2, count=5, timeout_seconds=1)
    started = time.monotonic()
    run = tcp_run(spec, 0.0)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 2.0, elapsed
    assert run.stats.sent == 2 and run.stats.received == 0  # only what was really sent
    assert run.errors == ["ERR_CONNECTION_TIMEOUT"] * 2
    assert run.result()["sent"] == 2 and run.result()["packet_loss_rate"] == 100.0


def test_spaced_samples_past_the_deadline_are_not_sent(listener):
    spec = ProbeSpec("TCP", "127.0.0.1", listener, interval_seconds=1, count=10, timeout_seconds=1)
    run = tcp_run(spec, 0.3)  # slots at 0, 0.3, 0.6 fit in 0.8 s; 0.9 does not
    assert run.stats.sent == 3 and run.stats.received == 3


def test_rtt_measured_for_a_fast_connect(listener):
    run = tcp_run(ProbeSpec("TCP", "127.0.0.1", listener, count=3, timeout_seconds=2), 0.0)
    assert all(s is not None and 0 < s < 50 for s in run.samples)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "ERR_NETWORK_UNREACHABLE"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "ERR_NETWORK_UNREACHABLE"),
        (OSError(errno.ETIMEDOUT, "Connection timed out"), "ERR_CONNECTION_TIMEOUT"),
        (OSError(errno.ECONNREFUSED, "Connection refused"), "ERR_CONNECTION_REFUSED"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "ERR_CONNECTION_REFUSED"),
        (TimeoutError(), "ERR_CONNECTION_TIMEOUT"),
        (OSError(errno.EMFILE, "Too many open files"), "ERR_SOCKET"),
    ],
)
def test_classify(exc, code):
    assert classify(exc) == code


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
