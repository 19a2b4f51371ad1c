"""Committing, voiding and expiring holds. Each locks the hold's row first, so a commit
racing a void or the beat's expiry ends one way only: the second to get the lock finds the
hold resolved."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import fastjson
from ledger.amounts import parse_amount
from ledger.commands import EntryRequest, LineInput
from ledger.errors import BadRequestError, NotFoundError
from ledger.holds.model import HoldResult, expired_error, resolved_error
from ledger.holds.store import (
    hold_result,
    raise_expired_events,
    raise_hold_events,
    release,
    watch_reserved,
)
from ledger.ledgers import Ledger, load_ledger
from ledger.posting.conditions import (
    check_conditions,
    ensure_accounts,
    lock_balances,
    lock_descendants,
)
from ledger.posting.engine import apply_compiled
from ledger.schema.compile import CompiledEntry, compile_entry
from ledger.schema.model import Schema
from ledger.schema.store import load_schema

_LOCK_HOLD = sa.text(
    "SELECT h.status, h.expires_at, h.captured, e.ik, e.type, e.parameters, e.tags, e.groups "
    "FROM holds h JOIN entries e ON e.id = h.entry_id "
    "WHERE h.entry_id = :e AND h.ledger_id = :l FOR UPDATE OF h")

_RESOLVE = sa.text(
    "UPDATE holds SET status = :s, resolved = :now, captured = CAST(:c AS jsonb) "
    "WHERE entry_id = :e AND ledger_id = :l")


def _locked(conn: Connection, ledger: Ledger, entry_id: int):
    row = conn.execute(_LOCK_HOLD, {"e": entry_id, "l": ledger.id}).first()
    if row is None:
        raise NotFoundError("hold_not_found", f"id: entry {entry_id} of ledger {ledger.ik!r} "
                            "is not a hold", field="id")
    return row


def void_hold(conn: Connection, ledger: Ledger, entry_id: int) -> HoldResult:
    """Release a pending hold. Voiding a voided hold is a replay; a committed or expired
    one (or one past its expiry, which the beat is about to expire) is refused."""
    now = datetime.now(timezone.utc)
    row = _locked(conn, ledger, entry_id)
    if row.status == "voided":
        return hold_result(conn, ledger, entry_id, True)
    if row.status != "pending":
        raise resolved_error(row.status, str(entry_id))
    if now >= row.expires_at:
        raise expired_error(str(entry_id), row.expires_at)
    released = release(conn, [ledger.id], [entry_id])
    schema = load_schema(conn, ledger.id)
    held = hold_result(conn, ledger, entry_id, False).hold.lines
    check_release(conn, ledger, compile_entry(schema, _capture_request(schema, row, held, {})))
    watch_reserved(conn, released)
    conn.execute(_RESOLVE, {"s": "voided", "now": now, "c": None, "e": entry_id, "l": ledger.id})
    result = hold_result(conn, ledger, entry_id, False)
    raise_hold_events(conn, ledger, "hold.voided", [result])
    return result


def commit_hold(conn: Connection, ledger: Ledger, entry_id: int, amount: Any = None,
                parameters: Any = None) -> HoldResult:
    """Post a pending hold: all of it, or less. ``amount`` scales every line when the
    entry's lines are one parameter (or, for runtime lines, all of one size);
    ``parameters`` recompute the lines, none beyond what the hold reserved. Committing again
    with the same arguments is a replay; a voided or expired hold is refused, and so is one
    past its expiry even before the beat expires it (``hold_expired``)."""
    now = datetime.now(timezone.utc)
    if amount is not None and parameters is not None:
        raise BadRequestError("invalid_input", "amount: give an amount or parameters, not "
                              "both", field="amount")
    captured = _captured(amount, parameters)
    row = _locked(conn, ledger, entry_id)
    if row.status == "committed":
        if row.captured != captured:
            raise resolved_error("committed", str(entry_id))
        return hold_result(conn, ledger, entry_id, True)
    if row.status != "pending":
        raise resolved_error(row.status, str(entry_id))
    if now >= row.expires_at:
        raise expired_error(str(entry_id), row.expires_at)
    schema = load_schema(conn, ledger.id)
    held = hold_result(conn, ledger, entry_id, False).hold.lines
    request = _capture_request(schema, row, held, captured)
    compiled = compile_entry(schema, request)
    _check_within(compiled, held)
    released = release(conn, [ledger.id], [entry_id])
    # The entry posts now: its lines and its time say so alike.
    conn.execute(sa.text("UPDATE entries SET posted = :now WHERE id = :e AND ledger_id = :l"),
                 {"now": now, "e": entry_id, "l": ledger.id})
    # The monitors judge the release and the posting as one step: what is posted no longer
    # needs reserving, so an available balance does not cross by a commit of its decreases.
    apply_compiled(conn, ledger, schema, [compiled], [entry_id], now,
                   released={e: held for e, held in released.get(ledger.id, [])})
    conn.execute(_RESOLVE, {"s": "committed", "now": now, "c": fastjson.dumps(captured),
                            "e": entry_id, "l": ledger.id})
    result = hold_result(conn, ledger, entry_id, False)
    raise_hold_events(conn, ledger, "hold.committed", [result])
    return result


def release_breaches(conn: Connection, ledger: Ledger, entry: CompiledEntry) -> list[str]:
    """After a release (already applied in this transaction), the entry type's upper
    postconditions (``lte``, ``eq``) that the available balances now break, one message
    each: giving back a reservation raises them past what posting would allow. ``gte``
    cannot be newly broken by a release, so it is not checked (a balance already below it
    must still be releasable). Void and expiry both ask this; void refuses a release that
    breaks one, expiry cannot refuse and reports it (``expire_holds``)."""
    upper = [c for c in entry.conditions if c.when == "post" and c.op != "gte"]
    if not upper:
        return []
    account_ids = ensure_accounts(conn, ledger, {l.path: l.account for l in entry.lines})
    keys = sorted({(account_ids[l.path], l.currency) for l in entry.lines})
    balances, _, held = lock_balances(conn, ledger, keys)
    for key, amount in held.items():
        balances[key] += amount
    paths_by_id = {v: k for k, v in account_ids.items()}
    total_paths = sorted({c.path for c in upper if c.balance == "total"})
    if total_paths:
        for account_id, path, currency, available in lock_descendants(conn, ledger, total_paths):
            balances.setdefault((account_id, currency), available)
            paths_by_id[account_id] = path
    broken = []
    for cond in upper:
        # One condition at a time: the engine's check stops at the first it finds broken.
        checked = CompiledEntry(entry.request, entry.type, entry.description, entry.lines,
                                [cond], entry.tags, entry.groups)
        try:
            check_conditions(checked, "post", balances, account_ids, paths_by_id)
        except BadRequestError as exc:
            broken.append(exc.message.replace("; nothing was posted", ""))
    return broken


def check_release(conn: Connection, ledger: Ledger, entry: CompiledEntry) -> None:
    """Refuse a release (void, partial capture) that breaks an upper bound: the caller can
    still commit more of the hold, or post what makes room, before it expires."""
    broken = release_breaches(conn, ledger, entry)
    if broken:
        raise BadRequestError("condition_failed", f"releasing the hold: {broken[0]}; the "
                              "hold stays pending", field="conditions")


def _captured(amount: Any, parameters: Any) -> dict:
    """What a commit asked for, as stored: a second commit replays only the same request."""
    if amount is not None:
        value = parse_amount(amount, "amount")
        if value <= 0:
            raise BadRequestError("invalid_amount", f"amount: a capture is positive, got "
                                  f"{value}; void the hold to release it all", field="amount")
        return {"amount": str(value)}
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise BadRequestError("invalid_input", "parameters: expected an object",
                                  field="parameters")
        return {"parameters": EntryRequest.build(ik="x", type="x", parameters=parameters,
                                                 field="commit").parameters}
    return {}


def _capture_request(schema: Schema, row, held: list, captured: dict) -> EntryRequest:
    params = dict(row.parameters)
    et = schema.entry_types[row.type]
    base = dict(ik=row.ik, type=row.type, tags=dict(row.tags), groups=dict(row.groups))
    if et.lines is None:
        if "parameters" in captured:
            raise BadRequestError("invalid_input", f"parameters: entry type {et.type!r} takes "
                                  "its lines at posting; commit with an amount", field="parameters")
        sizes = {abs(l.amount) for l in held}
        if "amount" in captured and len(sizes) > 1:
            raise BadRequestError("invalid_input", "amount: the hold's lines differ in size, "
                                  "so no one amount scales them", field="amount")
        want = int(captured["amount"]) if "amount" in captured else None
        lines = [LineInput(l.key, l.account_path,
                           l.amount if want is None else (want if l.amount > 0 else -want
                                                          if l.amount < 0 else 0),
                           l.currency, l.description) for l in held]
        return EntryRequest(parameters=params, lines=tuple(lines), **base)
    if "parameters" in captured:
        params.update(captured["parameters"])
    elif "amount" in captured:
        used = {p for lt in et.lines if lt.amount is not None for p in lt.amount.params}
        single = len(used) == 1 and all(lt.amount is None or lt.amount.const == 0
                                        for lt in et.lines)
        if not single:
            raise BadRequestError("invalid_input", f"amount: the lines of entry type "
                                  f"{et.type!r} are not one parameter; commit with parameters",
                                  field="amount")
        params[used.pop()] = captured["amount"]
    return EntryRequest(parameters=params, **base)


def _check_within(compiled: CompiledEntry, held: list) -> None:
    """A commit posts at most what the hold reserved: the same lines, each of the same
    sign and no larger."""
    by_key = {l.key: l for l in held}
    for line in compiled.lines:
        h = by_key.get(line.key)
        if (h is None or h.account_path != line.path or h.currency != line.currency
                or line.amount * h.amount < 0 or abs(line.amount) > abs(h.amount)):
            reserved = "nothing" if h is None else f"{h.amount} {h.currency} on {h.account_path!r}"
            raise BadRequestError(
                "hold_exceeded", f"entry.lines.{line.key}: the commit would post "
                f"{line.amount} {line.currency} on {line.path!r}, the hold reserved "
                f"{reserved}; nothing was posted", field=f"entry.lines.{line.key}")


def expire_holds(conn: Connection, limit: int = 1000) -> list[tuple[int, int]]:
    """Expire pending holds past their expiry, oldest first, skipping any a commit or void
    holds locked right now (it resolves them, or the next sweep does). Returns their
    (ledger id, entry id).

    An expiry is never refused, even when giving the reservation back carries an available
    balance past an upper bound (``lte``/``eq``) that a void would be refused for: the
    reservation was granted only until ``expiresAt``, and a sweep that kept it would hold the
    payer's money past its deadline and retry forever. The crossing is reported instead:
    the ``hold.expired`` event lists it under ``conditionsBroken``, and the audit lists the
    balance (``condition_broken``) until postings bring it back within the bound."""
    now = datetime.now(timezone.utc)
    rows = conn.execute(sa.text(
        "SELECT ledger_id, entry_id FROM holds WHERE status = 'pending' AND expires_at <= :now "
        "ORDER BY expires_at, entry_id LIMIT :n FOR UPDATE SKIP LOCKED"),
        {"now": now, "n": limit}).all()
    if not rows:
        return []
    ids = [r.entry_id for r in rows]
    released = release(conn, sorted({r.ledger_id for r in rows}), ids)
    conn.execute(sa.text(
        "UPDATE holds SET status = 'expired', resolved = :now WHERE entry_id = ANY(:ids)"),
        {"now": now, "ids": ids})
    watch_reserved(conn, released)
    broken: dict[int, list[str]] = {}
    for ledger_id in sorted({r.ledger_id for r in rows}):
        broken.update(_expiry_breaches(conn, ledger_id,
                                       [r.entry_id for r in rows if r.ledger_id == ledger_id]))
    raise_expired_events(conn, ids, broken)
    return [(r.ledger_id, r.entry_id) for r in rows]


def _expiry_breaches(conn: Connection, ledger_id: int, entry_ids: list[int]) -> dict[int, list[str]]:
    """The upper bounds each of these just-expired holds of one ledger leaves broken, by
    entry id; only holds whose entry type states one are compiled again."""
    ik = conn.execute(sa.text("SELECT ik FROM ledgers WHERE id = :l"), {"l": ledger_id}).scalar()
    ledger = load_ledger(conn, ik)
    schema = load_schema(conn, ledger.id)
    out: dict[int, list[str]] = {}
    for entry_id in entry_ids:
        row = _locked(conn, ledger, entry_id)
        et = schema.entry_types.get(row.type)
        if et is None or not any(c.when == "post" and c.op != "gte" for c in et.conditions):
            continue
        held = hold_result(conn, ledger, entry_id, False).hold.lines
        found = release_breaches(conn, ledger, compile_entry(
            schema, _capture_request(schema, row, held, {})))
        if found:
            out[entry_id] = found
    return out
