"""Secrets at rest (ledger/secrets.py): Fernet under LEDGER_SECRET_KEY, rotation with
LEDGER_OLD_SECRET_KEYS, legacy plain values, the key file of `ledger up`."""
from __future__ import annotations

import stat

import pytest
from cryptography.fernet import Fernet

from api.cli.up import _with_secret_key
from ledger.secrets import PREFIX, Keyring, SecretKeyError, key_file_value
from ledger.settings import Secret, Settings

PLAIN = "whsec_the_plain_signing_secret"


def new_key() -> Secret:
    return Secret(Fernet.generate_key().decode())


def test_round_trip_and_the_stored_value_holds_no_plain_text():
    keyring = Keyring(new_key())
    stored = keyring.encrypt(PLAIN)
    assert stored.startswith(PREFIX) and PLAIN not in stored and "plain" not in stored
    assert keyring.decrypt(stored) == PLAIN
    # Two encryptions of one value differ (random IV): equal secrets are not recognizable.
    assert keyring.encrypt(PLAIN) != stored


def test_a_wrong_key_is_refused_with_what_to_do():
    stored = Keyring(new_key()).encrypt(PLAIN)
    with pytest.raises(SecretKeyError) as info:
        Keyring(new_key()).decrypt(stored)
    assert info.value.code == "secret_key_wrong" and not info.value.retryable
    assert "LEDGER_OLD_SECRET_KEYS" in info.value.message and "ledger secrets rotate" in info.value.message
    assert PLAIN not in str(info.value)


def test_an_altered_value_is_refused_not_decrypted_into_garbage():
    keyring = Keyring(new_key())
    stored = keyring.encrypt(PLAIN)
    flipped = stored[:-5] + ("A" if stored[-5] != "A" else "B") + stored[-4:]
    with pytest.raises(SecretKeyError):
        keyring.decrypt(flipped)


def test_without_a_key_nothing_is_stored_and_encrypted_values_are_not_read():
    stored = Keyring(new_key()).encrypt(PLAIN)
    for action in (lambda: Keyring().encrypt(PLAIN), lambda: Keyring().decrypt(stored)):
        with pytest.raises(SecretKeyError) as info:
            action()
        assert info.value.code == "secret_key_missing"
        assert "LEDGER_SECRET_KEY" in info.value.message and "generate-key" in info.value.message


def test_a_malformed_key_is_refused_when_the_keyring_is_made():
    for keys in ((Secret("not-a-key"), ()), (new_key(), (Secret("short"),))):
        with pytest.raises(SecretKeyError) as info:
            Keyring(*keys)
        assert info.value.code == "secret_key_invalid" and "generate-key" in info.value.message


def test_legacy_plain_values_are_read_and_upgraded_only_by_a_keyring_with_a_key():
    keyring = Keyring(new_key())
    assert keyring.decrypt("rk_live_legacy") == Keyring().decrypt("rk_live_legacy") == "rk_live_legacy"
    upgraded = keyring.upgrades("rk_live_legacy")
    assert upgraded.startswith(PREFIX) and keyring.decrypt(upgraded) == "rk_live_legacy"
    assert keyring.upgrades(upgraded) is None and Keyring().upgrades("rk_live_legacy") is None


def test_rotation_reads_with_an_old_key_and_writes_with_the_new_one():
    old, new = new_key(), new_key()
    stored = Keyring(old).encrypt(PLAIN)
    rotating = Keyring(new, (old,))
    assert rotating.decrypt(stored) == PLAIN
    rewrapped = rotating.rewrapped(stored)
    assert Keyring(new).decrypt(rewrapped) == PLAIN
    with pytest.raises(SecretKeyError):
        Keyring(old).decrypt(rewrapped)
    assert rotating.rewrapped(rewrapped) is None  # already under the new key
    assert Keyring(new).decrypt(rotating.rewrapped("legacy")) == "legacy"
    with pytest.raises(SecretKeyError):
        Keyring(new).rewrapped(stored)  # the old key is needed to read it


def test_settings_hand_the_keys_over():
    old, new = new_key(), new_key()
    keyring = Keyring.of(Settings.from_env({"LEDGER_SECRET_KEY": new.reveal(),
                                             "LEDGER_OLD_SECRET_KEYS": old.reveal()}))
    assert keyring == Keyring(new, (old,))
    assert new.reveal() not in repr(keyring)


def test_ledger_up_makes_a_key_file_readable_by_its_owner_only_and_keeps_it(tmp_path):
    data = tmp_path / "data"
    assert key_file_value(data, create=False) is None
    first = _with_secret_key(Settings(), data)
    path = data / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keyring.of(first).decrypt(Keyring.of(first).encrypt(PLAIN)) == PLAIN
    assert _with_secret_key(Settings(), data).secret_key == first.secret_key
    assert key_file_value(data, create=False) == first.secret_key.reveal()
    # LEDGER_SECRET_KEY wins over the file.
    mine = new_key()
    assert _with_secret_key(Settings(secret_key=mine), data).secret_key == mine
