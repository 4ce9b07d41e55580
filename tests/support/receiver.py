"""A local HTTP receiver for notification tests: records every POST, answers as scripted.

    with Receiver() as rx:
        rx.script("/flaky", [500, 500, 500])   # then 200
        rx.hang("/dead", seconds=8)            # answers nothing for 8 s
        ... rx.url("/flaky") ... rx.bodies("/flaky")
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict] = []
        self._scripts: dict[str, list[int]] = {}
        self._hangs: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                path = self.path.split("?")[0]
                hang = receiver._hangs.get(path)
                if hang:
                    receiver._stop.wait(hang)  # bounded; ends at close()
                    return
                with receiver._lock:
                    script = receiver._scripts.get(path) or []
                    status = script.pop(0) if script else 200
                    try:
                        body = json.loads(raw or b"null")
                    except ValueError:
                        body = raw.decode(errors="replace")
                    receiver.received.append({"path": path, "status": status, "body": body,
                                              "at": time.monotonic(),
                                              "headers": dict(self.headers)})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name="test-receiver", daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def script(self, path: str, statuses: list[int]) -> None:
        self._scripts[path] = list(statuses)

    def hang(self, path: str, seconds: float) -> None:
        self._hangs[path] = seconds

    def hits(self, path: str | None = None) -> list[dict]:
        with self._lock:
            return [r for r in self.received if path is None or r["path"] == path]

    def bodies(self, path: str, status: int = 200) -> list:
        """The bodies answered `status` (200: those delivered)."""
        return [r["body"] for r in self.hits(path) if r["status"] == status]
