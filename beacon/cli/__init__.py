"""``beacon`` command line (click). ``main`` is the console entry point.

One module per concern: ``agentctl`` (start, stop, status), ``probing`` (probe, debug),
``tools`` (register, echo-server); ``common`` holds the ``-c`` option and logging.
"""

from __future__ import annotations

import click

from beacon import __version__
from beacon.cli.agentctl import start, status, stop
from beacon.cli.common import setup_logging
from beacon.cli.probing import debug, probe
from beacon.cli.tools import echo_server, register


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="beacon")
def cli() -> None:
    """Beacon: TCP/UDP network-quality probes reporting to Pulse."""


for command in (start, stop, status, debug, probe, register, echo_server):
    cli.add_command(command)


def main() -> None:
    """Console entry point."""
    setup_logging()  # warnings on stderr, in the agent's format; `start` switches to stdout
    cli(prog_name="beacon")
