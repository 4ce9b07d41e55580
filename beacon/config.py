"""``beacon.yaml``: load, validate, and report every problem at once.

Each problem is one line ``<file>: <field path>: <rule>, got <value>``, e.g.
``beacon.yaml: probes[1].port: must be 1-65535, got 70000``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from beacon.probes import ProbeSpec

TYPE_ALIASES = {"tcp": "TCP", "udp": "UDP", "tcp_ping": "TCP", "udp_ping": "UDP"}
TOP_KEYS = {
    "pulse_server",
    "node_id",
    "node_name",
    "token",
    "token_file",
    "report_interval_seconds",
    "tls_verify",
    "ca_file",
    "state_dir",
    "spool_dir",
    "region",
    "probes",
    "spool_max_bytes",
    "spool_max_age_seconds",
}
PROBE_KEYS = {
    "type",
    "target",
    "port",
    "timeout_seconds",
    "interval_seconds",
    "count",
    "name",
    "enabled",
}
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class BeaconConfigError(Exception):
    """One or more problems in a config file; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class AgentConfig:
    """A validated ``beacon.yaml``."""

    path: Path
    pulse_server: str | None
    node_id: str | None
    node_name: str | None
    token: str | None
    report_interval_seconds: int
    tls_verify: bool
    ca_file: str | None
    state_dir: Path
    region: str | None
    probes: tuple[ProbeSpec, ...]
    spool_max_bytes: int = 100 * 1024 * 1024
    spool_max_age_seconds: int = 7 * 24 * 3600
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/beacon``, else ``~/.local/state/beacon``."""
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "beacon"


def is_valid_target(value: str) -> bool:
    """An IPv4/IPv6 address or an RFC 1123 host name (last label not all-numeric)."""
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


class _Checker:
    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[str] = []

    def fail(self, where: str, rule: str, value: Any = ...) -> None:
        got = "" if value is ... else f", got {_show(value)}"
        self.problems.append(f"{self.name}: {where}: {rule}{got}")

    def integer(
        self, data: dict, key: str, where: str, low: int, high: int, default: int | None
    ) -> int | None:
        if key not in data or data[key] is None:
            if default is None:
                self.fail(where, "required")
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, "must be an integer", value)
            return default
        if not low <= value <= high:
            self.fail(where, f"must be {low}-{high}", value)
            return default
        return value

    def string(self, data: dict, key: str, where: str, required: bool = False) -> str | None:
        value = data.get(key)
        if value is None or value == "":
            if required:
                self.fail(where, "required")
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            self.fail(where, "must be a string", value)
            return None
        return str(value)


def _probe(chk: _Checker, index: int, item: Any) -> ProbeSpec | None:
    where = f"probes[{index}]"
    if not isinstance(item, dict):
        chk.fail(where, "must be a mapping", item)
        return None
    for key in sorted(set(item) - PROBE_KEYS, key=str):
        chk.fail(f"{where}.{key}", "unknown field")
    before = len(chk.problems)
    ptype = None
    raw_type = item.get("type")
    if raw_type is None:
        chk.fail(f"{where}.type", "required")
    elif not isinstance(raw_type, str) or raw_type.lower() not in TYPE_ALIASES:
        chk.fail(f"{where}.type", "must be one of TCP, UDP, tcp_ping, udp_ping", raw_type)
    else:
        ptype = TYPE_ALIASES[raw_type.lower()]
    target = chk.string(item, "target", f"{where}.target", required=True)
    if target is not None and not is_valid_target(target):
        chk.fail(f"{where}.target", "must be an IP address or a valid host name", target)
    port = chk.integer(item, "port", f"{where}.port", 1, 65535, None)
    timeout = chk.integer(item, "timeout_seconds", f"{where}.timeout_seconds", 1, 30, 5)
    interval = chk.integer(item, "interval_seconds", f"{where}.interval_seconds", 60, 300, 60)
    count = chk.integer(item, "count", f"{where}.count", 1, 100, 10)
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        chk.fail(f"{where}.enabled", "must be true or false", enabled)
    name = chk.string(item, "name", f"{where}.name")
    if len(chk.problems) > before:
        return None
    assert ptype and target and port and timeout and interval and count
    return ProbeSpec(ptype, target, port, interval, count, timeout, enabled=enabled, name=name)


def parse(data: Any, name: str, base_dir: Path, require_pulse: bool = True) -> AgentConfig:
    """Validate an already loaded document; raises BeaconConfigError listing all problems."""
    chk = _Checker(name)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BeaconConfigError(
            [f"{name}: must be a mapping of settings, got {type(data).__name__}"]
        )
    for key in sorted(set(data) - TOP_KEYS, key=str):
        chk.fail(str(key), "unknown field")
    server = chk.string(data, "pulse_server", "pulse_server", required=require_pulse)
    if server is not None:
        parsed = urlparse(server)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            chk.fail("pulse_server", "must be an http:// or https:// URL", server)
    node_id = chk.string(data, "node_id", "node_id", required=require_pulse)
    token = chk.string(data, "token", "token")
    token_file = chk.string(data, "token_file", "token_file")
    if token and token_file:
        chk.fail("token_file", "set token or token_file, not both")
    elif token_file:
        path = (base_dir / token_file).expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip() or None
            if token is None:
                chk.fail("token_file", "file is empty", token_file)
        except OSError as exc:
            chk.fail("token_file", f"cannot read ({exc.strerror})", token_file)
    elif require_pulse and not token:
        chk.fail("token", "required (or token_file)")
    interval = chk.integer(data, "report_interval_seconds", "report_interval_seconds", 1, 3600, 60)
    tls_verify = data.get("tls_verify", True)
    if not isinstance(tls_verify, bool):
        chk.fail("tls_verify", "must be true or false", tls_verify)
    ca_file = chk.string(data, "ca_file", "ca_file")
    if ca_file is not None:
        ca_path = (base_dir / ca_file).expanduser()
        if not ca_path.is_file():
            chk.fail("ca_file", "no such file", ca_file)
        ca_file = str(ca_path)
    state = chk.string(data, "state_dir", "state_dir")
    spool = chk.string(data, "spool_dir", "spool_dir")
    if state and spool and state != spool:
        chk.fail("spool_dir", "is an alias of state_dir; set one of them", spool)
    state_dir = (
        (base_dir / (state or spool)).expanduser() if (state or spool) else default_state_dir()
    )
    spool_bytes = chk.integer(data, "spool_max_bytes", "spool_max_bytes", 4096, 2**40, 100 * 2**20)
    spool_age = chk.integer(
        data, "spool_max_age_seconds", "spool_max_age_seconds", 60, 2**31, 7 * 86400
    )
    probes_raw = data.get("probes") or []
    probes: list[ProbeSpec] = []
    if not isinstance(probes_raw, list):
        chk.fail("probes", "must be a list", probes_raw)
        probes_raw = []
    seen: dict[tuple, int] = {}
    for index, item in enumerate(probes_raw):
        spec = _probe(chk, index, item)
        if spec is None:
            continue
        if spec.key in seen:
            chk.fail(f"probes[{index}]", f"duplicate of probes[{seen[spec.key]}] ({spec.label})")
            continue
        seen[spec.key] = index
        probes.append(spec)
    node_name = chk.string(data, "node_name", "node_name")
    region = chk.string(data, "region", "region")
    if chk.problems:
        raise BeaconConfigError(chk.problems)
    return AgentConfig(
        path=base_dir / Path(name).name,
        pulse_server=server.rstrip("/") if server else None,
        node_id=node_id,
        node_name=node_name,
        token=token,
        report_interval_seconds=interval or 60,
        tls_verify=bool(tls_verify),
        ca_file=ca_file,
        state_dir=state_dir,
        region=region,
        probes=tuple(probes),
        spool_max_bytes=spool_bytes or 100 * 2**20,
        spool_max_age_seconds=spool_age or 7 * 86400,
        raw=data,
    )


def load(path: str | Path, require_pulse: bool = True) -> AgentConfig:
    """Read and validate ``path``; raises BeaconConfigError with one line per problem."""
    name = str(path)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BeaconConfigError([f"{name}: no such file"]) from None
    except OSError as exc:
        raise BeaconConfigError([f"{name}: cannot read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BeaconConfigError([f"{name}: invalid YAML: {where}{problem}"]) from None
    return parse(data, name, p.resolve().parent, require_pulse)
