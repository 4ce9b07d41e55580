import errno
import socket
import threading
import time
from collections.abc import Callable

import pytest

from beacon.echo import UDPEcho
from beacon.probes import ProbeSpec, RunResult
from beacon.probes.udp import HEADER, _exchange, udp_run

Behaviour = Callable[[int, bytes], list[tuple[float, bytes]]]


class ScriptedEcho:
    """UDP echo whose reply plan per datagram is (delay seconds, payload) pairs."""

    def __init__(self, behave: Behaviour) -> None:
        self.behave = behave
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            for delay, payload in self.behave(n, data):
                if delay <= 0:
                    self.sock.sendto(payload, addr)
                else:
                    threading.Timer(delay, self._send_later, (payload, addr)).start()
            n += 1

    def _send_later(self, payload: bytes, addr) -> None:
        if not self.stop.is_set():
            self.sock.sendto(payload, addr)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(1)
        self.sock.close()


@pytest.fixture
def echo_factory():
    servers = []

    def make(behave: Behaviour) -> ScriptedEcho:
        servers.append(ScriptedEcho(behave))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def spec(port: int, count: int, timeout: float = 0.5) -> ProbeSpec:
    return ProbeSpec("UDP", "127.0.0.1", port, count=count, timeout_seconds=timeout)


def test_against_rfc862_style_echo_server():
    echo = UDPEcho("127.0.0.1", 0).start()
    try:
        run = udp_run(spec(echo.port, 5), 0.02)
    finally:
        echo.stop()
    assert (run.stats.sent, run.stats.received, run.stats.packet_loss_rate) == (5, 5, 0.0)
    assert run.error is None and run.stats.latency_ms < 50


def test_delayed_echo_measures_the_delay(echo_factory):
    echo = echo_factory(lambda n, d: [(0.02, d)])
    run = udp_run(spec(echo.port, 5), 0.05)
    s = run.stats
    assert s.received == 5
    assert s.latency_min_ms >= 20.0 and s.latency_max_ms < 40.0


def test_drop_every_other_reply_exact_loss(echo_factory):
    echo = echo_factory(lambda n, d: [(0, d)] if n % 2 == 0 else [])
    run = udp_run(spec(echo.port, 6, timeout=0.2), 0.02)
    assert (run.stats.sent, run.stats.received) == (6, 3)
    assert run.stats.packet_loss_rate == 50.0
    assert run.error == "ERR_CONNECTION_TIMEOUT"
    assert [s is not None for s in run.samples] == [True, False] * 3


def test_triple_replies_count_once(echo_factory):
    echo = echo_factory(lambda n, d: [(0, d), (0, d), (0.005, d)])
    run = udp_run(spec(echo.port, 4), 0.05)
    assert (run.stats.sent, run.stats.received, run.stats.packet_loss_rate) == (4, 4, 0.0)


def test_alternating_delays_exact_jitter(echo_factory):
    echo = echo_factory(lambda n, d: [(0.01 if n % 2 == 0 else 0.04, d)])
    run = udp_run(spec(echo.port, 6), 0.1)
    s = run.stats
    assert s.received == 6
    # RTTs alternate ~10 ms / ~40 ms: every consecutive difference is ~30 ms.
    assert s.jitter_ms == pytest.approx(30.0, abs=4.0)
    assert s.latency_ms == pytest.approx(25.0, abs=4.0)


def test_late_replies_never_count(echo_factory):
    echo = echo_factory(lambda n, d: [(0.25, d)])
    run = udp_run(spec(echo.port, 4, timeout=0.1), 0.1)
    # Sample i's late reply arrives while sample i+2 is outstanding: ignored.
    assert run.stats.received == 0 and run.stats.packet_loss_rate == 100.0


def test_foreign_and_forged_replies_ignored(echo_factory):
    def behave(n, d):
        magic, run_id, seq, send_ns = HEADER.unpack_from(d)
        other_run = HEADER.pack(magic, b"XXXXXXXX", seq, send_ns)
        wrong_time = HEADER.pack(magic, run_id, seq, send_ns + 1)
        other_seq = HEADER.pack(magic, run_id, seq + 1, send_ns)
        return [(0, b"garbage"), (0, other_run), (0, wrong_time), (0, other_seq)] + (
            [(0.01, d)] if n % 2 else []
        )

    echo = echo_factory(behave)
    run = udp_run(spec(echo.port, 4, timeout=0.1), 0.05)
    assert [s is not None for s in run.samples] == [False, True, False, True]
    assert run.stats.packet_loss_rate == 50.0


def test_unresolvable_and_closed():
    run = udp_run(ProbeSpec("UDP", "nowhere.invalid", 7, count=2, timeout_seconds=0.2), 0.0)
    assert run.error == "ERR_DNS"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    run = udp_run(spec(port, 2, timeout=0.2), 0.01)
    assert run.stats.received == 0 and run.error == "ERR_CONNECTION_REFUSED"


class _HostUnreachableOnRecv(socket.socket):
    """Each datagram that comes in surfaces as EHOSTUNREACH (an ICMP error) instead."""

    def recv(self, bufsize, flags=0):
        super().recv(bufsize, flags)  # BlockingIOError when nothing is queued
        raise OSError(errno.EHOSTUNREACH, "No route to host")


def test_recv_error_is_classified_like_a_send_error():
    echo = UDPEcho("127.0.0.1", 0).start()
    try:
        spec = ProbeSpec("UDP", "127.0.0.1", echo.port, count=2, timeout_seconds=0.3)
        run = RunResult(spec=spec, started_at=time.time())
        with _HostUnreachableOnRecv(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("127.0.0.1", echo.port))
            sock.setblocking(False)
            _exchange(sock, spec, run, 0.0, None)
    finally:
        echo.stop()
    assert run.samples == [None, None]
    assert run.errors == ["ERR_NETWORK_UNREACHABLE"] * 2  # not ERR_CONNECTION_TIMEOUT
