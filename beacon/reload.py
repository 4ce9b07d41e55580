"""Config hot reload for the agent: ``beacon.yaml`` edits and SIGHUP, applied live.

Each edit is compared with the running config (not the startup one). Probes, interval,
TLS, token, server, region and spool bounds apply at once; ``node_id`` and ``state_dir``
need a restart. An invalid edit is refused in one line and the running config kept.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import TYPE_CHECKING

from beacon import config as config_mod
from beacon.config import AgentConfig, BeaconConfigError
from beacon.pulse import PulseClient, make_transport

if TYPE_CHECKING:
    from beacon.agent import Agent

log = logging.getLogger("beacon.agent")
ERROR = logging.ERROR

# Settings whose change needs a new HTTP transport (TLS context, base URL, bearer).
TRANSPORT_SETTINGS = ("pulse_server", "token", "tls_verify", "ca_file")
# Settings the running agent cannot change: its identity and where its files are.
RESTART_SETTINGS = ("node_id", "state_dir")


class ConfigReload:
    """The reload half of ``Agent`` (a mixin: it works on the agent's own attributes)."""

    def _stat(self: Agent) -> tuple[int, int] | None:
        try:
            st = os.stat(self.cfg.path)
            return (st.st_mtime_ns, st.st_size)
        except OSError:
            return None

    def request_reload(self: Agent) -> None:
        """Reload ``beacon.yaml`` at the next loop turn even if it looks unchanged (SIGHUP)."""
        self.reload_requested.set()

    def check_reload(self: Agent, force: bool = False) -> bool:
        """Apply an edited ``beacon.yaml``; an invalid edit is logged and ignored."""
        current = self._stat()
        if current is None or (current == self._mtime and not force):
            return False
        try:
            new = config_mod.load(self.cfg.path)
        except BeaconConfigError as exc:
            if self._stat() != current:
                return False  # still being written (a save in steps): read it next turn
            self._mtime = current
            problems = "; ".join(exc.problems)
            self.say(f"config reload refused, keeping the running config: {problems}", ERROR)
            return False
        if self._stat() != current:
            return False  # changed while read: the next turn reads the finished file
        self._mtime = current
        self.apply_config(new)
        self.say(
            f"config reloaded: {len(self.scheduler.specs)} probe(s) running, "
            f"reporting every {self.report_interval} s"
        )
        return True

    def apply_config(self: Agent, new: AgentConfig) -> None:
        """Make ``new`` the running config; each edit is compared with the running one."""
        old = self.cfg
        for name in RESTART_SETTINGS:
            if getattr(new, name) != getattr(old, name):
                log.warning("%s changed in %s: takes effect after a restart", name, old.path)
        new = dataclasses.replace(new, node_id=old.node_id, state_dir=old.state_dir)
        if any(getattr(new, n) != getattr(old, n) for n in TRANSPORT_SETTINGS):
            self._rebuild_transport(new)
            if new.pulse_server != old.pulse_server:
                self.need_declare, self.etag = True, None
        self.report_interval = new.report_interval_seconds
        self.spool.max_bytes = new.spool_max_bytes
        self.spool.max_age_seconds = new.spool_max_age_seconds
        self.reporter.metadata["region"] = new.region or self._detected_region
        self.cfg = new
        if list(new.probes) != self.local:
            self.local = list(new.probes)
            self.need_declare = True
            self.apply_probes()  # at once, even if Pulse is unreachable
        if self.need_declare:
            self.sync()

    def _rebuild_transport(self: Agent, cfg: AgentConfig) -> None:
        assert cfg.pulse_server
        old = self.transport
        self.transport = make_transport(
            cfg.pulse_server, cfg.token, cfg.tls_verify, cfg.ca_file, self.stop
        )
        self.client = PulseClient(self.transport)
        self.reporter.client = self.client
        old.close()

    def _reload_safely(self: Agent, force: bool) -> None:
        try:
            self.check_reload(force)
        except Exception:  # a reload must never take the agent down
            log.exception("config reload failed unexpectedly; keeping the running config")
