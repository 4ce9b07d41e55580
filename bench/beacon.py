"""Beacon benchmarks: footprint with 100 probes, TCP/UDP timing accuracy, SDK memory.

Every figure is compared with a baseline measured in the same run (SPEC §9):
  * agent RSS / CPU with 100 loopback probes vs a bare interpreter    (≤ 50 MB, ≤ 2 % core)
  * TCP RTT: tcp_run vs a bare perf_counter_ns-around-connect loop   (median overhead ≤ 0.1 ms)
  * UDP RTT vs an echo that holds each datagram 20 ms                (median error ≤ 0.5 ms)
  * SDK: RSS added by importing and running a client after requests  (< 5 MB)

Usage: python bench/beacon.py [--seconds 120]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from beacon.echo import TCPEcho, UDPEcho  # noqa: E402
from beacon.probes import ProbeSpec  # noqa: E402
from beacon.probes.tcp import tcp_run  # noqa: E402
from beacon.probes.udp import udp_run  # noqa: E402
from tests.beacon.standin import StandInPulse  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def footprint(seconds: float) -> list[tuple[str, str, str, str]]:
    tcp, udp = TCPEcho("0.0.0.0", 0).start(), UDPEcho("0.0.0.0", 0).start()
    pulse = StandInPulse().start()
    tmp = Path(tempfile.mkdtemp(prefix="beacon-bench-"))
    probes = [
        {
            "type": kind,
            "target": f"127.0.0.{i}",
            "port": port,
            "count": 10,
            "timeout_seconds": 5,
            "interval_seconds": 60,
        }
        for kind, port in (("TCP", tcp.port), ("UDP", udp.port))
        for i in range(1, 51)
    ]
    cfg = tmp / "beacon.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "pulse_server": pulse.url,
                "node_id": pulse.node_id,
                "token": pulse.token,
                "report_interval_seconds": 20,
                "state_dir": str(tmp / "state"),
                "probes": probes,
            }
        )
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "beacon.cli", "start", "-c", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1e6)"])
    warm = min(15.0, seconds / 4)
    time.sleep(warm)
    c0, t0 = cpu_seconds(agent.pid), time.monotonic()
    b0 = cpu_seconds(bare.pid)
    peak = 0.0
    while time.monotonic() - t0 < seconds - warm:
        time.sleep(1)
        peak = max(peak, rss_mb(agent.pid))
    cpu = (cpu_seconds(agent.pid) - c0) / (time.monotonic() - t0) * 100
    bare_cpu = (cpu_seconds(bare.pid) - b0) / (time.monotonic() - t0) * 100
    rss, bare_rss = rss_mb(agent.pid), rss_mb(bare.pid)
    total_cpu = cpu_seconds(agent.pid)
    for p in (agent, bare):
        p.terminate()
        p.wait(15)
    results = len(pulse.results())
    pulse.stop()
    tcp.stop()
    udp.stop()
    return [
        (
            "agent RSS, 100 probes (MB, peak)",
            f"{peak:.1f} (now {rss:.1f})",
            f"{bare_rss:.1f}",
            "≤ 50 MB",
        ),
        (f"agent CPU after {warm:.0f}s warm-up (% core)", f"{cpu:.2f}", f"{bare_cpu:.2f}", "≤ 2 %"),
        (
            "agent CPU incl. start-up (s total)",
            f"{total_cpu:.2f} in {seconds:.0f}s",
            "-",
            f"{results} results",
        ),
    ]


def tcp_overhead(rounds: int = 10, per_round: int = 200) -> tuple[str, str, str, str]:
    srv = TCPEcho("127.0.0.1", 0).start()
    addr = ("127.0.0.1", srv.port)
    linger = struct.pack("ii", 1, 0)
    bare: list[float] = []
    probe: list[float] = []
    spec = ProbeSpec("TCP", "127.0.0.1", srv.port, count=per_round, timeout_seconds=2)
    for _ in range(rounds):  # interleaved, so drift on a noisy machine hits both alike
        for _ in range(per_round):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            s.settimeout(2)
            t0 = time.perf_counter_ns()
            s.connect(addr)
            t1 = time.perf_counter_ns()
            s.close()
            bare.append((t1 - t0) / 1e6)
        probe += [x for x in tcp_run(spec, 0.0).samples if x is not None]
    srv.stop()
    mb, mp = statistics.median(bare), statistics.median(probe)
    return (
        "TCP RTT median, loopback (ms)",
        f"{mp:.4f} (+{mp - mb:.4f})",
        f"{mb:.4f}",
        "overhead ≤ 0.1 ms",
    )


class DelayedEcho:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.held: list[float] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            t0 = time.perf_counter()
            deadline = t0 + self.delay
            time.sleep(max(0.0, self.delay - 0.002))
            while time.perf_counter() < deadline:  # spin the last 2 ms for a precise delay
                pass
            self.sock.sendto(data, addr)
            self.held.append((time.perf_counter() - t0) * 1000)


def udp_error(samples: int = 100) -> tuple[str, str, str, str]:
    echo = DelayedEcho(0.020)
    run = udp_run(ProbeSpec("UDP", "127.0.0.1", echo.port, count=samples, timeout_seconds=1), 0.03)
    echo.stop.set()
    rtts = [x for x in run.samples if x is not None]
    held = statistics.median(echo.held)
    err = statistics.median(rtts) - held
    return (
        "UDP RTT median vs 20 ms delayed echo (ms)",
        f"{statistics.median(rtts):.3f} (error {err:+.3f}, loss {run.stats.packet_loss_rate}%)",
        f"{held:.3f} held",
        "error ≤ 0.5 ms",
    )


SDK_CHILD = """
import gc, os, sys, time
PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    gc.collect()
    return int(open("/proc/self/statm").read().split()[1]) * PAGE / 2**20
import requests
base = rss()
if sys.argv[1] == "sdk":
    from beacon.sdk import HeartbeatClient
    imported = rss()
    c = HeartbeatClient(server_url=sys.argv[2], app="bench", profile="p", token=sys.argv[3],
                        interval=0.1)
    c.start(); time.sleep(2); c.stop()
else:
    imported = rss()
    s = requests.Session()
    for _ in range(20):
        s.post(sys.argv[2] + "/api/drift/heartbeat/bench/p", json={}, timeout=5,
               headers={"Authorization": "Bearer " + sys.argv[3]}); time.sleep(0.1)
print(base, imported, rss())
"""


def sdk_rss() -> list[tuple[str, str, str, str]]:
    pulse = StandInPulse().start()
    out = {}
    for mode in ("sdk", "requests"):
        proc = subprocess.run(
            [sys.executable, "-c", SDK_CHILD, mode, pulse.url, pulse.token],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        out[mode] = [float(x) for x in proc.stdout.split()]
    beats = len(pulse.drift_bodies)
    pulse.stop()
    base, imported, running = out["sdk"]
    rbase, _, rrunning = out["requests"]
    return [
        (
            "SDK import over `import requests` (MB)",
            f"+{imported - base:.2f}",
            f"{base:.1f} base",
            "< 5 MB",
        ),
        (
            "SDK import + running client (MB)",
            f"+{running - base:.2f}",
            f"+{rrunning - rbase:.2f} bare requests loop",
            f"< 5 MB ({beats} beats)",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="agent footprint run")
    args = parser.parse_args()
    rows = [("measure", "beacon", "baseline (same run)", "target")]
    rows.append(tcp_overhead())
    rows.append(udp_error())
    rows += sdk_rss()
    rows += footprint(args.seconds)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for n, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
