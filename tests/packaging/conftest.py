"""Session fixtures: the project's wheel with its dependencies' wheels, built once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_SECONDS = 240


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel .``: our wheel plus wheels of requests, pyyaml, click and theirs.

    Taken from pip's cache or the index; everything installed from here afterwards uses
    ``--no-index``, so what gets installed is exactly what the wheel's metadata asks for.
    """
    out = tmp_path_factory.mktemp("wheelhouse")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-build-isolation"),
            *("--wheel-dir", str(out), str(ROOT)),
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out
