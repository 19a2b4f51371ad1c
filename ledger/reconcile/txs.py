"""Syncing, deleting and reading external txs; the unreconciled ones of an account."""
from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.amounts import parse_amount, parse_time
from ledger.db import Database
from ledger.errors import BadRequestError, NotFoundError
from ledger.events.store import raise_events
from ledger.ledgers import load_ledger, parse_id
from ledger.reconcile.links import _find_link, _match_account, _resolve_linked
from ledger.reconcile.model import (
    _TX_COLUMNS,
    _TX_FROM,
    DEFAULT_PAGE,
    MAX_PAGE,
    MAX_TXS_PER_SYNC,
    Tx,
    TxInput,
    TxPage,
    _external_id,
    _link_id_of,
    _load_txs,
    _text,
    _tx,
)
from ledger.schema.model import resolve_queried_path
from ledger.schema.store import load_schema
from ledger.text import check_storable


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
    new_ids = conn.execute(sa.text(
        "INSERT INTO external_txs (link_id, account_id, external_id, description, amount, "
        "posted, created, updated) "
        "SELECT :link, u.a, u.e, u.d, u.amount, u.p, :now, :now FROM unnest("
        "CAST(:accounts AS bigint[]), CAST(:exts AS text[]), CAST(:descs AS text[]), "
        "CAST(:amounts AS numeric[]), CAST(:posted AS timestamptz[])) AS u(a, e, d, amount, p) "
        "ORDER BY u.a, u.e "
        "ON CONFLICT (account_id, external_id) WHERE deleted IS NULL DO NOTHING RETURNING id"),
        {"link": link_row.id, "now": now,
         "accounts": [items[i].account_id for i in order],
         "exts": [items[i].external_id for i in order],
         "descs": [items[i].description for i in order],
         "amounts": [str(items[i].amount) for i in order],
         "posted": [items[i].posted for i in order]}).scalars().all()
    raise_tx_events(conn, "tx.synced", new_ids)
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


def raise_tx_events(conn: Connection, type_: str, tx_ids: list[int]) -> None:
    """``type_`` (tx.synced, tx.unreconciled_for) for each tx, in this transaction: one event
    per ledger with an account known to mirror the tx's external account (a ledger account
    becomes known so at its first reconciliation); none known: one event of no ledger."""
    if tx_ids:
        raise_events(conn, [(r.ledger_id, type_, {
            "id": str(r.id), "link": r.link, "externalId": r.external_id, "account": r.account,
            "amount": str(r.amount), "posted": r.posted, "path": r.path})
            for r in conn.execute(_SYNCED, {"ids": tx_ids})])


_SYNCED = sa.text(
    "SELECT x.id, x.external_id, a.external_id AS account, x.amount, x.posted, "
    "  l.ledger_id, l.path, k.public_id AS link FROM external_txs x "
    "JOIN external_accounts a ON a.id = x.account_id JOIN links k ON k.id = x.link_id "
    "LEFT JOIN linked_accounts l ON l.external_account_id = x.account_id "
    "WHERE x.id = ANY(:ids) ORDER BY x.id, l.ledger_id")


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
                    {"id": parse_id(raw["id"]) or -1, "l": link_row.id}).first()
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


def find_txs(db: Database, link_id: str, external_id: str, account_external_id: str | None = None,
             include_deleted: bool = False) -> list[Tx]:
    """Txs of a link with this external id (in one account, when given), oldest first."""
    check_storable(external_id, "externalId")
    check_storable(account_external_id, "account.externalId")
    with db.transaction() as conn:
        link = _find_link(conn, link_id)
        rows = conn.execute(sa.text(
            f"SELECT {_TX_COLUMNS} {_TX_FROM} WHERE x.link_id = :l AND x.external_id = :e "
            "AND (CAST(:acc AS text) IS NULL OR a.external_id = :acc) "
            "AND (:deleted OR x.deleted IS NULL) ORDER BY x.id"),
            {"l": link.id, "e": external_id, "acc": account_external_id,
             "deleted": include_deleted}).all()
    return [_tx(r) for r in rows]


def _cursor(tx_id: int) -> str:
    return base64.urlsafe_b64encode(f"tx:{tx_id}".encode()).decode()


def _after(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        kind, _, value = text.partition(":")
        assert kind == "tx" and parse_id(value) is not None
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
        schema = load_schema(conn, ledger.id)
        check_storable(path, "ledgerAccount.path")
        account = resolve_queried_path(schema, path, "ledgerAccount.path")
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
