"""AsyncHeartbeatClient: the asyncio twin of HeartbeatClient.

The HTTP work is the same blocking core run in the default executor
(``asyncio.to_thread``), so the event loop never blocks and no extra HTTP library is
needed; waits between heartbeats are plain asyncio waits that ``stop()`` cuts short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from beacon.sdk.client import (
    HeartbeatClientBuilder,
    HeartbeatCore,
    HeartbeatOptions,
    HeartbeatResponse,
)
from beacon.sdk.errors import ReporterError

log = logging.getLogger("beacon.sdk")


class AsyncHeartbeatClient:
    """``await start()`` / ``await report_now()`` / ``await stop()``; options as HeartbeatClient."""

    def __init__(
        self,
        server_url: str | None = None,
        app: str | None = None,
        profile: str | None = None,
        **options: Any,
    ) -> None:
        opts = HeartbeatOptions.from_keywords(server_url, app, profile, options)
        # Set on stop(): interrupts a retry backoff of the reporting task running in the
        # executor thread (one event per start; report_now() never uses it).
        self._thread_stop = threading.Event()
        self._core = HeartbeatCore(opts, threading.Event())
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    @staticmethod
    def builder() -> _AsyncBuilder:
        """A fluent builder whose ``build()`` returns an AsyncHeartbeatClient."""
        return _AsyncBuilder()

    @property
    def instance_id(self) -> str:
        return self._core.opts.instance_id

    @property
    def config_version(self) -> str:
        """``"unknown"`` until set."""
        return self._core.config_version

    @property
    def is_running(self) -> bool:
        return self._task is not None and not self._task.done()

    def set_config_version(self, version: str) -> None:
        self._core.set_config_version(version)

    async def report_now(self) -> HeartbeatResponse:
        """Send one heartbeat now; raises ``ReporterError`` subclasses on failure."""
        return await asyncio.to_thread(self._core.send)

    async def start(self) -> None:
        """Schedule the reporting task (first heartbeat immediately)."""
        if self.is_running:
            return
        self._thread_stop = threading.Event()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(
            self._run(self._thread_stop), name=f"heartbeat-{self._core.opts.app}"
        )

    async def stop(self) -> None:
        """Stop the task and wait for it; prompt even mid-wait."""
        self._thread_stop.set()
        if self._wake is not None:
            self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, thread_stop: threading.Event) -> None:
        assert self._wake is not None
        while not self._wake.is_set():
            try:
                await asyncio.to_thread(self._core.send, thread_stop)
            except ReporterError as exc:
                log.warning("heartbeat not delivered: %s", exc)
            except Exception:
                log.exception("heartbeat failed unexpectedly")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._core.opts.interval)


class _AsyncBuilder(HeartbeatClientBuilder):
    def build(self) -> AsyncHeartbeatClient:  # type: ignore[override]
        return AsyncHeartbeatClient(**self._opts)
