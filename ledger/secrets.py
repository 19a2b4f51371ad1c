"""Secrets at rest: the credentials the database keeps (the Stripe API key and webhook
signing secret, the token signing key) are stored encrypted with ``LEDGER_SECRET_KEY``.

The encryption is Fernet (``cryptography``): AES-128-CBC with an HMAC-SHA256 over the
token, so a stored value that was altered, or read with the wrong key, is refused rather
than decrypted into garbage. ``MultiFernet`` decrypts with the current key or any of
``LEDGER_OLD_SECRET_KEYS`` and re-encrypts with the current one: that is key rotation
(`ledger secrets rotate`).

A stored value is ``enc:v1:<fernet token>``. A value without that prefix is a legacy plain
one (written before encryption existed); it is still read, and encrypted in place the first
time a process holding a key reads it. That rewrite is a compare-and-set (``UPDATE ... WHERE
value = <the plain value read>``): when several processes race, the first one wins and the
others' updates match nothing, while every one of them already holds the same plain value,
so it is safe without a lock. `ledger secrets rotate` encrypts any that are left, at once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ledger.db import Database
from ledger.errors import LedgerError
from ledger.settings import Secret, Settings

PREFIX = "enc:v1:"
KEY_FILE = "secret.key"
GENERATE_HINT = "generate one with `ledger secrets generate-key`"


class SecretKeyError(LedgerError):
    """The stored secrets cannot be used with the keys this process has: a deployment
    problem, not a transient one, so it is not retryable; the message says what to do."""

    typename = "InternalError"
    retryable = False


def generate_key() -> str:
    """A new random key, in the form ``LEDGER_SECRET_KEY`` takes (url-safe base64, 32 bytes)."""
    return Fernet.generate_key().decode()


def _fernet(key: Secret, name: str) -> Fernet:
    try:
        return Fernet(key.reveal().encode())
    except (ValueError, TypeError):
        raise SecretKeyError("secret_key_invalid", f"{name} is not a valid key (32 bytes in "
                             f"url-safe base64): {GENERATE_HINT}") from None


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX)


@dataclass(frozen=True)
class Keyring:
    """The current key (may be None: then nothing new can be stored) and the old ones."""

    current: Secret | None = None
    old: tuple[Secret, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> "Keyring":
        return cls(settings.secret_key or None, tuple(k for k in settings.old_secret_keys if k))

    def __post_init__(self):
        # Refuse a malformed key when the keyring is made (process start), not at first use.
        if self.current:
            _fernet(self.current, "LEDGER_SECRET_KEY")
        for key in self.old:
            _fernet(key, "a key of LEDGER_OLD_SECRET_KEYS")

    def _all(self) -> MultiFernet:
        keys = ([_fernet(self.current, "LEDGER_SECRET_KEY")] if self.current else []) + [
            _fernet(k, "LEDGER_OLD_SECRET_KEYS") for k in self.old]
        if not keys:
            raise SecretKeyError("secret_key_missing", "the database holds encrypted secrets "
                                 "but LEDGER_SECRET_KEY is not set: set it to the key they were "
                                 "encrypted with (`ledger up` keeps it in <data folder>/"
                                 f"{KEY_FILE}), or {GENERATE_HINT} for a new deployment")
        return MultiFernet(keys)

    def encrypt(self, plain: str) -> str:
        if not self.current:
            raise SecretKeyError("secret_key_missing", "LEDGER_SECRET_KEY is not set, so a "
                                 "secret cannot be stored encrypted: "
                                 f"{GENERATE_HINT} and set it for the API, the workers and the "
                                 "CLI (`ledger up` does this for you)")
        token = _fernet(self.current, "LEDGER_SECRET_KEY").encrypt(plain.encode())
        return PREFIX + token.decode()

    def decrypt(self, stored: str) -> str:
        """The plain value of a stored one (a legacy plain value is returned as it is)."""
        if not is_encrypted(stored):
            return stored
        try:
            return self._all().decrypt(stored[len(PREFIX):].encode()).decode()
        except InvalidToken:
            raise SecretKeyError("secret_key_wrong", "a stored secret does not decrypt with "
                                 "LEDGER_SECRET_KEY (nor LEDGER_OLD_SECRET_KEYS): set the key it "
                                 "was encrypted with; after changing keys, put the old one in "
                                 "LEDGER_OLD_SECRET_KEYS and run `ledger secrets rotate`") from None

    def rewrapped(self, stored: str) -> str | None:
        """``stored`` encrypted with the current key, or None when it is already (a legacy
        plain value is encrypted). Refuses, like ``decrypt``, what no key opens."""
        if is_encrypted(stored) and self.current:
            try:
                _fernet(self.current, "LEDGER_SECRET_KEY").decrypt(stored[len(PREFIX):].encode())
                return None
            except InvalidToken:
                pass
        return self.encrypt(self.decrypt(stored))

    def upgrades(self, stored: str) -> str | None:
        """What a reader writes back in place of a legacy plain value: its encryption when
        this keyring can encrypt, else None (kept as it is)."""
        if is_encrypted(stored) or not self.current:
            return None
        return self.encrypt(stored)


def encrypt_legacy(db: Database, column: sa.Column, where: Any, stored: str,
                   keyring: Keyring) -> None:
    """Replace a legacy plain value just read (``stored``, in ``column`` of the row
    ``where``) by its encryption, if this keyring can encrypt. Compare-and-set: when several
    processes do it at once the first wins and the others match nothing."""
    new = keyring.upgrades(stored)
    if new is None:
        return
    with db.transaction() as conn:
        conn.execute(column.table.update().where(where, column == stored)
                     .values({column.name: new}))


def key_file_value(data_dir: Path, *, create: bool) -> str | None:
    """The key kept in ``<data_dir>/secret.key`` (what `ledger up` uses when
    ``LEDGER_SECRET_KEY`` is unset); ``create``: write a new one first if there is none,
    readable by its owner only (0600, set when the file is made so it is never wider)."""
    path = data_dir / KEY_FILE
    if create and not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another `ledger up` on this folder won
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(generate_key() + "\n")
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
