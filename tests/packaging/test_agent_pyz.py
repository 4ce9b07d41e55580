"""`make beacon-pyz`: one file the system python3 (not our venv) runs as the agent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.packaging.agent_run import (
    SERVER_MODULES,
    check_probe,
    check_start,
    check_version,
    clean_env,
)
from tests.packaging.conftest import BUILD_TIMEOUT_SECONDS, ROOT

pytestmark = pytest.mark.slow


def system_python() -> str:
    """/usr/bin/python3, else the first python3 on PATH that is not this venv's."""
    candidates = ["/usr/bin/python3"]
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and not entry.startswith(sys.prefix):
            candidates.append(os.path.join(entry, "python3"))
    for path in candidates:
        if not os.access(path, os.X_OK):
            continue
        code = "import sys; print(sys.prefix == sys.base_prefix, sys.version_info >= (3, 11))"
        probe = subprocess.run([path, "-c", code], capture_output=True, text=True, timeout=30)
        if probe.stdout.split() == ["True", "True"]:
            return path
    raise AssertionError(f"no python3 >= 3.11 outside a venv among {candidates}")


@pytest.fixture(scope="module")
def pyz(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make beacon-pyz`, into a temp dir and offline (dependencies from the wheelhouse).

    ``-o .venv/.installed``: the running venv is used as it is, never reinstalled.
    """
    out = tmp_path_factory.mktemp("pyz") / "beacon.pyz"
    cmd = [
        "make",
        "--no-print-directory",
        "-o",
        ".venv/.installed",
        "beacon-pyz",
        f"BIN={Path(sys.executable).parent}",
        f"PYZ={out}",
        f"PYZ_PIP_ARGS=--no-index --find-links {wheelhouse}",
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"built {out}" in done.stdout
    return out


def test_pyz_bundles_the_agent_dependencies_and_no_server_one(pyz):
    names = zipfile.ZipFile(pyz).namelist()
    top = {n.split("/")[1] for n in names if n.startswith("site-packages/") and n.count("/") > 1}
    assert {"beacon", "requests", "yaml", "click", "urllib3", "certifi"} <= top
    assert not top & set(SERVER_MODULES), top & set(SERVER_MODULES)
    assert pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_pyz_runs_on_the_system_python(pyz, tmp_path):
    python = system_python()
    # -S: without the system's site-packages, so everything must come from the pyz.
    cmd = [python, "-S", str(pyz)]
    env = {**clean_env(tmp_path), "SHIV_ROOT": str(tmp_path / "shiv")}
    check_version(cmd, env, tmp_path)
    check_probe(cmd, env, tmp_path)
    check_start(cmd, env, tmp_path)
    unpacked = list((tmp_path / "shiv").glob("*/site-packages/beacon/__init__.py"))
    assert len(unpacked) == 1, "the pyz unpacks into SHIV_ROOT"
    shutil.rmtree(tmp_path / "shiv")
