"""Reconciling: posting the entry that matches each line on a linked account to one tx."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.amounts import parse_amount
from ledger.commands import EntryRequest
from ledger.db import Database
from ledger.errors import BadRequestError, NotFoundError
from ledger.ledgers import Ledger, load_ledger
from ledger.posting.engine import post_entries
from ledger.posting.model import PostResult
from ledger.reconcile.infer import choose_entry_type
from ledger.reconcile.links import _record_link, _render, _resolve_linked
from ledger.schema.model import Account, Schema, resolve_path
from ledger.schema.store import load_schema


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


def _parse_request(request: Any) -> tuple[EntryRequest, bool, str | None]:
    """(request, whether the caller gave an ik, the tx the call names)."""
    if isinstance(request, EntryRequest):
        return copy.deepcopy(request), bool(request.ik), None
    if not isinstance(request, dict):
        raise BadRequestError("invalid_input", "entry: expected an object", field="entry")
    parsed = EntryRequest.from_input(request, "entry", ik_required=False, type_required=False)
    tx = request.get("tx")
    tx_ref = tx.get("externalId") if isinstance(tx, dict) else tx
    if tx_ref is not None and not isinstance(tx_ref, str):
        raise BadRequestError("invalid_input", "entry.tx.externalId: expected a string", field="entry.tx.externalId")
    return parsed, bool(parsed.ik), tx_ref or None


def reconcile_tx(db: Database, ledger_ik: str, request: Any, tx: str | None = None) -> PostResult:
    """Post an entry whose lines on linked accounts each match one synced tx.

    ``request`` is an EntryRequest or the wire ``LedgerEntryInput`` (``ik`` and ``posted``
    optional). ``tx`` names the tx of lines whose schema does not (native links, seed 000).
    Line amounts and ``posted`` come from the txs; the ik defaults to the tx's external id.
    Without a type (``type`` empty or absent), the entry type is the one the tx fits
    (``ledger.reconcile.infer``).
    Reconciling a reconciled tx again returns the first result with ``is_ik_replay``."""
    parsed, ik_given, tx_ref = _parse_request(request)
    tx_ref = tx if tx is not None else tx_ref

    def run(conn: Connection) -> PostResult:
        return reconcile_in(conn, load_ledger(conn, ledger_ik), copy.deepcopy(parsed), ik_given, tx_ref)

    return db.run(run)


def reconcile_in(conn: Connection, ledger: Ledger, request: EntryRequest, ik_given: bool,
                 tx_ref: str | None) -> PostResult:
    """``reconcile_tx`` in the caller's transaction (the Stripe sync uses it directly)."""
    schema = load_schema(conn, ledger.id)
    choose_entry_type(conn, schema, request, tx_ref)
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
    result = post_entries(conn, ledger, [request], txs=resolved)[0]
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
