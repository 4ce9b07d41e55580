"""What the ``beacon`` commands share: the ``-c`` option, config loading, logging."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import click
import yaml

from beacon import config as config_mod

CONFIG_OPTION = click.option(
    "-c",
    "--config",
    "config_path",
    default="beacon.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="beacon.yaml to use",
)

# One format for everything the agent and the CLI log, e.g.
# 2026-01-30T12:34:56Z INFO beacon.agent: Reporting to Pulse… ok: 3 result(s) …
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class UTCFormatter(logging.Formatter):
    """ISO 8601 UTC to the second, like every other timestamp Beacon shows."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))


class _ClickHandler(logging.Handler):
    """Writes through ``click.echo``, which looks up sys.stdout/stderr at each call and
    flushes, so a piped or redirected stream shows each line at once."""

    def __init__(self, err: bool) -> None:
        super().__init__()
        self.err = err

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=self.err)
        except Exception:
            self.handleError(record)


def setup_logging(level: str | int = logging.WARNING, err: bool = True) -> None:
    """Route the ``beacon`` loggers (and third-party warnings) to one stream, one format.

    Called by the console entry point (stderr, warnings) and again by ``beacon start``
    (its log is its output: stdout, INFO). Replaces only the handler it installed before.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _ClickHandler):
            root.removeHandler(handler)
    handler = _ClickHandler(err)
    handler.setFormatter(UTCFormatter(LOG_FORMAT))
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    logging.getLogger("beacon").setLevel(numeric)
    if numeric < root.level:
        root.setLevel(numeric)


def fail_config(exc: config_mod.BeaconConfigError) -> NoReturn:
    for line in exc.problems:
        click.echo(line, err=True)
    sys.exit(2)


def load_config(path: str, require_pulse: bool) -> config_mod.AgentConfig:
    try:
        return config_mod.load(path, require_pulse=require_pulse)
    except config_mod.BeaconConfigError as exc:
        fail_config(exc)


@dataclass(frozen=True)
class StateDirChoice:
    """The state dir a command uses, and why (``note`` is None for a valid config)."""

    path: Path
    note: str | None = None


def state_dir_for(config_path: str) -> StateDirChoice:
    """The state dir of ``config_path`` even when the file is broken.

    ``status`` and ``stop`` must work on an agent whose file was broken after it started
    (the running agent keeps its config): a valid file gives its ``state_dir``; a broken
    one that is still YAML gives the ``state_dir``/``spool_dir`` written in it; anything
    else the default per-user state dir.
    """
    try:
        return StateDirChoice(config_mod.load(config_path, require_pulse=False).state_dir)
    except config_mod.BeaconConfigError as exc:
        problems = exc.problems
    raw = _raw_state_dir(Path(config_path))
    if raw is not None:
        how = f"using the state_dir written in it, {raw}"
        path = raw
    else:
        path = config_mod.default_state_dir()
        how = f"using the default state dir, {path}"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return StateDirChoice(path, f"{problems[0]}{more}; {how}")


def _raw_state_dir(path: Path) -> Path | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    for key in ("state_dir", "spool_dir"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return (path.resolve().parent / value).expanduser()
    return None


def state_dir_or_note(config_path: str) -> Path:
    """``state_dir_for``, saying on stderr what was done when the file is broken."""
    choice = state_dir_for(config_path)
    if choice.note:
        click.echo(f"warning: {choice.note}", err=True)
    return choice.path
