import pytest

from tests.beacon.standin import StandInPulse


@pytest.fixture
def pulse():
    server = StandInPulse().start()
    yield server
    server.stop()
