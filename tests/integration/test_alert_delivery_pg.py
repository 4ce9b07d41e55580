"""Deliveries through real Celery workers: retries with backoff, a dead receiver that
delays nobody, apprise to a json:// receiver, channel URLs in no answer, log or /metrics,
and one end-to-end case in real time with beat (the 90 s of SPEC §11, measured)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.alerting_steps import own_broker
from tests.integration.conftest import wait_until
from tests.integration.helpers import setup_node
from tests.support.alerting import (
    create_channel,
    create_rule,
    evaluate_each_minute,
    minute_start,
    outbox_rows,
    post_minutes,
    post_run,
)
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration
SECRET = "s3cr3t-hook-token"


@pytest.fixture
def server_env(server_env):
    return own_broker(server_env)


@pytest.fixture
def receiver():
    with Receiver() as rx:
        yield rx


@pytest.fixture
def ctx(pg_app):
    return setup_node(pg_app, probe_count=2)


def test_retries_a_dead_channel_and_urls_stay_secret(pg_app, ctx, receiver, celery_processes,
                                                     caplog):
    """500, 500, 500 then 200: delivered once. A receiver that never answers does not
    delay the others. Apprise reaches a json:// receiver. No URL anywhere."""
    client, headers = ctx["client"], ctx["operator_headers"]
    receiver.script(f"/flaky/{SECRET}", [500, 500, 500])
    receiver.hang(f"/dead/{SECRET}", seconds=12)
    dead = create_channel(client, headers, receiver.url(f"/dead/{SECRET}"), name="dead")
    flaky = create_channel(client, headers, receiver.url(f"/flaky/{SECRET}"), name="flaky")
    good = create_channel(client, headers, receiver.url(f"/good/{SECRET}"), name="good")
    chat = create_channel(client, headers, receiver.url(f"/apprise/{SECRET}", scheme="json"),
                          kind="apprise", name="chat")
    create_rule(client, headers, channel_ids=[dead, flaky, good, chat])
    workers = [celery_processes("worker"), celery_processes("worker")]
    start = minute_start(6)
    post_minutes(client, ctx["node_id"], ctx["node_headers"], ctx["probe_ids"], start,
                 ctx["probe_ids"][0], [50, 50])
    with caplog.at_level(logging.DEBUG):
        began = time.monotonic()
        evaluate_each_minute(pg_app, start + timedelta(minutes=1), 1)
        evaluated_in = time.monotonic() - began
        wait_until(lambda: receiver.bodies(f"/good/{SECRET}"), 10, message="good channel")
    good_after = receiver.hits(f"/good/{SECRET}")[0]["at"] - began
    wait_until(lambda: receiver.bodies(f"/flaky/{SECRET}"), 40, message="flaky delivered")
    wait_until(lambda: receiver.bodies(f"/apprise/{SECRET}"), 20, message="apprise delivered")
    assert evaluated_in < 2.0, "evaluation does not send"
    assert good_after < 4.0, f"the good channel waited {good_after:.1f} s behind the dead one"
    flaky_hits = receiver.hits(f"/flaky/{SECRET}")
    assert [h["status"] for h in flaky_hits] == [500, 500, 500, 200]
    gaps = [b["at"] - a["at"] for a, b in zip(flaky_hits, flaky_hits[1:], strict=False)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.8 and gaps[2] >= 3.6, gaps  # backoff 1, 2, 4 s
    apprise_body = receiver.bodies(f"/apprise/{SECRET}")[0]
    assert apprise_body["title"] == "[FIRING] loss over 5%"
    assert ctx["node_id"][:8] not in apprise_body["title"]
    time.sleep(1)
    assert len(receiver.bodies(f"/good/{SECRET}")) == 1
    events = client.get("/api/v1/alert-events", headers=headers)
    outcomes = {n["channel_name"]: (n["status"], n["attempts"])
                for e in events.get_json()["data"] for n in e["notifications"]}
    assert outcomes["flaky"] == ("sent", 4) and outcomes["good"] == ("sent", 1)
    assert outcomes["chat"] == ("sent", 1)
    # the dead one: attempts timed out (5 s each) and are retried, never "sent"
    assert outcomes["dead"][0] != "sent"
    texts = [events.get_data(as_text=True),
             client.get("/api/v1/notification-channels", headers=headers).get_data(as_text=True),
             client.get("/metrics").get_data(as_text=True), caplog.text,
             *(w.log() for w in workers)]
    assert all(SECRET not in text for text in texts)
    assert "pulse_notifications_total{kind=\"webhook\",outcome=\"retry\"}" in texts[2]
    assert sum("retry" in w.log() for w in workers) >= 1  # the worker logs say what failed


def test_the_sweep_takes_back_a_delivery_a_dead_worker_left_in_sending(pg_app, ctx, receiver):
    pg_app.config["CELERY_BROKER_URL"] = None
    client, headers = ctx["client"], ctx["operator_headers"]
    channel = create_channel(client, headers, receiver.url("/late"))
    create_rule(client, headers, channel_ids=[channel])
    start = minute_start(5)
    post_minutes(client, ctx["node_id"], ctx["node_headers"], ctx["probe_ids"], start,
                 ctx["probe_ids"][1], [50, 50])
    evaluate_each_minute(pg_app, start + timedelta(minutes=1), 1)
    (outbox_id, status, _, _), = outbox_rows(pg_app)
    from sqlalchemy import update

    from app.alerts.outbox import deliver, sweep
    from app.extensions import db
    from app.models import NotificationOutbox

    with pg_app.app_context():
        # a worker claimed it and died (SIGKILL) before sending
        db.session.execute(update(NotificationOutbox).values(
            status="sending", claimed_at=datetime.now(UTC) - timedelta(minutes=5)))
        db.session.commit()
        assert deliver(outbox_id).status == "skipped"  # claimed: nobody else sends it
        assert sweep() == [outbox_id]
        assert deliver(outbox_id).status == "sent"
        assert sweep() == []
    assert len(receiver.bodies("/late")) == 1


def test_end_to_end_with_beat_reaches_the_receiver_within_90s(pg_app, ctx, receiver,
                                                              celery_processes):
    """Real time: the heartbeat that completes for_minutes, accepted just after beat's
    evaluation (the worst case), is at the receiver before 90 s have passed."""
    client, headers = ctx["client"], ctx["operator_headers"]
    channel = create_channel(client, headers, receiver.url("/e2e"))
    create_rule(client, headers, for_minutes=2, channel_ids=[channel])
    celery_processes("worker")
    celery_processes("beat")
    probe = ctx["probe_ids"][0]
    now = datetime.now(UTC)
    post_run(client, ctx["node_id"], ctx["node_headers"], now - timedelta(seconds=60),
             {probe: {"loss": 50}})
    # wait for the start of a minute: beat evaluates at :00, we post right after it
    wait_until(lambda: 2 <= datetime.now(UTC).second <= 6, 70, interval=0.2,
               message="just after a minute's start")
    # beat evaluated meanwhile: one bad run is one bad minute, not yet two
    assert receiver.hits("/e2e") == []
    post_run(client, ctx["node_id"], ctx["node_headers"], datetime.now(UTC),
             {probe: {"loss": 50}})
    accepted = time.monotonic()
    wait_until(lambda: receiver.bodies("/e2e"), 100, interval=0.5, message="firing message")
    latency = receiver.hits("/e2e")[0]["at"] - accepted
    print(f"\nfiring latency from the completing heartbeat: {latency:.1f} s")
    assert latency <= 90, latency
    assert receiver.bodies("/e2e")[0]["status"] == "firing"
