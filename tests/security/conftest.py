"""The abuse suite (issue 14): the API tried as an attacker and a fuzzer would.

PostgreSQL fixtures come from tests/integration (real servers, started on demand)."""

from tests.integration.conftest import pg_app, pg_url, server_env  # noqa: F401
