"""Instance metadata detection: hostname, IP, region, Kubernetes pod and namespace."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class InstanceMetadata:
    """What the SDK reports about the process it runs in."""

    hostname: str | None = None
    ip_address: str | None = None
    region: str | None = None
    kubernetes_pod: str | None = None
    kubernetes_namespace: str | None = None
    app_version: str | None = None
    custom: dict[str, str] = field(default_factory=dict)


def detect_hostname() -> str | None:
    try:
        return socket.gethostname() or None
    except OSError:
        return None


def detect_ip_address() -> str | None:
    """The local address a UDP socket would use towards the internet.

    ``connect()`` on a UDP socket only picks a route and a source address; no packet is
    sent, so this works offline and behind firewalls.
    """
    for family, probe_addr in (
        (socket.AF_INET, ("192.0.2.1", 9)),
        (socket.AF_INET6, ("2001:db8::1", 9)),
    ):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect(probe_addr)
                return str(sock.getsockname()[0])
        except OSError:
            continue
    return None


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


def detect_kubernetes_namespace(
    env: Mapping[str, str], sa_file: str = SERVICE_ACCOUNT_NAMESPACE
) -> str | None:
    value = _first(env, "KUBERNETES_NAMESPACE", "POD_NAMESPACE")
    if value:
        return value
    try:
        with open(sa_file, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def collect(
    custom: Mapping[str, str] | None = None,
    auto_detect: bool = True,
    env: Mapping[str, str] | None = None,
) -> InstanceMetadata:
    """Collect metadata once; ``env`` defaults to ``os.environ`` (injectable for tests)."""
    custom = dict(custom or {})
    if not auto_detect:
        return InstanceMetadata(custom=custom)
    env = os.environ if env is None else env
    pod = _first(env, "KUBERNETES_POD_NAME", "POD_NAME")
    if not pod and env.get("KUBERNETES_SERVICE_HOST"):
        # Kubernetes sets HOSTNAME to the pod name.
        pod = env.get("HOSTNAME") or None
    return InstanceMetadata(
        hostname=detect_hostname(),
        ip_address=detect_ip_address(),
        region=_first(env, "AWS_REGION", "CLOUD_REGION", "REGION"),
        kubernetes_pod=pod,
        kubernetes_namespace=detect_kubernetes_namespace(env),
        app_version=_first(env, "APP_VERSION"),
        custom=custom,
    )
