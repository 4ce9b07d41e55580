"""/api/v1/notification-channels: the URL is a secret — encrypted at rest, answered
redacted, never echoed in an error; the test endpoint reaches the receiver."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from tests.support.receiver import Receiver

SECRET = "tok-5ecr3t-path"


@pytest.fixture
def receiver():
    with Receiver() as rx:
        yield rx


def create(client, persona, url, kind="webhook", name="ops"):
    return client.post("/api/v1/notification-channels",
                       json={"name": name, "kind": kind, "url": url}, headers=persona.headers)


def test_url_is_answered_redacted_everywhere(client, app, operator, viewer):
    url = f"https://user:pw@hooks.example.com:8443/services/{SECRET}?token={SECRET}"
    r = create(client, operator, url)
    assert r.status_code == 201, r.get_json()
    channel = r.get_json()
    assert channel["url"] == "https://hooks.example.com"
    answers = [r.get_data(as_text=True)]
    answers.append(client.get("/api/v1/notification-channels",
                              headers=viewer.headers).get_data(as_text=True))
    answers.append(client.get(f"/api/v1/notification-channels/{channel['id']}",
                              headers=viewer.headers).get_data(as_text=True))
    answers.append(client.patch(f"/api/v1/notification-channels/{channel['id']}",
                                json={"url": url + "2"},
                                headers=operator.headers).get_data(as_text=True))
    answers.append(client.get("/metrics").get_data(as_text=True))
    assert all(SECRET not in a and "pw@" not in a for a in answers)


@pytest.mark.parametrize(("url", "shown"), [
    ("tgram://123456789:AAHbottoken/12345", "tgram://…"),
    ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", "discord://…"),
    ("json://127.0.0.1:8080/hook", "json://127.0.0.1"),
    ("mailtos://user:pass@mail.example.org", "mailtos://mail.example.org"),
])
def test_apprise_urls_show_a_host_only_when_it_is_one(client, operator, url, shown):
    r = create(client, operator, url, kind="apprise", name=url[:10])
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["url"] == shown


def test_stored_encrypted_with_a_key_derived_from_secret_key(client, app, operator):
    url = f"https://hooks.example.com/{SECRET}"
    create(client, operator, url)
    from app.alerts.channel_crypto import ChannelKeyError, decrypt_url
    from app.extensions import db

    with app.app_context():
        stored = db.session.execute(text("SELECT url_encrypted FROM notification_channels"))
        token = stored.scalar_one()
        assert SECRET not in token
        assert decrypt_url(token) == url
        with pytest.raises(ChannelKeyError):
            decrypt_url(token, secret_key="another-secret-key-" + "z" * 32)


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"kind": "webhook", "url": f"ftp://example.com/{SECRET}"}, "ERR_INVALID_CHANNEL", "url"),
    ({"kind": "apprise", "url": f"nonsense-{SECRET}"}, "ERR_INVALID_CHANNEL", "url"),
    ({"kind": "sms", "url": "https://example.com"}, "ERR_INVALID_CHANNEL", "kind"),
    ({"url": "https://example.com"}, "ERR_VALIDATION", "name"),
])
def test_refusals_name_the_field_and_never_echo_the_url(client, operator, body, code, field):
    body = {"name": "x", **body} if field != "name" else body
    r = client.post("/api/v1/notification-channels", json=body, headers=operator.headers)
    assert r.status_code == 400
    answer = r.get_json()
    assert (answer["code"], list(answer["details"]["fields"])) == (code, [field])
    assert SECRET not in r.get_data(as_text=True)


def test_duplicate_name_unknown_id_and_roles(client, operator, viewer):
    assert create(client, operator, "https://example.com/a").status_code == 201
    r = create(client, operator, "https://example.com/b")
    assert r.status_code == 409 and r.get_json()["code"] == "ERR_CHANNEL_EXISTS"
    r = client.get("/api/v1/notification-channels/nope", headers=viewer.headers)
    assert r.status_code == 404 and r.get_json()["code"] == "ERR_CHANNEL_NOT_FOUND"
    channel = client.get("/api/v1/notification-channels",
                         headers=viewer.headers).get_json()["data"][0]
    path = f"/api/v1/notification-channels/{channel['id']}"
    assert client.post(path + "/test", headers=viewer.headers).status_code == 403
    assert client.delete(path, headers=viewer.headers).status_code == 403
    assert client.delete(path, headers=operator.headers).status_code == 204


def test_test_endpoint_answers_the_outcome(client, operator, receiver):
    ok = create(client, operator, receiver.url(f"/ok/{SECRET}"), name="ok").get_json()
    receiver.script(f"/bad/{SECRET}", [503])
    bad = create(client, operator, receiver.url(f"/bad/{SECRET}"), name="bad").get_json()
    r = client.post(f"/api/v1/notification-channels/{ok['id']}/test", headers=operator.headers)
    assert r.get_json() == {"status": "sent", "error": None}
    body = receiver.bodies(f"/ok/{SECRET}")[0]
    assert body["version"] == "4" and body["alerts"][0]["labels"]["alertname"]
    r = client.post(f"/api/v1/notification-channels/{bad['id']}/test", headers=operator.headers)
    assert r.get_json() == {"status": "failed", "error": "HTTP 503"}


@pytest.mark.parametrize("kind", ["apprise", "webhook"])
def test_a_test_message_reaches_the_receiver_and_no_log_line_names_the_url(
        client, operator, receiver, caplog, kind):
    url = receiver.url(f"/{kind}/{SECRET}", scheme="json" if kind == "apprise" else "http")
    with caplog.at_level(logging.DEBUG):
        channel = create(client, operator, url, kind=kind).get_json()
        r = client.post(f"/api/v1/notification-channels/{channel['id']}/test",
                        headers=operator.headers)
    assert r.get_json()["status"] == "sent", r.get_json()
    body = receiver.bodies(f"/{kind}/{SECRET}")[0]
    assert "test" in (body["title"] if kind == "apprise"
                      else body["alerts"][0]["labels"]["alertname"]).lower()
    assert SECRET not in caplog.text
