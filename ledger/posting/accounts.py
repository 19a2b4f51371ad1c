"""Opening an account ahead of its first entry, as a wallet backend creates a user's account
before money moves (seed 004). Entries open accounts on first use all the same; this only
makes the account and its balance in one currency exist, with nothing posted."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.amounts import CURRENCY_CODE
from ledger.errors import BadRequestError
from ledger.ledgers import Ledger
from ledger.posting.conditions import _ensure_accounts
from ledger.schema.model import Schema, resolve_path
from ledger.text import check_storable


@dataclass
class OpenedAccount:
    id: str
    path: str
    type: str
    consistency: str
    currency: str
    created: datetime
    # False when the account already held a balance in this currency: nothing was written.
    is_new: bool


def _currency(account, currency: Any) -> str:
    if currency is None:
        if account.currency_mode == "multi":
            raise BadRequestError("invalid_input", f"currency: account {account.path!r} is "
                                  "multi-currency; name the currency to open", field="currency")
        return account.currency
    if not isinstance(currency, str) or not CURRENCY_CODE.match(currency):
        raise BadRequestError("invalid_input", "currency: expected a currency code like "
                              f"\"EUR\" (letters, digits, _ or -), got {currency!r}",
                              field="currency")
    if account.currency_mode == "single" and currency != account.currency:
        raise BadRequestError("invalid_input", f"currency: account {account.path!r} holds "
                              f"only {account.currency}", field="currency")
    return currency


def open_account(conn: Connection, ledger: Ledger, schema: Schema, path: Any,
                 currency: Any = None) -> OpenedAccount:
    """Create the account at ``path`` (a plain account of the schema or an instance of a
    template, ``liabilities/users:alice/available``) and its zero balance in ``currency``
    (default: the account's own, for a single-currency account). Idempotent: opening an
    open account changes nothing and answers ``is_new=False``. A path the schema does not
    allow, or a currency the account cannot hold: ``BadRequestError`` naming the field."""
    if not isinstance(path, str):
        raise BadRequestError("invalid_input", "path: an account path is required", field="path")
    check_storable(path, "path")
    account = resolve_path(schema, path, "path")
    code = _currency(account, currency)
    account_id = _ensure_accounts(conn, ledger, {path: account})[path]
    # Strong or eventual alike: a balance row at zero, whose lines (none) all lie before any
    # time, as the engine makes one on an account's first line.
    inserted = conn.execute(sa.text(
        "INSERT INTO balances (account_id, currency, ledger_id, own, lines_until) "
        "VALUES (:a, :c, :l, 0, TIMESTAMPTZ '0001-01-01 00:00:00+00') "
        "ON CONFLICT DO NOTHING RETURNING account_id"),
        {"a": account_id, "c": code, "l": ledger.id}).first()
    a = t.accounts.c
    row = conn.execute(sa.select(a.id, a.path, a.type, a.consistency, a.created)
                       .where(a.id == account_id)).one()
    return OpenedAccount(str(row.id), row.path, row.type, row.consistency, code, row.created,
                         inserted is not None)
