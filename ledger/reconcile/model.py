"""Links, external accounts and txs, as rows and as values."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.errors import BadRequestError
from ledger.text import check_storable

MAX_TXS_PER_SYNC = 100


MAX_ACCOUNTS_PER_SYNC = 100


DEFAULT_PAGE = 20


MAX_PAGE = 200


_ID = re.compile(r"^[^\s]{1,256}$")


@dataclass
class Link:
    id: str
    name: str
    kind: str  # "custom" | "stripe"
    created: datetime


@dataclass
class CreateLinkResult:
    link: Link
    is_ik_replay: bool


@dataclass
class ExternalAccount:
    id: str
    link_id: str
    external_id: str
    name: str | None
    currency: str | None
    created: datetime


@dataclass
class Tx:
    """A synced external transaction. ``entry_ids`` / ``line_ids`` name the entry and line
    that reconciled it (empty until then); ``deleted`` is set once deleted."""

    id: str
    link_id: str
    account_id: str
    account_external_id: str
    external_id: str
    description: str | None
    amount: int
    currency: str | None
    posted: datetime
    created: datetime
    deleted: datetime | None = None
    ledger_ik: str | None = None
    entry_ids: list[str] = field(default_factory=list)
    line_ids: list[str] = field(default_factory=list)
    # The reconciling entry was reversed since: the tx is unreconciled again.
    entry_reversed: bool = False

    @property
    def date(self) -> str:
        return self.posted.date().isoformat()

    @property
    def reconciled(self) -> bool:
        return bool(self.entry_ids) and not self.entry_reversed


@dataclass
class TxPage:
    txs: list[Tx]
    end_cursor: str | None
    has_next_page: bool


@dataclass
class TxInput:
    account_id: int
    external_id: str
    description: str | None
    amount: int
    posted: datetime


_TX_COLUMNS = (
    "x.id, x.external_id, x.description, x.amount, x.posted, x.created, x.deleted, "
    "x.entry_id, x.line_id, a.id AS account_id, a.external_id AS account_external_id, "
    "a.currency, k.public_id AS link_public_id, g.ik AS ledger_ik, "
    "(SELECT e.reversed_by_id IS NOT NULL FROM entries e WHERE e.id = x.entry_id) AS entry_reversed")


_TX_FROM = (
    "FROM external_txs x JOIN external_accounts a ON a.id = x.account_id "
    "JOIN links k ON k.id = x.link_id LEFT JOIN ledgers g ON g.id = x.ledger_id")


def _tx(r) -> Tx:
    return Tx(str(r.id), r.link_public_id, str(r.account_id), r.account_external_id,
              r.external_id, r.description, int(r.amount), r.currency, r.posted, r.created,
              r.deleted, r.ledger_ik,
              [str(r.entry_id)] if r.entry_id is not None else [],
              [str(r.line_id)] if r.line_id is not None else [], bool(r.entry_reversed))


def _load_txs(conn: Connection, ids: list[int]) -> dict[int, Tx]:
    if not ids:
        return {}
    rows = conn.execute(sa.text(f"SELECT {_TX_COLUMNS} {_TX_FROM} WHERE x.id = ANY(:ids)"),
                        {"ids": ids}).all()
    return {r.id: _tx(r) for r in rows}


def _link(r) -> Link:
    return Link(r.public_id, r.name, r.kind, r.created)


def _account(r, link_public_id: str) -> ExternalAccount:
    return ExternalAccount(str(r.id), link_public_id, r.external_id, r.name, r.currency, r.created)


def _link_id_of(value: Any, field: str) -> str:
    """``LinkMatchInput`` (``{"id": ...}``) or a bare id."""
    link_id = value.get("id") if isinstance(value, dict) else value
    if not isinstance(link_id, str) or not link_id:
        raise BadRequestError("invalid_input", f"{field}.id: a link id is required", field=f"{field}.id")
    check_storable(link_id, f"{field}.id")
    return link_id


def _text(value: Any, field: str, required: bool = True, limit: int = 1024) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequestError("invalid_input", f"{field}: expected a non-empty string", field=field)
    if len(value) > limit:
        raise BadRequestError("invalid_input", f"{field}: at most {limit} characters", field=field)
    check_storable(value, field)
    return value


def _external_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise BadRequestError("invalid_input", f"{field}: expected an id (1 to 256 characters, no spaces), got {value!r}", field=field)
    check_storable(value, field)
    return value
