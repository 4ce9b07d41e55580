"""Beacon: the Pulse probe agent and the Heartbeat SDK (``beacon.sdk``).

Kept import-light on purpose: ``import beacon.sdk`` must not pull in yaml, click or the
agent, so an application embedding the SDK pays only for what it uses.
"""

__version__ = "0.1.0"
