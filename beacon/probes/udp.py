"""UDP "ping" against an echo service (ours or any RFC 862 echo).

Each datagram carries a magic, a per-run random id, a sequence number and the send time;
an echo returns it verbatim. A reply counts only when it carries this run's id, a
sequence number still outstanding, and the exact send time we recorded for it, and
arrives before that sample's deadline. So duplicates (sequence already answered), late
replies (sample already declared lost) and foreign datagrams (other run, garbage, another
sender — the socket is connected, so the kernel filters other sources) never count.

One thread does both sending and receiving with ``select``: samples go out on their
schedule while earlier ones are still in flight.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time

from beacon.probes.base import (
    ERR_CONNECTION_TIMEOUT,
    ERR_NETWORK_UNREACHABLE,
    Pacer,
    ProbeSpec,
    RunResult,
    SampleCallback,
)
from beacon.probes.tcp import begin_run, classify

MAGIC = b"BCN1"
HEADER = struct.Struct("!4s8sIQ")  # magic, run id, sequence, send time (perf_counter_ns)
PAYLOAD_BYTES = 32  # header (24) + padding, small enough for any MTU


def encode(run_id: bytes, seq: int, send_ns: int) -> bytes:
    return HEADER.pack(MAGIC, run_id, seq, send_ns).ljust(PAYLOAD_BYTES, b"\0")


def decode(data: bytes) -> tuple[bytes, int, int] | None:
    if len(data) < HEADER.size:
        return None
    magic, run_id, seq, send_ns = HEADER.unpack_from(data)
    return (run_id, seq, send_ns) if magic == MAGIC else None


def udp_run(
    spec: ProbeSpec,
    spacing_seconds: float = 1.0,
    stop: threading.Event | None = None,
    on_sample: SampleCallback | None = None,
) -> RunResult:
    """``spec.count`` datagrams spaced ``spacing_seconds`` apart, each awaited ``timeout``."""
    run, resolved = begin_run(spec, socket.SOCK_DGRAM)
    if resolved is None:
        return run
    family, sockaddr = resolved
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            code = classify(exc)
            code = code if code != "ERR_SOCKET" else ERR_NETWORK_UNREACHABLE
            run.samples = [None] * spec.count
            run.errors = [code] * spec.count
            if on_sample is not None:
                for seq in range(spec.count):
                    on_sample(run, seq, None, code)
            return run
        sock.setblocking(False)
        _exchange(sock, spec, run, spacing_seconds, stop, on_sample)
    return run


def _exchange(
    sock: socket.socket,
    spec: ProbeSpec,
    run: RunResult,
    spacing: float,
    stop: threading.Event | None,
    on_sample: SampleCallback | None = None,
) -> None:
    def done(seq: int) -> None:
        if on_sample is not None:
            on_sample(run, seq, rtts[seq], errors[seq])

    run_id = os.urandom(8)
    timeout_ns = int(spec.timeout_seconds * 1e9)
    pacer = Pacer(spacing, stop)
    rtts: list[float | None] = [None] * spec.count
    errors: list[str | None] = [None] * spec.count
    outstanding: dict[int, int] = {}  # seq -> send time (perf_counter_ns)
    next_seq = 0
    # The last error the socket reported (ICMP port/host/network unreachable surface on
    # send or on recv alike): samples that then expire are lost to it, not to a timeout.
    socket_error: str | None = None
    sent = 0
    while True:
        if pacer.stop.is_set():
            break
        now_ns = time.perf_counter_ns()
        # Expire samples whose deadline passed: they are lost, any later reply is ignored.
        for seq, sent_ns in list(outstanding.items()):
            if now_ns - sent_ns >= timeout_ns:
                del outstanding[seq]
                errors[seq] = socket_error or ERR_CONNECTION_TIMEOUT
                done(seq)
        if next_seq < spec.count and time.monotonic() >= pacer.start + next_seq * spacing:
            send_ns = time.perf_counter_ns()
            try:
                sock.send(encode(run_id, next_seq, send_ns))
                outstanding[next_seq] = send_ns
            except OSError as exc:
                socket_error = classify(exc)
                errors[next_seq] = socket_error
                done(next_seq)
            next_seq += 1
            sent = next_seq
            continue
        if next_seq >= spec.count and not outstanding:
            break
        # Sleep until the next send slot, the earliest deadline, or a reply.
        wake_ns = [sent_ns + timeout_ns for sent_ns in outstanding.values()]
        if next_seq < spec.count:
            slot = pacer.start + next_seq * spacing
            wake_ns.append(now_ns + int(max(0.0, slot - time.monotonic()) * 1e9))
        wait = max(0.0, (min(wake_ns) - time.perf_counter_ns()) / 1e9)
        readable, _, _ = select.select([sock], [], [], min(wait, 0.25))
        if readable:
            answered: list[int] = []
            error = _drain(sock, run_id, outstanding, rtts, timeout_ns, answered)
            socket_error = error or socket_error
            for seq in answered:
                done(seq)
    run.samples = rtts[:sent]
    run.errors = [e for e in errors[:sent] if e is not None]
    # A sample neither answered nor expired (stopped mid-run) counts as lost by timeout.
    missing = sum(1 for r in run.samples if r is None) - len(run.errors)
    run.errors.extend([ERR_CONNECTION_TIMEOUT] * max(0, missing))


def _drain(
    sock: socket.socket,
    run_id: bytes,
    outstanding: dict[int, int],
    rtts: list[float | None],
    timeout_ns: int,
    answered: list[int] | None = None,
) -> str | None:
    """Read every queued datagram; the sequence numbers answered go to ``answered``.

    Returns the code of a socket error that surfaced, classified as a send error would
    be (ICMP port unreachable: refused; host or network unreachable: unreachable), or
    None.
    """
    while True:
        try:
            data = sock.recv(2048)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            return classify(exc)
        recv_ns = time.perf_counter_ns()
        decoded = decode(data)
        if decoded is None:
            continue  # foreign datagram
        rid, seq, send_ns = decoded
        if rid != run_id or outstanding.get(seq) != send_ns:
            continue  # another run's, a duplicate, a late one, or forged
        if recv_ns - send_ns > timeout_ns:
            continue  # arrived after its deadline
        del outstanding[seq]
        rtts[seq] = (recv_ns - send_ns) / 1e6
        if answered is not None:
            answered.append(seq)
