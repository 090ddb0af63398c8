"""Envelope encryption: AES-256-GCM data keys wrapped by master keys; rotation rewraps, never re-encrypts."""

from __future__ import annotations

import base64
import os

import pytest

from trailseal.archive.crypto import (
    CryptoError,
    EnvKeys,
    FileKeys,
    StaticKeys,
    add_key_file,
    decrypt,
    encrypt,
    format_key,
    new_key,
    parse_keys,
    rewrap,
)

AAD = b"manifest"


def test_round_trip_and_fresh_data_key_each_time(keys):
    a, b = encrypt(b"secret audit", AAD, keys), encrypt(b"secret audit", AAD, keys)
    assert decrypt(a, AAD, keys) == b"secret audit"
    assert a.ciphertext != b.ciphertext and a.key_block.key != b.key_block.key
    assert a.key_block.kek == "k1" and a.key_block.alg == "A256KW" and len(a.key_block.key) == 40


def test_altered_metadata_or_ciphertext_does_not_decrypt(keys):
    sealed = encrypt(b"secret audit", AAD, keys)
    with pytest.raises(CryptoError, match="altered"):
        decrypt(sealed, b"manifesT", keys)
    flipped = bytearray(sealed.ciphertext)
    flipped[-1] ^= 1
    with pytest.raises(CryptoError, match="altered"):
        decrypt(type(sealed)(sealed.key_block, bytes(flipped)), AAD, keys)


def test_wrong_or_missing_master_key(keys):
    sealed = encrypt(b"x", AAD, keys)
    with pytest.raises(CryptoError, match="not available"):
        decrypt(sealed, AAD, StaticKeys({"k2": new_key()}))
    with pytest.raises(CryptoError, match="does not unwrap"):
        decrypt(sealed, AAD, StaticKeys({"k1": new_key()}))


def test_rotation_rewraps_the_same_data_key(keys):
    sealed = encrypt(b"kept", AAD, keys)
    both = StaticKeys({"k2": new_key(), "k1": keys._keys["k1"]})
    block = rewrap(sealed.key_block, both)
    assert block.kek == "k2" and block.key != sealed.key_block.key
    only_new = StaticKeys({"k2": both._keys["k2"]})
    assert decrypt(type(sealed)(block, sealed.ciphertext), AAD, only_new) == b"kept"
    assert rewrap(block, both) is block


def test_key_file_first_line_is_current_and_must_be_private(tmp_path):
    path = tmp_path / "archive.keys"
    add_key_file(path, "2026a")
    add_key_file(path, "2026b")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    provider = FileKeys(path)
    assert provider.current() == "2026b" and provider.ids() == ["2026b", "2026a"]
    with pytest.raises(CryptoError, match="already has"):
        add_key_file(path, "2026a")
    os.chmod(path, 0o644)
    with pytest.raises(CryptoError, match="readable by others"):
        FileKeys(path)


def test_env_keys():
    key = new_key()
    provider = EnvKeys("X_KEYS", {"X_KEYS": f"new:{base64.b64encode(key).decode()},old:{base64.b64encode(new_key()).decode()}"})
    assert provider.current() == "new" and provider.ids() == ["new", "old"]
    with pytest.raises(CryptoError, match=r"\$X_KEYS is not set"):
        EnvKeys("X_KEYS", {})


@pytest.mark.parametrize("text, message", [
    ("k1 notbase64!", "not valid base64"),
    (f"k1 {base64.b64encode(b'short').decode()}", "has 5 bytes"),
    (f"bad/id {base64.b64encode(bytes(32)).decode()}", "master key id"),
    ("lonely", "malformed"),
])
def test_bad_key_entries(text, message):
    with pytest.raises(CryptoError, match=message):
        parse_keys(text)


def test_key_lines_round_trip():
    key = new_key()
    assert parse_keys("# comment\n" + format_key("k", key) + "\n") == {"k": key}
