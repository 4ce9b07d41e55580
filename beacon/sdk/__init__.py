"""Heartbeat SDK: report an application's config version to Pulse and learn about drift.

from beacon.sdk import HeartbeatClient
client = (HeartbeatClient.builder().server_url("http://pulse:5000").app("payments")
          .profile("production").token("…").build())
client.set_config_version("v2.3.4")
client.start()
"""

from typing import TYPE_CHECKING, Any

from beacon.sdk.client import (
    HeartbeatClient,
    HeartbeatClientBuilder,
    HeartbeatOptions,
    HeartbeatResponse,
    generate_instance_id,
)
from beacon.sdk.errors import ConfigError, NetworkError, ParseError, ReporterError, ServerError
from beacon.sdk.metadata import InstanceMetadata

if TYPE_CHECKING:
    from beacon.sdk.aio import AsyncHeartbeatClient


def __getattr__(name: str) -> Any:
    # asyncio costs ~1.5 MB of RSS; load the async twin only for those who ask for it.
    if name == "AsyncHeartbeatClient":
        from beacon.sdk.aio import AsyncHeartbeatClient

        return AsyncHeartbeatClient
    raise AttributeError(f"module 'beacon.sdk' has no attribute {name!r}")


__all__ = [
    "AsyncHeartbeatClient",
    "ConfigError",
    "HeartbeatClient",
    "HeartbeatClientBuilder",
    "HeartbeatOptions",
    "HeartbeatResponse",
    "InstanceMetadata",
    "NetworkError",
    "ParseError",
    "ReporterError",
    "ServerError",
    "generate_instance_id",
]
