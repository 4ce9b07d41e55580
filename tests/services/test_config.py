"""Pulse settings are read once from the environment and refused when wrong."""

from __future__ import annotations

import pytest

from app.config import MAX_FLUSH_WRITERS, Config, ConfigError, normalize_database_url


@pytest.mark.parametrize("url", ["postgres://u:p@db/pulse", "postgresql://u:p@db/pulse"])
def test_paas_style_database_urls_use_psycopg2(url):
    assert normalize_database_url(url) == "postgresql+psycopg2://u:p@db/pulse"


def test_production_needs_a_long_secret_key():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Config({"PULSE_ENV": "production", "SECRET_KEY": "short"})
    assert Config({"PULSE_ENV": "production", "SECRET_KEY": "k" * 32}).SECRET_KEY == "k" * 32


@pytest.mark.parametrize(("value", "message"), [
    ("two", "must be an integer"), ("0", ">= 1"), (str(MAX_FLUSH_WRITERS + 1), "<= 8")])
def test_flush_writers_are_bounded(value, message):
    with pytest.raises(ConfigError, match=message):
        Config({"PULSE_FLUSH_WRITERS": value})


def test_defaults_and_switches():
    config = Config({})
    assert config.PULSE_FLUSH_WRITERS == 2
    assert config.PULSE_HEARTBEAT_FAST_PATH is True
    assert Config({"PULSE_HEARTBEAT_FAST_PATH": "0"}).PULSE_HEARTBEAT_FAST_PATH is False
    assert Config({"PULSE_FLUSH_WRITERS": str(MAX_FLUSH_WRITERS)}).PULSE_FLUSH_WRITERS == 8


def test_development_secret_key_is_kept_in_the_instance_folder(tmp_path):
    """SPEC §3: generated once, mode 0600, so sessions and encrypted URLs survive a restart."""
    import os
    import stat

    from app import instance_secret_key

    first = instance_secret_key(str(tmp_path / "instance"))
    path = tmp_path / "instance" / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) >= 32
    assert instance_secret_key(str(tmp_path / "instance")) == first
    path.write_text("short\n")  # a damaged file is replaced, never used as a weak key
    assert instance_secret_key(str(tmp_path / "instance")) not in ("short", first)
