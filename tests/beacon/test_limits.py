"""SPEC §5 limits the Beacon and the SDK apply before sending metadata and versions."""

import math

from beacon.sdk.limits import clean_optional, clean_text, trim_metadata


def test_clean_text_drops_every_control_character_and_cuts():
    assert clean_text("a\x00b\tc\nd\x1fe\x7ff\x85g\x9fh", 100) == "abcdefgh"
    assert clean_text("é✓ü" * 50, 128) == ("é✓ü" * 50)[:128]  # printable non-ASCII kept
    assert clean_text("abcdef", 3) == "abc"
    assert clean_optional(None, 10) is None and clean_optional(12, 10) == "12"


def test_trim_metadata_keeps_32_first_keys():
    meta = {f"key{i:02d}": i for i in range(40)}
    trimmed = trim_metadata(meta)
    assert list(trimmed) == [f"key{i:02d}" for i in range(32)]


def test_trim_metadata_cuts_keys_and_values_and_drops_non_scalars():
    meta = {
        "k" * 100: "v",
        "long": "y" * 300,
        "nested": {"a": 1},
        "list": [1, 2],
        "nan": math.nan,
        "inf": math.inf,
        "ok_num": 1.5,
        "ok_int": 7,
        "ok_bool": False,
        "ok_none": None,
        "\x00\x01": "key empty once cleaned",
        "ctl\x00key": "val\x1bue",
        3: "non-string key",
    }
    assert trim_metadata(meta) == {
        "k" * 64: "v",
        "long": "y" * 256,
        "ok_num": 1.5,
        "ok_int": 7,
        "ok_bool": False,
        "ok_none": None,
        "ctlkey": "value",
        "3": "non-string key",
    }


def test_trim_metadata_keeps_the_first_of_keys_equal_once_cut():
    a, b = "k" * 64 + "a", "k" * 64 + "b"
    assert trim_metadata({a: 1, b: 2}) == {"k" * 64: 1}
    assert trim_metadata(None) == {}
