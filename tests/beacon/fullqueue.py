"""A TCP listener whose accept queue is full, so further SYNs go unanswered.

This kernel has no ``tc netem``; ``listen(0)`` plus connections that are never accepted
is how the tests make a connect hang until its timeout.
"""

from __future__ import annotations

import socket

import pytest


class FullQueue:
    def __init__(self) -> None:
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(0)
        self.port = self.srv.getsockname()[1]
        self.fillers: list[socket.socket] = []
        for _ in range(8):  # stop as soon as a connect does not complete
            c = socket.socket()
            c.settimeout(0.3)
            try:
                c.connect(("127.0.0.1", self.port))
                self.fillers.append(c)
            except TimeoutError:
                c.close()
                return
        self.close()
        pytest.fail("the accept queue never filled on this kernel")

    def close(self) -> None:
        for c in self.fillers:
            c.close()
        self.srv.close()
