"""`ledger secrets rotate` on the run's database: every stored secret re-encrypted with the
new key in one transaction, legacy plain values encrypted, tokens signed before still valid;
a value no key opens refuses the whole rotation. The run's key is restored after."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from api.auth import TokenService
from ledger import clients, service
from ledger.secret_store import STORED_SECRETS
from ledger.secrets import Keyring, SecretKeyError
from ledger.settings import Secret, Settings
from tests.fakes.stripe_server import API_KEY
from tests.integration.conftest import REPO
from tests.integration.stripe_helpers import stripe_wallet
from tests.keys import KEYRING, SECRET_KEY


def stored_values(db) -> list[str]:
    with db.transaction() as conn:
        return [v for s in STORED_SECRETS
                for v in conn.execute(sa.select(s.column).where(s.column.is_not(None))).scalars()]


def rotate(database_url: str, new: Secret, old: Secret) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "LEDGER_SECRET_KEY": new.reveal(),
           "LEDGER_OLD_SECRET_KEYS": old.reveal(), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "api.cli", "secrets", "rotate"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


def set_raw(db, link: str, column: str, value: str | None) -> None:
    with db.transaction() as conn:
        conn.execute(sa.text(f"UPDATE stripe_links SET {column} = :v WHERE link_id = "
                             "(SELECT id FROM links WHERE public_id = :l)"), {"v": value, "l": link})


def test_rotate_re_encrypts_every_stored_secret_and_tokens_stay_valid(db, database_url, unique):
    _, link = stripe_wallet(db, unique)
    _, legacy = stripe_wallet(db, unique)
    set_raw(db, legacy, "webhook_secret", "whsec_legacy_plain")  # from before encryption
    client = clients.create_client(db, "rotation", "write").client
    token = TokenService(db, keyring=KEYRING).issue(client, "write")
    new = Secret(Fernet.generate_key().decode())
    try:
        done = rotate(database_url, new, SECRET_KEY)
        assert done.returncode == 0, done.stderr
        assert "re-encrypted" in done.stdout
        values = stored_values(db)
        assert values and all(v.startswith("enc:") for v in values)
        assert "whsec_legacy_plain" not in "".join(values)
        for value in values:
            Keyring(new).decrypt(value)
            with pytest.raises(SecretKeyError):
                KEYRING.decrypt(value)
        rotated = service.stripe_settings(db, Settings(stripe_link_id=link, secret_key=new))
        assert rotated.api_key.reveal() == API_KEY
        assert service.stripe_settings(db, Settings(
            stripe_link_id=legacy, secret_key=new)).webhook_secret.reveal() == "whsec_legacy_plain"
        # The signing key is the same, only its encryption changed.
        assert TokenService(db, keyring=Keyring(new)).verify(token).client_id == client.id
    finally:
        back = rotate(database_url, SECRET_KEY, new)
        assert back.returncode == 0, back.stderr
    for value in stored_values(db):
        KEYRING.decrypt(value)


def test_a_value_no_key_opens_refuses_the_whole_rotation(db, unique):
    _, link = stripe_wallet(db, unique)
    foreign = Keyring(Secret(Fernet.generate_key().decode())).encrypt("rk_foreign")
    set_raw(db, link, "api_key", foreign)
    before = stored_values(db)
    try:
        with pytest.raises(SecretKeyError) as info:
            service.rotate_secrets(db, Keyring(Secret(Fernet.generate_key().decode()),
                                               (SECRET_KEY,)))
        assert info.value.code == "secret_key_wrong"
        assert "stripe_links.api_key" in info.value.message and "rk_foreign" not in info.value.message
        assert stored_values(db) == before
        # A process holding only the run's key would not start on this database.
        with pytest.raises(SecretKeyError):
            service.check_secrets(db, KEYRING)
    finally:
        set_raw(db, link, "api_key", None)
    assert service.check_secrets(db, KEYRING) >= 1
    with pytest.raises(SecretKeyError) as info:
        service.check_secrets(db, Keyring())
    assert info.value.code == "secret_key_missing"
