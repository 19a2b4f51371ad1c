"""Links, external accounts, synced external transactions (txs) and their reconciliation.

A *link* connects the ledger to an external financial system (a bank, Stripe). Its
*external accounts* hold *txs*: money movements that happened there, synced here by
``sync_custom_txs`` (or by the Stripe sync). A ledger account with ``linkedAccount`` in its
schema mirrors one external account, and each line posted to it matches exactly one tx:
``reconcile_tx`` posts the entry, taking the line's amount and the entry's ``posted`` from the
tx. A tx is reconciled at most once, whoever asks and however often (webhook, backfill,
retries): its row is locked in the reconciling transaction and remembers its entry.
"""
from __future__ import annotations

import base64
import copy
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ledger import posting
from ledger import tables as t
from ledger.db import Database
from ledger.errors import BadRequestError, NotFoundError
from ledger.model import EntryRequest, Ledger, PostResult, parse_amount, parse_time
from ledger.schema import Account, Schema, Text, resolve_path
from ledger.ledgers import load_ledger

MAX_TXS_PER_SYNC = 100
MAX_ACCOUNTS_PER_SYNC = 100
DEFAULT_PAGE = 20
MAX_PAGE = 200

_ID = re.compile(r"^[^\s]{1,256}$")


# ---------------------------------------------------------------------------- values

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


# ---------------------------------------------------------------------------- reading rows

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
    return link_id


def _find_link(conn: Connection, link_id: str, field: str = "link", lock: bool = False):
    q = sa.select(t.links).where(t.links.c.public_id == link_id)
    row = conn.execute(q.with_for_update(read=True) if lock else q).first()
    if row is None:
        raise NotFoundError("link_not_found", f"{field}: no link with id {link_id!r}", field=field)
    return row


def _text(value: Any, field: str, required: bool = True, limit: int = 1024) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequestError("invalid_input", f"{field}: expected a non-empty string", field=field)
    if len(value) > limit:
        raise BadRequestError("invalid_input", f"{field}: at most {limit} characters", field=field)
    return value


def _external_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise BadRequestError("invalid_input", f"{field}: expected an id (1 to 256 characters, no spaces), got {value!r}", field=field)
    return value


# ---------------------------------------------------------------------------- links

def create_custom_link(db: Database, ik: str, name: str, link_id: str | None = None) -> CreateLinkResult:
    """Create a custom link. Its id is ``link_id`` when given, else the ik, so a schema can
    name the link (``linkedAccount.linkId``) before it exists."""
    return db.run(lambda conn: _create_link(conn, ik, name, link_id, "custom"))


def _create_link(conn: Connection, ik: str, name: str, link_id: str | None, kind: str) -> CreateLinkResult:
    ik = _external_id(ik, "ik")
    name = _text(name, "name", limit=256)
    public_id = _external_id(link_id, "id") if link_id is not None else ik
    now = datetime.now(timezone.utc)
    new = conn.execute(pg_insert(t.links).values(public_id=public_id, ik=ik, name=name, kind=kind,
                                                 created=now)
                       .on_conflict_do_nothing().returning(t.links.c.id)).scalar()
    if new is not None:
        return CreateLinkResult(Link(public_id, name, kind, now), False)
    row = conn.execute(sa.select(t.links).where(t.links.c.ik == ik)).first()
    if row is None:
        raise BadRequestError("ik_conflict", f"id: a link with id {public_id!r} already exists under another ik", field="id")
    if (row.public_id, row.name, row.kind) != (public_id, name, kind):
        raise BadRequestError("ik_conflict", f"ik: link {ik!r} already exists with another id, name or kind", field="ik")
    return CreateLinkResult(_link(row), True)


def get_link(db: Database, link_id: str) -> Link:
    with db.transaction() as conn:
        return _link(_find_link(conn, link_id))


def list_external_accounts(db: Database, link_id: str) -> list[ExternalAccount]:
    with db.transaction() as conn:
        link = _find_link(conn, link_id)
        rows = conn.execute(sa.select(t.external_accounts).where(
            t.external_accounts.c.link_id == link.id).order_by(t.external_accounts.c.id)).all()
    return [_account(r, link.public_id) for r in rows]


# ---------------------------------------------------------------------------- accounts

def sync_custom_accounts(db: Database, link: Any, accounts: list[dict]) -> list[ExternalAccount]:
    """Create or update external accounts of a custom link, keyed by ``externalId`` (unique
    in the link, so syncing the same account again changes nothing). ``name`` may change;
    a ``currency`` once set may not."""
    link_id = _link_id_of(link, "link")
    if not isinstance(accounts, list) or not accounts:
        raise BadRequestError("invalid_input", "accounts: expected a non-empty list", field="accounts")
    if len(accounts) > MAX_ACCOUNTS_PER_SYNC:
        raise BadRequestError("invalid_input", f"accounts: at most {MAX_ACCOUNTS_PER_SYNC} a call, got {len(accounts)}", field="accounts")
    parsed = []
    seen: set[str] = set()
    for i, a in enumerate(accounts):
        f = f"accounts[{i}]"
        if not isinstance(a, dict):
            raise BadRequestError("invalid_input", f"{f}: expected an object", field=f)
        ext = _external_id(a.get("externalId"), f"{f}.externalId")
        if ext in seen:
            raise BadRequestError("invalid_input", f"{f}.externalId: {ext!r} is given twice", field=f"{f}.externalId")
        seen.add(ext)
        cur = a.get("currency")
        code = cur.get("code") if isinstance(cur, dict) else cur
        if code is not None and (not isinstance(code, str) or not re.match(r"^[A-Za-z0-9_-]{1,32}$", code)):
            raise BadRequestError("invalid_input", f"{f}.currency: invalid currency {cur!r}", field=f"{f}.currency")
        parsed.append((ext, _text(a.get("name"), f"{f}.name", required=False, limit=256), code))

    def run(conn: Connection) -> list[ExternalAccount]:
        row = _find_link(conn, link_id, lock=True)
        return _sync_accounts(conn, row, parsed)

    return db.run(run)


def _sync_accounts(conn: Connection, link_row, parsed: list[tuple[str, str | None, str | None]]) -> list[ExternalAccount]:
    now = datetime.now(timezone.utc)
    ea = t.external_accounts
    out = []
    for i, (ext, name, currency) in sorted(enumerate(parsed), key=lambda p: p[1][0]):
        conn.execute(pg_insert(ea).values(link_id=link_row.id, external_id=ext, name=name,
                                          currency=currency, created=now, updated=now)
                     .on_conflict_do_nothing(constraint="external_accounts_link_external_key"))
        row = conn.execute(sa.select(ea).where(ea.c.link_id == link_row.id, ea.c.external_id == ext)
                           .with_for_update()).first()
        if currency is not None and row.currency is not None and row.currency != currency:
            raise BadRequestError("immutable_field", f"accounts[{i}].currency: account {ext!r} holds {row.currency}; its currency cannot change", field=f"accounts[{i}].currency")
        if (name is not None and name != row.name) or (currency is not None and row.currency is None):
            row = conn.execute(ea.update().where(ea.c.id == row.id).values(
                name=name if name is not None else row.name,
                currency=row.currency or currency, updated=now).returning(*ea.c)).first()
        out.append((i, _account(row, link_row.public_id)))
    return [a for _, a in sorted(out, key=lambda p: p[0])]


def _match_account(conn: Connection, value: Any, field: str, link_row=None):
    """An external account from ``{linkId, id}`` or ``{linkId, externalId}`` (seed 002 uses
    both: ``id`` is our id of the account, or, within a link, its external id)."""
    if not isinstance(value, dict):
        raise BadRequestError("invalid_input", f"{field}: expected {{\"linkId\": ..., \"externalId\": ...}}", field=field)
    link_id = value.get("linkId")
    if link_id is not None:
        if not isinstance(link_id, str):
            raise BadRequestError("invalid_input", f"{field}.linkId: expected a string", field=f"{field}.linkId")
        if link_row is not None and link_id != link_row.public_id:
            raise BadRequestError("invalid_input", f"{field}.linkId: every tx of a call must belong to link {link_row.public_id!r}, not {link_id!r}", field=f"{field}.linkId")
        row = link_row if link_row is not None else _find_link(conn, link_id, f"{field}.linkId")
    else:
        row = link_row
    ea = t.external_accounts
    ext, acc_id = value.get("externalId"), value.get("id")
    found = None
    if isinstance(acc_id, str) and acc_id.isdigit():
        q = sa.select(ea).where(ea.c.id == int(acc_id))
        if row is not None:
            q = q.where(ea.c.link_id == row.id)
        found = conn.execute(q).first()
    if found is None and row is not None and (isinstance(ext, str) or isinstance(acc_id, str)):
        found = conn.execute(sa.select(ea).where(ea.c.link_id == row.id,
                                                 ea.c.external_id == (ext if isinstance(ext, str) else acc_id))).first()
    if found is None:
        shown = ext if isinstance(ext, str) else acc_id
        raise NotFoundError("external_account_not_found", f"{field}: no external account {shown!r} in link {row.public_id if row is not None else link_id!r}; sync it with syncCustomAccounts first", field=field)
    if row is None:
        row = conn.execute(sa.select(t.links).where(t.links.c.id == found.link_id)).first()
    return row, found


# ---------------------------------------------------------------------------- txs

@dataclass
class TxInput:
    account_id: int
    external_id: str
    description: str | None
    amount: int
    posted: datetime


def _check_tx_list(txs: Any) -> None:
    if not isinstance(txs, list) or not txs:
        raise BadRequestError("invalid_input", "txs: expected a non-empty list", field="txs")
    if len(txs) > MAX_TXS_PER_SYNC:
        raise BadRequestError("invalid_input", f"txs: at most {MAX_TXS_PER_SYNC} txs a call, got {len(txs)}", field="txs")


def sync_custom_txs(db: Database, link: Any, txs: list[dict]) -> list[Tx]:
    """Sync txs of a custom link (up to 100 a call, from several of its accounts).

    ``externalId`` is unique within its account, so syncing a tx again changes nothing; a
    new ``description`` replaces the old one; ``amount`` and ``posted`` are immutable, and a
    call that changes them is refused whole."""
    link_id = _link_id_of(link, "link")
    _check_tx_list(txs)

    def run(conn: Connection) -> list[Tx]:
        link_row = _find_link(conn, link_id, lock=True)
        items = []
        for i, raw in enumerate(txs):
            f = f"txs[{i}]"
            if not isinstance(raw, dict):
                raise BadRequestError("invalid_input", f"{f}: expected an object", field=f)
            _, acc = _match_account(conn, raw.get("account"), f"{f}.account", link_row)
            items.append(TxInput(
                acc.id, _external_id(raw.get("externalId"), f"{f}.externalId"),
                _text(raw.get("description"), f"{f}.description", required=False),
                parse_amount(raw.get("amount"), f"{f}.amount"),
                _posted(raw.get("posted"), f"{f}.posted")))
        return sync_txs(conn, link_row, items)

    return db.run(run)


def _posted(value: Any, field: str) -> datetime:
    if value is None:
        raise BadRequestError("invalid_input", f"{field}: the time the tx happened is required", field=field)
    return parse_time(value, field)


def sync_txs(conn: Connection, link_row, items: list[TxInput], field: str = "txs") -> list[Tx]:
    """Insert or refresh txs in the caller's transaction; returns them in input order."""
    seen: dict[tuple[int, str], int] = {}
    for i, it in enumerate(items):
        key = (it.account_id, it.external_id)
        if key in seen:
            raise BadRequestError("invalid_input", f"{field}[{i}].externalId: tx {it.external_id!r} of this account is given twice (also at {seen[key]})", field=f"{field}[{i}].externalId")
        seen[key] = i
    now = datetime.now(timezone.utc)
    # Sorted, so two syncs sharing txs wait on each other in one order.
    order = sorted(range(len(items)), key=lambda i: (items[i].account_id, items[i].external_id))
    conn.execute(sa.text(
        "INSERT INTO external_txs (link_id, account_id, external_id, description, amount, "
        "posted, created, updated) "
        "SELECT :link, u.a, u.e, u.d, u.amount, u.p, :now, :now FROM unnest("
        "CAST(:accounts AS bigint[]), CAST(:exts AS text[]), CAST(:descs AS text[]), "
        "CAST(:amounts AS numeric[]), CAST(:posted AS timestamptz[])) AS u(a, e, d, amount, p) "
        "ORDER BY u.a, u.e "
        "ON CONFLICT (account_id, external_id) WHERE deleted IS NULL DO NOTHING"),
        {"link": link_row.id, "now": now,
         "accounts": [items[i].account_id for i in order],
         "exts": [items[i].external_id for i in order],
         "descs": [items[i].description for i in order],
         "amounts": [str(items[i].amount) for i in order],
         "posted": [items[i].posted for i in order]})
    rows = {(r.account_id, r.external_id): r for r in conn.execute(sa.text(
        "SELECT x.id, x.account_id, x.external_id, x.description, x.amount, x.posted, "
        "a.external_id AS account_external_id FROM external_txs x "
        "JOIN external_accounts a ON a.id = x.account_id "
        "JOIN unnest(CAST(:accounts AS bigint[]), CAST(:exts AS text[])) AS u(a, e) "
        "ON x.account_id = u.a AND x.external_id = u.e "
        "WHERE x.deleted IS NULL ORDER BY x.id FOR UPDATE OF x"),
        {"accounts": [it.account_id for it in items], "exts": [it.external_id for it in items]})}
    renamed = []
    for i, it in enumerate(items):
        r = rows[(it.account_id, it.external_id)]
        what = f"tx {it.external_id!r} of account {r.account_external_id!r}"
        if int(r.amount) != it.amount:
            raise BadRequestError("immutable_field", f"{field}[{i}].amount: {what} was synced with amount {int(r.amount)}, not {it.amount}; amount and posted are immutable (delete the tx and sync it again to replace it)", field=f"{field}[{i}].amount")
        if r.posted != it.posted:
            raise BadRequestError("immutable_field", f"{field}[{i}].posted: {what} was synced as posted {r.posted.isoformat()}, not {it.posted.isoformat()}; amount and posted are immutable (delete the tx and sync it again to replace it)", field=f"{field}[{i}].posted")
        if it.description is not None and it.description != r.description:
            renamed.append((r.id, it.description))
    for tx_id, description in renamed:
        conn.execute(t.external_txs.update().where(t.external_txs.c.id == tx_id)
                     .values(description=description, updated=now))
    loaded = _load_txs(conn, [r.id for r in rows.values()])
    return [loaded[rows[(it.account_id, it.external_id)].id] for it in items]


def delete_custom_txs(db: Database, link: Any, txs: list[dict]) -> list[Tx]:
    """Delete synced txs (``{"id"}`` or ``{"account", "externalId"}``). A deleted tx cannot
    be reconciled; syncing its externalId again creates a new tx. A reconciled tx stays:
    its amount is in the books."""
    link_id = _link_id_of(link, "link")
    _check_tx_list(txs)

    def run(conn: Connection) -> list[Tx]:
        link_row = _find_link(conn, link_id, lock=True)
        ids = []
        for i, raw in enumerate(txs):
            f = f"txs[{i}]"
            if not isinstance(raw, dict):
                raise BadRequestError("invalid_input", f"{f}: expected an object", field=f)
            if raw.get("account") is None and isinstance(raw.get("id"), str):
                row = conn.execute(sa.text(
                    "SELECT id FROM external_txs WHERE id = :id AND link_id = :l"),
                    {"id": int(raw["id"]) if raw["id"].isdigit() else -1, "l": link_row.id}).first()
                shown = raw["id"]
            else:
                _, acc = _match_account(conn, raw.get("account"), f"{f}.account", link_row)
                ext = _external_id(raw.get("externalId"), f"{f}.externalId")
                row = conn.execute(sa.text(
                    "SELECT id FROM external_txs WHERE account_id = :a AND external_id = :e "
                    "AND deleted IS NULL"), {"a": acc.id, "e": ext}).first()
                shown = ext
            if row is None:
                raise NotFoundError("tx_not_found", f"{f}: no live tx {shown!r} in link {link_id!r}", field=f)
            ids.append(row.id)
        now = datetime.now(timezone.utc)
        locked = conn.execute(sa.text(
            "SELECT x.id, x.external_id, x.entry_id, e.reversed_by_id FROM external_txs x "
            "LEFT JOIN entries e ON e.id = x.entry_id WHERE x.id = ANY(:ids) "
            "ORDER BY x.id FOR UPDATE OF x"), {"ids": ids}).all()
        for r in locked:
            if r.entry_id is not None and r.reversed_by_id is None:
                i = ids.index(r.id)
                raise BadRequestError("tx_reconciled", f"txs[{i}]: tx {r.external_id!r} is reconciled (entry {r.entry_id}); a reconciled tx cannot be deleted", field=f"txs[{i}]")
        conn.execute(sa.text("UPDATE external_txs SET deleted = :now, updated = :now "
                             "WHERE id = ANY(:ids) AND deleted IS NULL"), {"ids": ids, "now": now})
        loaded = _load_txs(conn, ids)
        return [loaded[i] for i in ids]

    return db.run(run)


def get_tx(db: Database, tx_id: str) -> Tx:
    with db.transaction() as conn:
        found = _load_txs(conn, [int(tx_id)] if str(tx_id).isdigit() else [])
    if not found:
        raise NotFoundError("tx_not_found", f"id: no tx {tx_id!r}", field="id")
    return next(iter(found.values()))


def find_txs(db: Database, link_id: str, external_id: str, account_external_id: str | None = None,
             include_deleted: bool = False) -> list[Tx]:
    """Txs of a link with this external id (in one account, when given), oldest first."""
    with db.transaction() as conn:
        link = _find_link(conn, link_id)
        rows = conn.execute(sa.text(
            f"SELECT {_TX_COLUMNS} {_TX_FROM} WHERE x.link_id = :l AND x.external_id = :e "
            "AND (CAST(:acc AS text) IS NULL OR a.external_id = :acc) "
            "AND (:deleted OR x.deleted IS NULL) ORDER BY x.id"),
            {"l": link.id, "e": external_id, "acc": account_external_id,
             "deleted": include_deleted}).all()
    return [_tx(r) for r in rows]


# ---------------------------------------------------------------------------- linked accounts

def _render(text: str, params: dict[str, str], field: str, what: str = "the linked account") -> str:
    try:
        return Text.parse(text).render(params)
    except KeyError as exc:
        name = exc.args[0]
        raise BadRequestError("missing_parameter", f"entry.parameters.{name}: {what} of {field} needs parameter {name!r}", field=f"entry.parameters.{name}") from None


def _resolve_linked(conn: Connection, account: Account, params: dict[str, str], field: str,
                    currency: str | None):
    """(link row, external account row) a linked ledger account mirrors."""
    linked = account.linked
    if isinstance(linked, str):
        # Seed 000's short form names a configured (native) link; its external account is
        # the one in the ledger account's currency (the Stripe balance in that currency).
        link_row = _find_link(conn, linked, f"{field} (linkedAccount {linked!r})")
        rows = conn.execute(sa.select(t.external_accounts).where(
            t.external_accounts.c.link_id == link_row.id).order_by(t.external_accounts.c.id)).all()
        match = [r for r in rows if currency and r.currency and r.currency.upper() == currency.upper()]
        if not match and len(rows) == 1 and rows[0].currency is None:
            match = rows
        if not match:
            raise NotFoundError("external_account_not_found", f"{field}: link {linked!r} has no external account in {currency}; nothing was synced for it yet", field=field)
        return link_row, match[0]
    link_id = _render(linked["linkId"], params, field)
    ext = _render(linked["externalId"], params, field)
    link_row = _find_link(conn, link_id, f"{field} (linkedAccount.linkId)")
    row = conn.execute(sa.select(t.external_accounts).where(
        t.external_accounts.c.link_id == link_row.id,
        t.external_accounts.c.external_id == ext)).first()
    if row is None:
        raise NotFoundError("external_account_not_found", f"{field}: link {link_id!r} has no external account {ext!r}; sync it with syncCustomAccounts first", field=field)
    return link_row, row


@dataclass
class _LinkedLine:
    key: str
    path: str
    account: Account
    tx_external_id: str
    amount_expr: Any  # schema Expr or None
    field: str


def _linked_lines(schema: Schema, request: EntryRequest, tx_ref: str | None) -> list[_LinkedLine]:
    et = schema.entry_types.get(request.type)
    if et is None:
        raise BadRequestError("entry_type_not_found", f"entry.type: no entry type {request.type!r} in schema {schema.key!r}", field="entry.type")
    names = {k: str(v) for k, v in request.parameters.items()}
    out = []

    def tx_of(text: str | None, field: str) -> str:
        if text is not None:
            return _render(text, names, field, "the tx")
        if tx_ref is None:
            raise BadRequestError("invalid_input", f"{field}: this line takes its tx from the call; name the tx (tx.externalId)", field="entry.tx")
        return tx_ref

    if et.lines is None:
        for i, line in enumerate(request.lines or ()):
            f = f"entry.lines[{i}]"
            acc = resolve_path(schema, line.account_path, f"{f}.account.path")
            if acc.linked is None:
                continue
            out.append(_LinkedLine(line.key, line.account_path, acc,
                                   line.tx if line.tx else tx_of(None, f), None, f))
    else:
        for lt in et.lines:
            acc = schema.accounts[lt.path.account]
            if acc.linked is None:
                continue
            f = f"entry.lines.{lt.key}"
            try:
                path = lt.path.render(names)
            except KeyError as exc:
                raise BadRequestError("missing_parameter", f"entry.parameters.{exc.args[0]}: entry type {et.type!r} needs it", field=f"entry.parameters.{exc.args[0]}") from None
            out.append(_LinkedLine(lt.key, path, acc, tx_of(lt.tx.source() if lt.tx else None, f),
                                   lt.amount, f))
    if not out:
        raise BadRequestError("invalid_input", f"entry.type: {request.type!r} posts to no linked account; post it with addLedgerEntry", field="entry.type")
    return out


def _record_link(conn: Connection, ledger: Ledger, path: str, account_row, field: str) -> None:
    conn.execute(pg_insert(t.linked_accounts).values(
        ledger_id=ledger.id, path=path, external_account_id=account_row.id).on_conflict_do_nothing())
    held = conn.execute(sa.select(t.linked_accounts.c.external_account_id).where(
        t.linked_accounts.c.ledger_id == ledger.id, t.linked_accounts.c.path == path)).scalar()
    if held != account_row.id:
        raise BadRequestError("invalid_input", f"{field}: ledger account {path!r} already mirrors another external account; a linked account mirrors exactly one", field=field)


# ---------------------------------------------------------------------------- reconcile

def _parse_request(request: Any) -> tuple[EntryRequest, bool, str | None]:
    """(request, whether the caller gave an ik, the tx the call names)."""
    if isinstance(request, EntryRequest):
        return copy.deepcopy(request), bool(request.ik), None
    if not isinstance(request, dict):
        raise BadRequestError("invalid_input", "entry: expected an object", field="entry")
    ik = request.get("ik")
    parsed = EntryRequest.from_input(request, "entry", ik=ik if ik else "-")
    tx = request.get("tx")
    tx_ref = tx.get("externalId") if isinstance(tx, dict) else tx
    if tx_ref is not None and not isinstance(tx_ref, str):
        raise BadRequestError("invalid_input", "entry.tx.externalId: expected a string", field="entry.tx.externalId")
    return parsed, bool(ik), tx_ref or None


def reconcile_tx(db: Database, ledger_ik: str, request: Any, tx: str | None = None) -> PostResult:
    """Post an entry whose lines on linked accounts each match one synced tx.

    ``request`` is an EntryRequest or the wire ``LedgerEntryInput`` (``ik`` and ``posted``
    optional). ``tx`` names the tx of lines whose schema does not (native links, seed 000).
    Line amounts and ``posted`` come from the txs; the ik defaults to the tx's external id.
    Reconciling a reconciled tx again returns the first result with ``is_ik_replay``."""
    parsed, ik_given, tx_ref = _parse_request(request)
    tx_ref = tx if tx is not None else tx_ref

    def run(conn: Connection) -> PostResult:
        return reconcile_in(conn, load_ledger(conn, ledger_ik), copy.deepcopy(parsed), ik_given, tx_ref)

    return db.run(run)


def reconcile_in(conn: Connection, ledger: Ledger, request: EntryRequest, ik_given: bool,
                 tx_ref: str | None) -> PostResult:
    """``reconcile_tx`` in the caller's transaction (the Stripe sync uses it directly)."""
    schema = posting.load_schema(conn, ledger.id)
    linked = _linked_lines(schema, request, tx_ref)
    names = {k: str(v) for k, v in request.parameters.items()}

    link_ids = set()
    wanted: list[tuple[_LinkedLine, Any]] = []
    for ll in linked:
        link_row, acc_row = _resolve_linked(conn, ll.account, names, ll.field, ll.account.currency)
        if acc_row.currency and ll.account.currency and acc_row.currency.upper() != ll.account.currency.upper():
            raise BadRequestError("invalid_input", f"{ll.field}: external account {acc_row.external_id!r} holds {acc_row.currency}, ledger account {ll.path!r} holds {ll.account.currency}", field=ll.field)
        link_ids.add(link_row.id)
        wanted.append((ll, acc_row))
    if len(link_ids) > 1:
        raise BadRequestError("invalid_input", "entry: the txs of one entry must all belong to the same link", field="entry")

    keys = [(acc.id, ll.tx_external_id) for ll, acc in wanted]
    if len(set(keys)) < len(keys):
        raise BadRequestError("invalid_input", "entry.lines: two lines name the same tx; each tx matches exactly one line", field="entry.lines")
    # The row locks serialize every reconciliation of these txs (webhook, backfill, API):
    # whoever comes second sees the first one's entry and replays it.
    rows = {(r.account_id, r.external_id): r for r in conn.execute(sa.text(
        "SELECT x.id, x.account_id, x.external_id, x.amount, x.posted, x.ledger_id, x.entry_id, "
        "e.reversed_by_id IS NOT NULL AS entry_reversed "
        "FROM external_txs x JOIN unnest(CAST(:a AS bigint[]), CAST(:e AS text[])) AS u(a, e) "
        "ON x.account_id = u.a AND x.external_id = u.e LEFT JOIN entries e ON e.id = x.entry_id "
        "WHERE x.deleted IS NULL ORDER BY x.id FOR UPDATE OF x"),
        {"a": [k[0] for k in keys], "e": [k[1] for k in keys]})}
    for (ll, acc), key in zip(wanted, keys):
        if key not in rows:
            was_deleted = conn.execute(sa.text(
                "SELECT 1 FROM external_txs WHERE account_id = :a AND external_id = :e LIMIT 1"),
                {"a": key[0], "e": key[1]}).first()
            if was_deleted:
                raise BadRequestError("tx_deleted", f"{ll.field}: tx {key[1]!r} of account {acc.external_id!r} was deleted; a deleted tx cannot be reconciled (sync it again to bring it back)", field=ll.field)
            raise NotFoundError("tx_not_found", f"{ll.field}: no tx {key[1]!r} in external account {acc.external_id!r}; sync it first", field=ll.field)

    txs = [rows[k] for k in keys]
    posted = {r.posted for r in txs}
    if len(posted) > 1:
        raise BadRequestError("invalid_input", "entry: the txs of one entry must have the same posted time; reconcile them in separate entries", field="entry")
    tx_posted = txs[0].posted
    if request.posted is not None and request.posted != tx_posted:
        raise BadRequestError("invalid_input", f"entry.posted: the entry is posted when its tx was ({tx_posted.isoformat()}); leave posted out", field="entry.posted")
    if not ik_given:
        ids = sorted({r.external_id for r in txs})
        request.ik = ids[0] if len(ids) == 1 else ",".join(ids)

    # A tx whose entry was reversed is unreconciled again; posting under the same ik then
    # makes the entry's next version (see posting), which becomes the tx's entry.
    done = {r.entry_id if r.entry_id is not None and not r.entry_reversed else None for r in txs}
    latest = conn.execute(sa.text(
        "SELECT id, reversed_by_id IS NOT NULL AS reversed FROM entries "
        "WHERE ledger_id = :l AND ik = :ik ORDER BY ik_version DESC LIMIT 1"),
        {"l": ledger.id, "ik": request.ik}).first()
    if done == {None}:
        if latest is not None and not latest.reversed:
            raise BadRequestError("ik_conflict", f"ik {request.ik!r} already names an entry of this ledger that does not reconcile this tx; give the reconciliation its own ik", field="ik")
    elif len(done) > 1 or None in done or txs[0].ledger_id != ledger.id or latest is None \
            or latest.id not in done:
        other = next(r for r in txs if r.entry_id is not None and not r.entry_reversed)
        raise BadRequestError("tx_already_reconciled", f"tx {other.external_id!r} is already reconciled by another entry; a tx is reconciled at most once", field="entry")

    _infer_amount_parameters(request, [(ll, int(rows[k].amount)) for (ll, _), k in zip(wanted, keys)])
    request.posted = tx_posted
    for (ll, acc), _ in zip(wanted, keys):
        _record_link(conn, ledger, ll.path, acc, ll.field)
    resolved = {ll.key: (ll.tx_external_id, int(rows[k].amount)) for (ll, _), k in zip(wanted, keys)}
    result = posting.post_entries(conn, ledger, [request], txs=resolved)[0]
    if not result.is_ik_replay:
        line_ids = {line.key: int(line.id) for line in result.lines}
        now = datetime.now(timezone.utc)
        for (ll, _), k in zip(wanted, keys):
            conn.execute(t.external_txs.update().where(t.external_txs.c.id == rows[k].id).values(
                ledger_id=ledger.id, entry_id=int(result.entry.id), line_id=line_ids[ll.key],
                reconciled=now, updated=now))
    return result


def _infer_amount_parameters(request: EntryRequest, lines: list[tuple[_LinkedLine, int]]) -> None:
    """Seed 000 reconciles ``deposit`` (amount ``{{amount}}``) giving only ``user_id``: the
    one unknown parameter of a linked line's amount is whatever makes it the tx's amount."""
    for ll, tx_amount in lines:
        expr = ll.amount_expr
        if expr is None:
            continue
        unknown = [(p, c) for p, c in expr.coeffs if p not in request.parameters]
        if len(unknown) != 1:
            continue
        try:
            rest = expr.const + sum(c * parse_amount(request.parameters[p], f"entry.parameters.{p}")
                                    for p, c in expr.coeffs if p in request.parameters)
        except BadRequestError:
            continue  # compile_entry reports the bad parameter
        p, c = unknown[0]
        if (tx_amount - rest) % c == 0:
            request.parameters[p] = str((tx_amount - rest) // c)


# ---------------------------------------------------------------------------- unreconciled

def _cursor(tx_id: int) -> str:
    return base64.urlsafe_b64encode(f"tx:{tx_id}".encode()).decode()


def _after(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        kind, _, value = text.partition(":")
        assert kind == "tx"
        return int(value)
    except Exception:
        raise BadRequestError("invalid_input", f"after: {cursor!r} is not a cursor this list returned", field="after") from None


def unreconciled_txs(db: Database, ledger_ik: str, path: str, first: int | None = None,
                     after: str | None = None) -> TxPage:
    """Synced txs of the external account a linked ledger account mirrors that no entry
    reconciles yet, oldest first, a page at a time (``after`` = the previous end_cursor)."""
    first = DEFAULT_PAGE if first is None else first
    if not isinstance(first, int) or isinstance(first, bool) or not 1 <= first <= MAX_PAGE:
        raise BadRequestError("invalid_input", f"first: expected 1 to {MAX_PAGE}, got {first!r}", field="first")
    start = _after(after)
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        schema = posting.load_schema(conn, ledger.id)
        account = resolve_path(schema, path, "ledgerAccount.path")
        if account.linked is None:
            raise BadRequestError("not_linked", f"ledgerAccount.path: {path!r} is not a linked account", field="ledgerAccount.path")
        account_id = conn.execute(sa.select(t.linked_accounts.c.external_account_id).where(
            t.linked_accounts.c.ledger_id == ledger.id, t.linked_accounts.c.path == path)).scalar()
        if account_id is None:
            try:
                _, row = _resolve_linked(conn, account, {}, "ledgerAccount.path", account.currency)
            except (NotFoundError, BadRequestError):
                # A template link's account is known once an entry names its parameters.
                return TxPage([], None, False)
            account_id = row.id
        rows = conn.execute(sa.text(
            f"SELECT {_TX_COLUMNS} {_TX_FROM} WHERE x.account_id = :a AND x.deleted IS NULL "
            "AND (x.entry_id IS NULL OR EXISTS (SELECT 1 FROM entries e WHERE e.id = x.entry_id "
            "AND e.reversed_by_id IS NOT NULL)) AND x.id > :after ORDER BY x.id LIMIT :n"),
            {"a": account_id, "after": start, "n": first + 1}).all()
    txs = [_tx(r) for r in rows[:first]]
    return TxPage(txs, _cursor(int(txs[-1].id)) if txs else None, len(rows) > first)
