"""Probe target rules: an IP address or an RFC 1123 host name."""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def target_problem(target: str) -> str | None:
    """Why `target` is not a valid probe target, or None when it is."""
    if not isinstance(target, str) or not target:
        return "must be an IPv4/IPv6 address or a host name"
    try:
        ipaddress.ip_address(target)
        return None
    except ValueError:
        pass
    if len(target) > 253:
        return "host name longer than 253 characters"
    labels = target.split(".")
    for label in labels:
        if not label:
            return "host name has an empty label"
        if len(label) > 63:
            return "host name label longer than 63 characters"
        if not _LABEL.match(label):
            return f"invalid host name label {label!r}"
    if labels[-1].isdigit():
        # 256.1.1.1 is neither an address nor a host name.
        return "not a valid IP address, and the last label of a host name cannot be numeric"
    return None
