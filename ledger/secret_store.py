"""Every secret the database keeps, checked at start and rotated in one transaction.

The stored secrets are the Stripe links' API keys and webhook signing secrets, the
outbound webhook endpoints' signing secrets and the token signing key (ledger/secrets.py says how they are encrypted). A process checks at
start that it can decrypt them (``check_secrets``): a key that is missing or wrong is
found then, with what to do, not on the first webhook. ``rotate_secrets`` is what
`ledger secrets rotate` runs.
"""
from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.clients import api_signing_keys
from ledger.db import Database
from ledger.secrets import Keyring, SecretKeyError, is_encrypted


class StoredSecret(NamedTuple):
    """A column holding secrets, and the column naming its rows (for messages)."""

    column: sa.Column
    key: sa.Column


STORED_SECRETS = (
    StoredSecret(t.stripe_links.c.api_key, t.stripe_links.c.link_id),
    StoredSecret(t.stripe_links.c.webhook_secret, t.stripe_links.c.link_id),
    StoredSecret(api_signing_keys.c.secret, api_signing_keys.c.kid),
    StoredSecret(t.webhook_endpoints.c.secret, t.webhook_endpoints.c.id),
)


def _rows(conn: Connection, stored: StoredSecret, lock: bool = False):
    query = sa.select(stored.key, stored.column).where(stored.column.is_not(None))
    return conn.execute(query.with_for_update() if lock else query).all()


def check_secrets(db: Database, keyring: Keyring) -> int | None:
    """Refuse (``SecretKeyError``, saying what to do) when a stored secret is encrypted and
    the keyring cannot decrypt it; returns how many stored secrets are encrypted (None: the
    database could not be read). A process with no key starts when nothing needs
    decrypting."""
    encrypted = 0
    try:
        with db.transaction() as conn:
            values = [value for stored in STORED_SECRETS for _, value in _rows(conn, stored)]
    except sa.exc.DBAPIError:
        # Not migrated yet, or not reachable: nothing to check now; a request that needs a
        # secret says what is wrong.
        return None
    for value in values:
        if is_encrypted(value):
            keyring.decrypt(value)
            encrypted += 1
    return encrypted


def rotate_secrets(db: Database, keyring: Keyring) -> int:
    """Re-encrypt every stored secret with the keyring's current key (decrypting with it or
    any old key; legacy plain values are encrypted), in one transaction: a value no key
    opens refuses the whole rotation and nothing changes. Returns how many were rewritten.
    The secrets themselves do not change (tokens signed before stay valid)."""
    if not keyring.current:
        keyring.encrypt("")  # raises secret_key_missing, with what to do

    def run(conn: Connection) -> int:
        changed = 0
        for stored in STORED_SECRETS:
            for key, value in _rows(conn, stored, lock=True):
                try:
                    new = keyring.rewrapped(value)
                except SecretKeyError as exc:
                    raise SecretKeyError(exc.code, f"{stored.column.table.name}."
                                         f"{stored.column.name} ({stored.key.name} {key}): "
                                         f"{exc.message}") from None
                if new is not None:
                    conn.execute(stored.column.table.update().where(stored.key == key)
                                 .values({stored.column.name: new}))
                    changed += 1
        return changed

    return db.run(run)
