"""`make run`'s demo: a fresh embedded Pulse shows demo-local online with three probes,
one at 100 % loss, within 60 s (SPEC §10). The same commands as the Makefile's `run`,
on a throwaway SQLite file and demo directory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser.conftest import ROOT, Watched
from tests.support.servers import free_port, wait_for_port

pytestmark = pytest.mark.integration
FLASK = str(Path(sys.executable).with_name("flask"))


@pytest.fixture
def make_run(tmp_path):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'pulse.db'}",
           "PULSE_DEMO_DIR": str(tmp_path / "demo"), "REDIS_URL": "", "PULSE_DEMO": "1",
           "CELERY_BROKER_URL": "", "PYTHONUNBUFFERED": "1"}
    env.pop("SECRET_KEY", None)

    def flask(*args: str) -> str:
        return subprocess.run([FLASK, "--app", "wsgi", *args], cwd=ROOT, env=env, text=True,
                              capture_output=True, check=True, timeout=120).stdout

    flask("db", "upgrade")
    printed = flask("bootstrap-admin")
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 (closed below)
    started = time.monotonic()
    proc = subprocess.Popen([FLASK, "--app", "wsgi", "serve", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port(port, 60)
    yield {"base": f"http://127.0.0.1:{port}", "printed": printed, "started": started,
           "log": tmp_path / "serve.log"}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    log.close()


def test_make_run_demo_is_online_with_three_probes_within_60_s(browser, make_run):
    email = re.search(r"Admin created: (\S+)", make_run["printed"]).group(1)
    password = re.search(r"Password \(shown once\): (\S+)", make_run["printed"]).group(1)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    view = Watched(context, make_run["base"])
    try:
        view.page.goto(make_run["base"] + "/login")
        view.page.fill("#email", email)
        view.page.fill("#password", password)
        view.page.click("button[type=submit]")
        view.page.wait_for_url(make_run["base"] + "/")
        deadline = make_run["started"] + 60
        row = None
        while time.monotonic() < deadline:
            view.page.goto(make_run["base"] + "/")
            row = view.page.query_selector('#overview tr[data-status="online"]')
            if row and "demo-local" in row.inner_text() and "ms" in row.inner_text():
                break
            time.sleep(2)
        assert row is not None and "demo-local" in row.inner_text(), make_run["log"].read_text()
        row.query_selector("a").click()
        loss = {}
        while time.monotonic() < deadline and len(loss) < 3:
            view.page.wait_for_selector("body[data-chart-loads]", state="attached")
            data = view.page.evaluate("window.pulseChartData")
            loss = {p["label"]: [x for x in p["series"]["loss"] if x is not None]
                    for p in data["probes"] if p["count"]}
            if len(loss) < 3:
                time.sleep(2)
                view.page.reload()
        assert sorted(loss) == ["tcp-closed-port", "tcp-healthy", "udp-20ms-10pct-loss"]
        assert time.monotonic() - make_run["started"] <= 60
        assert set(loss["tcp-closed-port"]) == {100.0}
        assert max(loss["tcp-healthy"]) == 0.0
    finally:
        context.close()
    assert view.foreign == [] and view.errors == []
