"""``beacon echo-server``: an RFC 862 style reflector (UDP, optionally TCP).

Datagrams and stream bytes are returned verbatim, so the UDP probe works the same against
this server and any standard echo service.
"""

from __future__ import annotations

import logging
import socket
import threading

log = logging.getLogger("beacon.echo")


class UDPEcho:
    """Reflect every datagram to its sender, from one daemon thread."""

    def __init__(self, host: str = "0.0.0.0", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.5)  # lets the loop notice stop()
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="udp-echo", daemon=True)

    def start(self) -> UDPEcho:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
                self.sock.sendto(data, addr)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class TCPEcho:
    """Accept connections and echo what they send, a daemon thread per connection."""

    def __init__(self, host: str = "0.0.0.0", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.sock.settimeout(0.5)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tcp-echo", daemon=True)

    def start(self) -> TCPEcho:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def serve(udp_port: int, tcp_port: int | None, host: str, stop: threading.Event) -> None:
    """Run the reflectors until ``stop`` is set."""
    servers: list[UDPEcho | TCPEcho] = [UDPEcho(host, udp_port).start()]
    if tcp_port is not None:
        servers.append(TCPEcho(host, tcp_port).start())
    try:
        stop.wait()
    finally:
        for server in servers:
            server.stop()
