"""API client storage (`ledger.clients`) on the real database: hashed secrets, scopes,
revocation, and the token signing key."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from ledger import clients
from ledger.errors import BadRequestError, NotFoundError
from tests.keys import KEYRING


def test_create_stores_only_a_hash(db):
    created = clients.create_client(db, "  billing  ", "full")
    assert re.fullmatch(r"[a-z0-9]{26}", created.client_id)
    assert len(created.client_secret) >= 40
    assert created.client.name == "billing" and created.client.scope == "write"
    assert created.client_secret not in repr(created)
    with db.transaction() as conn:
        stored = conn.execute(sa.select(clients.api_clients.c.secret_hash).where(
            clients.api_clients.c.id == created.client_id)).scalar_one()
    assert created.client_secret not in stored and stored.startswith("$argon2")


def test_authenticate(db):
    created = clients.create_client(db, "auth", "read")
    ok = clients.authenticate(db, created.client_id, created.client_secret)
    assert ok is not None and ok.id == created.client_id and ok.scope == "read"
    assert clients.authenticate(db, created.client_id, created.client_secret + "x") is None
    assert clients.authenticate(db, "unknown-client", created.client_secret) is None
    assert clients.authenticate(db, "", "") is None


def test_revoke(db):
    created = clients.create_client(db, "revoked", "write")
    assert clients.active_client(db, created.client_id) is not None
    revoked = clients.revoke_client(db, created.client_id)
    assert revoked.revoked is not None and not revoked.active
    # Revoking again keeps the first time.
    assert clients.revoke_client(db, created.client_id).revoked == revoked.revoked
    assert clients.active_client(db, created.client_id) is None
    assert clients.authenticate(db, created.client_id, created.client_secret) is None
    listed = {c.id: c for c in clients.list_clients(db)}
    assert listed[created.client_id].revoked is not None
    assert created.client_id not in {c.id for c in clients.list_clients(db, include_revoked=False)}
    with pytest.raises(NotFoundError):
        clients.revoke_client(db, "no-such-client")


@pytest.mark.parametrize("name, scope, field", [("", "write", "name"), ("x", "admin", "scope")])
def test_bad_input_names_the_field(db, name, scope, field):
    with pytest.raises(BadRequestError) as info:
        clients.create_client(db, name, scope)
    assert info.value.field == field


def test_scopes():
    assert clients.scope_allows("write", "read") and clients.scope_allows("write", "write")
    assert clients.scope_allows("read", "read") and not clients.scope_allows("read", "write")
    assert clients.normalize_scope("Read-Only") == "read"


def test_signing_key_is_made_once(db):
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: clients.signing_key(db, KEYRING), range(16)))
    assert len(keys) == 1
    assert len(keys.pop()) == 64
