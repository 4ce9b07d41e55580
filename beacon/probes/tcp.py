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
import socket
import struct
import threading
import time

from beacon.probes import (
    ERR_CONNECTION_REFUSED,
    ERR_CONNECTION_TIMEOUT,
    ERR_DNS,
    ERR_NETWORK_UNREACHABLE,
    ERR_SOCKET,
    Pacer,
    ProbeSpec,
    RunResult,
)

_LINGER_RST = struct.pack("ii", 1, 0)
_UNREACHABLE = {
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.EADDRNOTAVAIL,
    errno.ENETDOWN,
    errno.EHOSTDOWN,
}


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
    family: int, sockaddr: tuple, timeout_seconds: float
) -> tuple[float | None, str | None]:
    """One sample: (RTT in ms, None) or (None, error code)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        sock.settimeout(timeout_seconds)
        t0 = time.perf_counter_ns()
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            return None, classify(exc)
        t1 = time.perf_counter_ns()
        return (t1 - t0) / 1e6, None
    finally:
        sock.close()


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
    spec: ProbeSpec, spacing_seconds: float = 1.0, stop: threading.Event | None = None
) -> RunResult:
    """``spec.count`` connects spaced ``spacing_seconds`` apart (a slow one delays the next)."""
    run, resolved = begin_run(spec, socket.SOCK_STREAM)
    if resolved is None:
        return run
    family, sockaddr = resolved
    pacer = Pacer(spacing_seconds, stop)
    for i in range(spec.count):
        if not pacer.wait_until(i):
            break
        rtt, err = connect_once(family, sockaddr, spec.timeout_seconds)
        run.samples.append(rtt)
        if err:
            run.errors.append(err)
    return run
