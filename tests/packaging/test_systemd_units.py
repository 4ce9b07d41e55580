"""deploy/systemd: the units pass `systemd-analyze verify` and say what SPEC §13 asks."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging.conftest import ROOT

UNITS = ROOT / "deploy" / "systemd"
NAMES = ("beacon.service", "pulse-web.service", "pulse-worker.service", "pulse-beat.service")
# The install prefixes the units use; the test puts stand-in executables under them.
PREFIXES = ("/opt/pulse/", "/opt/beacon/")
IN_CI = os.environ.get("CI", "").lower() == "true"


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        why = "systemd-analyze not installed (scripts/ensure-servers.sh installs systemd)"
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    return path


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def test_units_pass_systemd_analyze_verify(tmp_path):
    """Verified as written, with only the install prefix moved under a temp dir, where
    each command the units run exists (verify checks that ExecStart & co. exist)."""
    analyze = systemd_analyze()
    copies = []
    for name in NAMES:
        text = (UNITS / name).read_text()
        for prefix in PREFIXES:
            text = text.replace(prefix, f"{tmp_path}{prefix}")
        for command in re.findall(r"^Exec\w+=[-@:+!]*(\S+)", text, flags=re.MULTILINE):
            if command.startswith(str(tmp_path)):
                Path(command).parent.mkdir(parents=True, exist_ok=True)
                Path(command).write_text("#!/bin/sh\n")
                Path(command).chmod(0o755)
        copy = tmp_path / name
        copy.write_text(text)
        copies.append(str(copy))
    done = subprocess.run(
        [analyze, "verify", *copies], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (done.stdout + done.stderr).strip() == ""  # not even a warning


def test_beacon_unit_is_sandboxed_and_reloadable():
    service = unit("beacon.service")["Service"]
    assert service["User"] == "beacon" and service["StateDirectory"] == "beacon"
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["Restart"] == "on-failure"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    # the pyz unpacks inside the state directory, the one writable place
    assert service["Environment"] == "SHIV_ROOT=/var/lib/beacon/shiv"
    assert service["ExecStart"].endswith("start -c /etc/beacon/beacon.yaml")


def test_pulse_units_share_the_environment_file_and_run_the_procfile_processes():
    procfile = (ROOT / "Procfile").read_text()
    for name, program in (
        ("pulse-web.service", "gunicorn"),
        ("pulse-worker.service", "celery -A worker worker"),
        ("pulse-beat.service", "celery -A worker beat"),
    ):
        service = unit(name)["Service"]
        assert service["EnvironmentFile"] == "/etc/pulse/pulse.env"
        assert program in service["ExecStart"] and program in procfile
        assert service["User"] == "pulse" and service["ProtectSystem"] == "strict"
    beat = unit("pulse-beat.service")["Service"]
    assert f"--schedule /var/lib/{beat['StateDirectory']}/" in beat["ExecStart"]


def test_environment_example_names_only_documented_settings():
    documented = (ROOT / "README.md").read_text() + (ROOT / "gunicorn.conf.py").read_text()
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (UNITS / "pulse.env.example").read_text(), re.M)
    assert {"PULSE_ENV", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= set(names)
    for name in names:
        assert f"`{name}`" in documented or f'"{name}"' in documented, name
