"""Headless Chromium (Debian's, driven by Playwright) against Pulse served from this
process on real PostgreSQL and Redis. Every page a test opens is checked for requests
leaving the origin and for console errors."""

from __future__ import annotations

import os
import random
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.conftest import PERSONAS, _unavailable, make_app

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "img"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SECRET = "browser-secret-" + "z" * 32


def chromium_path() -> str | None:
    return os.environ.get("PULSE_CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if not path:
        _unavailable("Chromium", FileNotFoundError("no chromium binary (apt-get install chromium)"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable("Playwright", exc)
    # Playwright gives the browser a throwaway profile directory of its own (it refuses a
    # --user-data-dir argument) and removes it on close.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class LivePulse:
    app: object
    base: str
    tokens: dict[str, str] = field(default_factory=dict)  # role -> API bearer

    def api(self, method: str, path: str, role: str = "admin", **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return requests.request(method, self.base + path, headers=headers, timeout=10, **kwargs)

    def node(self, name: str, region: str | None = None) -> dict:
        response = self.api("POST", "/api/v1/nodes", json={"name": name, "region": region})
        assert response.status_code == 201, response.text
        return response.json()

    def probe(self, node: dict, port: int, name: str | None = None, type_: str = "TCP",
              target: str = "198.51.100.40") -> dict:
        response = self.api("POST", "/api/v1/probes", json={
            "node_id": node["id"], "type": type_, "target": target, "port": port, "name": name})
        assert response.status_code == 201, response.text
        return response.json()

    def beat(self, node: dict, ts: datetime, results: list[dict]) -> None:
        ok = [r for r in results if r.get("latency_ms") is not None]
        body = {"node_id": node["id"], "timestamp": iso(ts),
                "latency_ms": sum(r["latency_ms"] for r in ok) / len(ok) if ok else 0.0,
                "packet_loss_rate": sum(r["packet_loss_rate"] for r in results) / max(
                    1, len(results)),
                "jitter_ms": 0.5, "config_version": "cv", "agent_version": "browser-test",
                "results": [{"timestamp": iso(ts), **r} for r in results]}
        response = requests.post(self.base + "/api/v1/beacon/heartbeat", json=body, timeout=10,
                                 headers={"Authorization": f"Bearer {node['token']}"})
        assert response.status_code == 200, response.text


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_result(probe_id: str, latency: float | None, loss: float, spread: float = 1.0) -> dict:
    """A probe run as a Beacon reports it (10 samples; nothing received at 100 % loss)."""
    if latency is None or loss >= 100:
        return {"probe_id": probe_id, "latency_ms": None, "packet_loss_rate": 100.0,
                "jitter_ms": None, "sent": 10, "received": 0, "error": "ERR_CONNECTION_REFUSED"}
    return {"probe_id": probe_id, "latency_ms": latency, "packet_loss_rate": loss,
            "jitter_ms": round(spread / 3, 2), "latency_median_ms": round(latency - spread / 4, 2),
            "latency_min_ms": round(latency - spread, 2),
            "latency_p95_ms": round(latency + spread, 2),
            "latency_max_ms": round(latency + 2 * spread, 2),
            "sent": 10, "received": 10 - int(loss // 10)}


def history(pulse: LivePulse, node: dict, probes: list[dict], minutes: int = 50,
            outage: range = range(18, 26), dead_at: int = 12, seed: int = 7) -> datetime:
    """A run a minute for `minutes` minutes ending now: a smooth path with noise, an
    outage (no heartbeat at all) and one run that received nothing on the last probe."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    for ago in range(minutes, 0, -1):
        if ago in outage:
            continue
        ts = now - timedelta(minutes=ago)
        results = []
        for index, probe in enumerate(probes):
            base = 8.0 + 12 * index
            latency = round(base + rng.uniform(-1.5, 3.0), 2)
            loss = rng.choice([0, 0, 0, 0, 10, 30]) if index else 0
            if ago == dead_at and index == len(probes) - 1:
                latency = None
            results.append(run_result(probe["id"], latency, loss, spread=0.5 + index))
        pulse.beat(node, ts, results)
    return now


@pytest.fixture(scope="module")
def pulse(pg_server, redis_server):
    """Pulse on its own PostgreSQL database and Redis prefix, served on a free port."""
    from flask_migrate import upgrade
    from werkzeug.serving import make_server

    url = pg_server.create_database("b_" + uuid.uuid4().hex[:12])
    app = make_app(url, redis_server.url, SECRET_KEY=SECRET,
                   PULSE_REDIS_PREFIX="br" + uuid.uuid4().hex[:8])
    with app.app_context():
        upgrade()
        from app.services import auth as auth_service

        tokens = {}
        for persona in PERSONAS.values():
            user = auth_service.create_user(persona.email, persona.password, persona.role)
            tokens[persona.role] = auth_service.issue_access_token(user)[0]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browser-pulse", daemon=True)
    thread.start()
    yield LivePulse(app, f"http://127.0.0.1:{server.server_port}", tokens)
    server.shutdown()
    thread.join(10)
    with app.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()


class Watched:
    """A page whose requests and console messages are recorded."""

    def __init__(self, context, base: str) -> None:
        self.context, self.base = context, base
        self.page = context.new_page()
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.expected_statuses: set[int] = set()  # a page a test asks for as an error
        self.page.on("request", self._request)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _request(self, request) -> None:
        if not (request.url.startswith(self.base + "/") or request.url.startswith("data:")):
            self.foreign.append(request.url)

    def _console(self, message) -> None:
        # Chromium logs a document answered with an error status as a console error; only
        # the statuses a test asked for on purpose are expected.
        expected = any(f"status of {status} " in message.text
                       for status in self.expected_statuses)
        if message.type == "error" and not expected:
            self.errors.append(message.text)

    def sign_in(self, role: str) -> None:
        persona = PERSONAS[role]
        self.page.goto(self.base + "/login")
        self.page.fill("#email", persona.email)
        self.page.fill("#password", persona.password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(self.base + "/")


@pytest.fixture
def watched(browser, pulse):
    """watched(role=None, width=1280) -> a signed-in Watched page; checked at teardown."""
    made: list[Watched] = []

    def open_page(role: str | None = None, width: int = 1280, height: int = 900) -> Watched:
        context = browser.new_context(viewport={"width": width, "height": height})
        page = Watched(context, pulse.base)
        made.append(page)
        if role:
            page.sign_in(role)
        return page

    yield open_page
    for page in made:
        page.context.close()
    assert [p.foreign for p in made if p.foreign] == [], "requests left the origin"
    assert [p.errors for p in made if p.errors] == [], "console errors"


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
