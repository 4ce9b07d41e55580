"""TCP "ping": time the three-way handshake of ``connect()``.

Only ``connect()`` is inside the timed section: the name is resolved once per run, before
the first sample (and timed apart as ``resolve_ms``), and the socket is created and
configured before the clock starts.

Closing: we set SO_LINGER to (on, 0) so ``close()`` sends a RST instead of a FIN. A probe
never sends data, so there is nothing for a graceful shutdown to protect, and it keeps
the agent's host free of TIME_WAIT sockets (100 probes × 10 samples a minute to the same
few targets would otherwise hold thousands of them and eat into the ephemeral port
range). The target sees a connection that is reset right after being established, which
is how tcping-style tools behave.
"""

from __future__ import annotations

import errno
import math
import os
import select
import socket
import struct
import threading
import time

from beacon.probes.base import (
    ERR_CONNECTION_REFUSED,
    ERR_CONNECTION_TIMEOUT,
    ERR_DNS,
    ERR_NETWORK_UNREACHABLE,
    ERR_SOCKET,
    Pacer,
    ProbeSpec,
    RunResult,
    SampleCallback,
)

_LINGER_RST = struct.pack("ii", 1, 0)
_UNREACHABLE = {
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.EADDRNOTAVAIL,
    errno.ENETDOWN,
    errno.EHOSTDOWN,
}


STOP_SLICE_SECONDS = 0.2  # longest a connect waits before looking at the stop event
RUN_BUDGET_FRACTION = 0.8  # a run must be over within this share of the probe's interval
_WRITABLE = select.POLLOUT | select.POLLERR | select.POLLHUP
_IN_PROGRESS = {errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK, errno.EAGAIN}


def resolve(target: str, port: int, sock_type: int) -> tuple[int, tuple]:
    """First address of ``target`` (family, sockaddr); raises socket.gaierror."""
    infos = socket.getaddrinfo(target, port, type=sock_type)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def classify(exc: OSError) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return ERR_CONNECTION_TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return ERR_CONNECTION_REFUSED
    if exc.errno in _UNREACHABLE:
        return ERR_NETWORK_UNREACHABLE
    if exc.errno == errno.ETIMEDOUT:
        return ERR_CONNECTION_TIMEOUT
    return ERR_SOCKET


def connect_once(
    family: int,
    sockaddr: tuple,
    timeout_seconds: float,
    stop: threading.Event | None = None,
) -> tuple[float | None, str | None]:
    """One sample: (RTT in ms, None) or (None, error code).

    The connect is non-blocking and awaited with ``poll`` in slices of at most
    ``STOP_SLICE_SECONDS``, checking ``stop`` between slices, so a shutdown never waits
    for a slow SYN (a blocking ``connect()`` would hold its thread for the whole timeout).
    The RTT runs from the call to ``connect_ex`` to the socket becoming writable; the
    outcome is then read from ``SO_ERROR``. A sample cut short by ``stop`` is a timeout
    (the scheduler discards a run cut short by shutdown anyway).
    """
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        sock.setblocking(False)
        # poll, not select: select() cannot watch descriptors above FD_SETSIZE (1024).
        poller = select.poll()
        poller.register(sock, _WRITABLE)
        t0 = time.perf_counter_ns()
        rc = sock.connect_ex(sockaddr)
        if rc == 0:  # completed at once (loopback can)
            return (time.perf_counter_ns() - t0) / 1e6, None
        if rc not in _IN_PROGRESS:
            return None, classify(OSError(rc, os.strerror(rc)))
        deadline_ns = t0 + int(timeout_seconds * 1e9)
        while True:
            events = poller.poll(_slice_ms(deadline_ns))
            t1 = time.perf_counter_ns()
            if events:
                break
            if t1 >= deadline_ns or (stop is not None and stop.is_set()):
                return None, ERR_CONNECTION_TIMEOUT
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            return None, classify(OSError(err, os.strerror(err)))
        return (t1 - t0) / 1e6, None
    except OSError as exc:
        return None, classify(exc)
    finally:
        sock.close()


def _slice_ms(deadline_ns: int) -> int:
    """Milliseconds to wait in one poll: what is left, at most one stop-check slice."""
    left_ms = (deadline_ns - time.perf_counter_ns()) / 1e6
    return max(0, min(int(STOP_SLICE_SECONDS * 1000), math.ceil(left_ms)))


def begin_run(spec: ProbeSpec, socktype: int) -> tuple[RunResult, tuple | None]:
    """A new run with its target resolved once, timed apart from the RTTs.

    Returns (run, (family, sockaddr)); on a resolution failure (run with every sample lost
    to ERR_DNS, None).
    """
    run = RunResult(spec=spec, started_at=time.time())
    t0 = time.perf_counter_ns()
    try:
        family, sockaddr = resolve(spec.target, spec.port, socktype)
    except (OSError, UnicodeError):
        run.samples = [None] * spec.count
        run.errors = [ERR_DNS] * spec.count
        return run, None
    run.resolve_ms = (time.perf_counter_ns() - t0) / 1e6
    run.address = str(sockaddr[0])
    return run, (family, sockaddr)


def tcp_run(
    spec: ProbeSpec,
    spacing_seconds: float = 1.0,
    stop: threading.Event | None = None,
    on_sample: SampleCallback | None = None,
) -> RunResult:
    """``spec.count`` connects spaced ``spacing_seconds`` apart (a slow one delays the next).

    The run is bounded: it must be over ``RUN_BUDGET_FRACTION`` (80 %) of the interval
    after it started, so it can never run into the next run of the same probe (the
    scheduler would otherwise start the next one late). Each sample's timeout is
    ``min(timeout_seconds, run_deadline - now)``; a sample whose turn comes after the
    deadline is not attempted and not counted as sent, so ``sent`` (the number of
    samples) is what was really sent, and the loss rate is over those only.
    """
    run_deadline = time.monotonic() + RUN_BUDGET_FRACTION * spec.interval_seconds
    run, resolved = begin_run(spec, socket.SOCK_STREAM)
    if resolved is None:
        return run
    family, sockaddr = resolved
    pacer = Pacer(spacing_seconds, stop)
    for i in range(spec.count):
        if not pacer.wait_until(i):
            break
        budget = min(float(spec.timeout_seconds), run_deadline - time.monotonic())
        if budget <= 0:
            break  # out of time: the remaining samples are not sent
        rtt, err = connect_once(family, sockaddr, budget, stop)
        run.samples.append(rtt)
        if err:
            run.errors.append(err)
        if on_sample is not None and not (err and pacer.stop.is_set()):
            on_sample(run, i, rtt, err)
    return run
