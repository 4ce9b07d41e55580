"""Probe target rules: an IP address or an RFC 1123 host name."""

from __future__ import annotations

import ipaddress
import re

# fullmatch, not `^…$`: `$` also matches before a trailing newline ("exa\n.com").
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# An IPv6 zone ("fe80::1%eth0"): an interface name or index, nothing else.
_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_TARGET_LENGTH = 253


def target_problem(target: str) -> str | None:
    """Why `target` is not a valid probe target, or None when it is."""
    if not isinstance(target, str) or not target:
        return "must be an IPv4/IPv6 address or a host name"
    if len(target) > MAX_TARGET_LENGTH:
        # Also bounds IPv6 scope ids ("fe80::1%<anything>"), which ipaddress accepts at any
        # length, so nothing reaches the varchar(255) column too long.
        return f"longer than {MAX_TARGET_LENGTH} characters"
    try:
        address = ipaddress.ip_address(target)
    except ValueError:
        pass
    else:
        zone = getattr(address, "scope_id", None)
        if zone is not None and not _ZONE.fullmatch(zone):
            return f"invalid IPv6 zone {zone!r}"
        return None
    labels = target.split(".")
    for label in labels:
        if not label:
            return "host name has an empty label"
        if len(label) > 63:
            return "host name label longer than 63 characters"
        if not _LABEL.fullmatch(label):
            return f"invalid host name label {label!r}"
    if labels[-1].isdigit():
        # 256.1.1.1 is neither an address nor a host name.
        return "not a valid IP address, and the last label of a host name cannot be numeric"
    return None


def canonical_target(target: str) -> str:
    """The one spelling of a valid target, so the unique key (node, type, target, port)
    sees `EXAMPLE.com` and `example.com`, or `2001:0db8::0001` and `2001:db8::1`, as the
    same target: host names are case-insensitive (RFC 4343), IPv6 has one compressed
    form (RFC 5952)."""
    try:
        address = ipaddress.ip_address(target)
    except ValueError:
        return target.lower()
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        return f"::ffff:{mapped}"  # RFC 5952 §5 (Python < 3.13 prints ::ffff:c000:201)
    return str(address)
