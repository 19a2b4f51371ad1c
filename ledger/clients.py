"""API clients (OAuth2 client credentials) and the key that signs their access tokens.

Secrets are shown once, at creation, and stored only as argon2 hashes. The token signing
key is generated the first time it is needed and kept in the database (encrypted with
``LEDGER_SECRET_KEY``, see ledger/secrets.py), so every API process of one deployment signs
and verifies with the same key and a restart does not log anybody out.
"""
from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ledger.db import Database
from ledger.errors import BadRequestError, NotFoundError
from ledger.secrets import Keyring, encrypt_legacy

# Write implies read: a full-access client may call every endpoint.
SCOPES = ("write", "read")
SCOPE_ALIASES = {"full": "write", "write": "write", "read": "read", "read-only": "read",
                 "readonly": "read"}

metadata = sa.MetaData()

api_clients = sa.Table(
    "api_clients", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("secret_hash", sa.Text, nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
    sa.Column("revoked", sa.DateTime(timezone=True), nullable=True),
)

api_signing_keys = sa.Table(
    "api_signing_keys", metadata,
    sa.Column("kid", sa.Text, primary_key=True),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
)

_hasher = PasswordHasher()
_KEY_ID = "default"


@functools.cache
def dummy_hash() -> str:
    """Verified against when the client id is unknown, so a wrong id costs as much time as
    a wrong secret and response times do not reveal which client ids exist. Made once, on
    first use; the API makes it as it starts, so that even its first unknown id takes as
    long as any. Made at import, it cost every process 150 ms (argon2), each CLI command
    included."""
    return _hasher.hash("not-a-real-secret")


@dataclass
class ApiClient:
    id: str
    name: str
    scope: str
    created: datetime
    revoked: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked is None

    def to_dict(self) -> dict:
        return {"client_id": self.id, "name": self.name, "scope": self.scope,
                "created": self.created.isoformat(),
                "revoked": self.revoked.isoformat() if self.revoked else None}


@dataclass
class CreatedClient:
    """A new client with its secret: the only moment the secret exists in clear."""

    client: ApiClient
    # Kept out of repr so a stray log line or traceback never shows it.
    client_secret: str = field(repr=False)

    @property
    def client_id(self) -> str:
        return self.client.id


def normalize_scope(scope: str) -> str:
    canonical = SCOPE_ALIASES.get((scope or "").strip().lower())
    if canonical is None:
        raise BadRequestError("invalid_input",
                              f"scope: expected one of write (full access) or read, got {scope!r}",
                              field="scope")
    return canonical


def scope_allows(granted: str, needed: str) -> bool:
    return granted == needed or (granted == "write" and needed == "read")


def _row_to_client(row) -> ApiClient:
    return ApiClient(id=row.id, name=row.name, scope=row.scope, created=row.created,
                     revoked=row.revoked)


def _new_client_id() -> str:
    # Lowercase letters and digits only, so ids survive shells, URLs and HTTP Basic.
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(26))


def create_client(db: Database, name: str, scope: str = "write") -> CreatedClient:
    if not isinstance(name, str) or not name.strip():
        raise BadRequestError("invalid_input", "name: a client needs a non-empty name",
                              field="name")
    scope = normalize_scope(scope)
    client_id = _new_client_id()
    secret = secrets.token_urlsafe(32)
    secret_hash = _hasher.hash(secret)

    def insert(conn):
        return conn.execute(
            api_clients.insert()
            .values(id=client_id, name=name.strip(), secret_hash=secret_hash, scope=scope)
            .returning(*api_clients.c)
        ).one()

    row = db.run(insert)
    return CreatedClient(client=_row_to_client(row), client_secret=secret)


def list_clients(db: Database, include_revoked: bool = True) -> list[ApiClient]:
    def select(conn):
        q = sa.select(api_clients).order_by(api_clients.c.created, api_clients.c.id)
        if not include_revoked:
            q = q.where(api_clients.c.revoked.is_(None))
        return conn.execute(q).all()

    return [_row_to_client(r) for r in db.run(select)]


def revoke_client(db: Database, client_id: str) -> ApiClient:
    """Revoke a client; its tokens stop working at once (they are checked per request)."""

    def update(conn):
        row = conn.execute(
            api_clients.update()
            .where(api_clients.c.id == client_id)
            .values(revoked=sa.func.coalesce(api_clients.c.revoked, sa.func.now()))
            .returning(*api_clients.c)
        ).first()
        return row

    row = db.run(update)
    if row is None:
        raise NotFoundError("client_not_found", f"client_id: no API client {client_id!r}",
                            field="client_id")
    return _row_to_client(row)


def authenticate(db: Database, client_id: str, client_secret: str) -> ApiClient | None:
    """The active client with this id and secret, else None (never says which was wrong)."""

    def select(conn):
        return conn.execute(
            sa.select(api_clients).where(api_clients.c.id == client_id)).first()

    row = db.run(select) if client_id else None
    stored = row.secret_hash if row is not None else dummy_hash()
    try:
        _hasher.verify(stored, client_secret or "")
        ok = row is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row.revoked is not None:
        return None
    return _row_to_client(row)


def active_client(db: Database, client_id: str) -> ApiClient | None:
    """The client if it exists and is not revoked: checked on every authenticated request."""

    def select(conn):
        return conn.execute(
            sa.select(api_clients).where(api_clients.c.id == client_id,
                                         api_clients.c.revoked.is_(None))).first()

    row = db.run(select)
    return _row_to_client(row) if row is not None else None


def signing_key(db: Database, keyring: Keyring) -> str:
    """The token signing secret, generated on first use and stored encrypted with the
    keyring's key (``LEDGER_SECRET_KEY``). Concurrent first uses agree on one key: the
    insert does nothing when another process won, and everyone reads the winner. Rotating
    ``LEDGER_SECRET_KEY`` re-encrypts this value but never changes it, so tokens signed
    before a rotation stay valid until they expire."""
    select = sa.select(api_signing_keys.c.secret).where(api_signing_keys.c.kid == _KEY_ID)

    def get_or_create(conn):
        stored = conn.execute(select).scalar()
        if stored is None:
            conn.execute(
                pg_insert(api_signing_keys)
                .values(kid=_KEY_ID, secret=keyring.encrypt(secrets.token_hex(32)))
                .on_conflict_do_nothing(index_elements=["kid"])
            )
            stored = conn.execute(select).scalar_one()
        return stored

    stored = db.run(get_or_create)
    value = keyring.decrypt(stored)
    encrypt_legacy(db, api_signing_keys.c.secret, api_signing_keys.c.kid == _KEY_ID, stored,
                   keyring)
    return value
