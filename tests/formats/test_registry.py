from __future__ import annotations

import hashlib

import pytest

from trailseal import formats
from trailseal.formats import FormatError

from .helpers import parse_one


def test_names_resolve_to_modules_with_parse_and_split():
    for name in formats.NAMES:
        module = formats.get(name)
        assert callable(module.parse) and callable(module.split)
        assert module.FORMAT == name


def test_unknown_format_is_a_key_error_naming_the_known_ones():
    with pytest.raises(KeyError, match="access_log"):
        formats.get("nope")


def test_format_error_is_a_value_error_with_a_reason():
    error = FormatError("bad thing")
    assert isinstance(error, ValueError) and error.reason == "bad thing"


def test_raw_hash_is_sha256_of_the_exact_record_bytes():
    raw = b'127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.0" 200 2326'
    assert parse_one("access_log", raw)["raw_hash"] == hashlib.sha256(raw).hexdigest()
