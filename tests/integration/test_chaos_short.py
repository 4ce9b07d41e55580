"""The chaos run's short form (bench/chaos.py --short, about 3 minutes with set-up): 40
Beacons through gunicorn + 2 Celery workers + beat on real Redis (AOF, everysec) and
PostgreSQL, every fault once. What was answered 200 is in PostgreSQL exactly once (but
what a Redis crash may lose of its last second), aggregates equal their raw rows, no 5xx
but 503."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_short_chaos_run_loses_and_doubles_nothing(pg_server, redis_server):
    # (the fixtures only make sure the binaries are here; the run starts its own servers)
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "chaos.py"), "--short"],
                            cwd=ROOT, capture_output=True, text=True, timeout=840)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["accepted"] > 0.5 * figures["sent"], figures
    assert figures["duplicates"] == 0, figures
    assert figures["lost"] == figures["lost_in_redis_crash_second"], figures
    assert figures["aggregate_mismatches"] == 0 and figures["aggregated_minutes"] > 0, figures
    assert figures["5xx"]["other_5xx"] == 0, figures
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
