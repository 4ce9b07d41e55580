"""Schemathesis against every operation of /openapi.json, on real PostgreSQL and Redis,
as an admin and as a node token, with the default checks; zero failures (issue 14).

Bounded: EXAMPLES generated cases per operation and per bearer, no Hypothesis deadline
(the shared machine is noisy), the whole module in about a minute.

All of schemathesis' default checks run (not_a_server_error, status_code_conformance,
content_type_conformance, response_headers_conformance, response_schema_conformance, ...)
but two, turned off because they compare the *document's* constraints with the server's,
and OpenAPI 3.0 cannot state several of Pulse's rules:
* `positive_data_acceptance` (a schema-valid request must not get a 400): a probe target
  must be an IP address or an RFC 1123 host name whose last label is not all-numeric,
  drift app/profile path segments are `[A-Za-z0-9][A-Za-z0-9_.-]*`, query times are
  within 1970-9000; the document says "string" / "date-time" for these.
* `negative_data_rejection` (a schema-violating request must get a 4xx): Pulse accepts
  more than the document lists on purpose (probe type in any case, SPEC §5).
What they would catch is covered where the rules are: tests/api/test_probes_validation.py,
tests/security/test_malformed_input.py, tests/security/test_consumption.py.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from werkzeug.serving import make_server

from app import create_app
from app.config import TestConfig
from app.services import auth as auth_service
from app.services import nodes as node_service
from app.services import probes as probe_service
from tests.conftest import make_app

pytestmark = pytest.mark.integration
EXAMPLES = 8


@pytest.fixture(scope="module")
def fuzz_app(pg_server, redis_server):
    from flask_migrate import upgrade

    url = pg_server.create_database("fuzz_" + uuid.uuid4().hex[:8])
    app = make_app(url, redis_server.url, PULSE_REDIS_PREFIX="fz" + uuid.uuid4().hex[:6],
                   PULSE_LOGIN_RATE_LIMIT="0")  # fuzzing the login must not lock anyone out
    with app.app_context():
        upgrade()
        admin = auth_service.create_user("fuzz-admin@example.test", "long enough", "admin")
        admin_token, _ = auth_service.issue_access_token(admin)
        node, node_token = node_service.create_node("fuzz-node")
        probe_service.create_probe({"node_id": node.id, "type": "TCP",
                                    "target": "192.0.2.1", "port": 80})
    app.fuzz_bearers = {"admin": admin_token, "node": node_token}
    yield app
    with app.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()


def _document() -> dict:
    """The OpenAPI document, built at collection by an app without servers (the same
    document every Pulse serves; schemathesis' lazy fixture loader does not work with
    pytest 9)."""
    app = create_app(TestConfig({"DATABASE_URL": "sqlite://"}))
    return app.test_client().get("/openapi.json").get_json()


schema = schemathesis.openapi.from_dict(_document())


@pytest.fixture(scope="module")
def base_url(fuzz_app):
    """Pulse served over loopback HTTP by a threaded werkzeug server."""
    server = make_server("127.0.0.1", 0, fuzz_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="fuzz-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


BOUNDED = settings(max_examples=EXAMPLES, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                          HealthCheck.function_scoped_fixture])


EXCLUDED = [positive_data_acceptance, negative_data_rejection]


def _call(case, app, base_url: str, who: str):
    case.call_and_validate(base_url=base_url, excluded_checks=EXCLUDED,
                           headers={"Authorization": f"Bearer {app.fuzz_bearers[who]}"})


@schema.parametrize()
@BOUNDED
def test_every_operation_as_admin(case, fuzz_app, base_url):
    _call(case, fuzz_app, base_url, "admin")


@schema.parametrize()
@BOUNDED
def test_every_operation_as_a_node(case, fuzz_app, base_url):
    _call(case, fuzz_app, base_url, "node")
