"""``beacon register`` (enrol this host as a node) and ``beacon echo-server``."""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path
from typing import Any

import click
import yaml

from beacon import __version__, state
from beacon.cli.agentctl import stop_on_signals
from beacon.cli.common import CONFIG_OPTION


@click.command()
@CONFIG_OPTION
@click.option("--server", required=True, help="Pulse URL, e.g. https://pulse.example.com")
@click.option("--enroll-token", required=True, help="One-time enrollment token from Pulse.")
@click.option("--name", required=True, help="This node's name.")
@click.option("--region", default=None, help="Region label sent with the registration.")
@click.option("--ca-file", default=None, type=click.Path(exists=True, dir_okay=False))
def register(
    config_path: str,
    server: str,
    enroll_token: str,
    name: str,
    region: str | None,
    ca_file: str | None,
) -> None:
    """Register this host as a node and write node_id/token into the config file."""
    from beacon.pulse import register as do_register
    from beacon.sdk import ReporterError
    from beacon.sdk.metadata import detect_ip_address

    path = Path(config_path)
    doc: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            click.echo(f"{config_path}: invalid YAML: {str(exc).splitlines()[0]}", err=True)
            sys.exit(2)
        doc = loaded if isinstance(loaded, dict) else {}
    metadata = {
        "hostname": socket.gethostname(),
        "ip_address": detect_ip_address(),
        "agent_version": __version__,
    }
    if region:
        metadata["region"] = region
    try:
        answer = do_register(server, enroll_token, name, metadata, ca_file=ca_file)
    except ReporterError as exc:
        click.echo(f"registration failed: {exc}", err=True)
        sys.exit(1)
    doc.update(
        {
            "pulse_server": server.rstrip("/"),
            "node_id": answer["node_id"],
            "node_name": name,
            "token": answer["token"],
        }
    )
    doc.pop("token_file", None)
    if ca_file:
        doc["ca_file"] = str(Path(ca_file).resolve())
    if region:
        doc["region"] = region
    doc.setdefault("report_interval_seconds", 60)
    doc.setdefault("probes", [])
    # Atomic (temp file + rename) and 0600 from the start: it holds a secret, and a
    # failure half-way must leave the previous file whole.
    state.atomic_write(path, yaml.safe_dump(doc, sort_keys=False), mode=0o600, durable=True)
    click.echo(f"registered node {answer['node_id']} as {name!r}; wrote {config_path}")


@click.command("echo-server")
@click.option("--udp", "udp_port", required=True, type=click.IntRange(0, 65535))
@click.option("--tcp", "tcp_port", default=None, type=click.IntRange(0, 65535))
@click.option("--host", default="0.0.0.0", show_default=True)
def echo_server(udp_port: int, tcp_port: int | None, host: str) -> None:
    """Echo UDP datagrams (and TCP bytes) back verbatim, RFC 862 style."""
    from beacon.echo import serve

    stop = threading.Event()
    stop_on_signals(stop)
    click.echo(
        f"echoing UDP on {host}:{udp_port}"
        + (f", TCP on {host}:{tcp_port}" if tcp_port is not None else "")
    )
    serve(udp_port, tcp_port, host, stop)
