"""Posting entries as holds: compiled and claimed as every entry is, their conditions
checked against available balances under the engine's locks, their lines kept pending."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import fastjson
from ledger.amounts import parse_time
from ledger.commands import EntryRequest
from ledger.errors import BadRequestError, LedgerError
from ledger.holds.model import Hold, HoldResult
from ledger.holds.store import hold_results, move_reserved, raise_hold_events, watch_reserved
from ledger.ledgers import Ledger
from ledger.posting.conditions import (
    check_conditions,
    ensure_accounts,
    lock_balances,
    lock_descendants,
)
from ledger.posting.engine import compile_all
from ledger.posting.idempotency import claim_iks
from ledger.posting.model import Entry, Line
from ledger.schema.compile import CompiledEntry
from ledger.schema.store import load_schema


def parse_expiry(value: Any, now: datetime, field: str = "hold.expiresAt") -> datetime:
    """A hold's expiry: an ISO 8601 time (or datetime) after ``now``."""
    if value is None:
        raise BadRequestError("invalid_input", f"{field}: a hold needs an expiry time",
                              field=field)
    when = parse_time(value, field)
    if when <= now:
        raise BadRequestError("invalid_input", f"{field}: {when.isoformat()} is not in the "
                              "future", field=field)
    return when


def job_hold(value: Any, request: EntryRequest, field: str) -> datetime:
    """The expiry of a hold an asynchronous job asks for: ``{"expiresAt": ISO 8601}`` in
    the future, on an entry without a ``posted`` time (a hold posts when committed).
    Checked when the job is accepted; the worker checks the expiry again when it runs."""
    if not isinstance(value, dict) or set(value) != {"expiresAt"}:
        raise BadRequestError("invalid_input", f"{field}: expected {{\"expiresAt\": "
                              "time}", field=field)
    if request.posted is not None:
        raise BadRequestError("invalid_input", "entry.posted: a hold posts when it is "
                              "committed; send no posted time", field="entry.posted")
    return parse_expiry(value["expiresAt"], datetime.now(timezone.utc),
                        f"{field}.expiresAt")


def _fingerprint(entry: CompiledEntry, expires_at: datetime) -> str:
    """A hold differs from the same entry posted outright, and from a hold with another
    expiry: its ik then conflicts rather than replays."""
    text = f"hold|{expires_at.isoformat()}|{entry.fingerprint}"
    return hashlib.sha256(text.encode()).hexdigest()


def create_holds(conn: Connection, ledger: Ledger, requests: list[EntryRequest],
                 expires_at: Any) -> list[HoldResult]:
    """Post ``requests`` as holds expiring at ``expires_at``, all or none, in the caller's
    transaction (roll it back on an error). A replayed ik returns the hold as it is now."""
    now = datetime.now(timezone.utc)
    expiry = parse_expiry(expires_at, now)
    schema = load_schema(conn, ledger.id)
    compiled = compile_all(schema, requests)
    batch = len(requests) > 1
    for i, c in enumerate(compiled):
        if c.request.posted is not None:
            exc = BadRequestError("invalid_input", "entry.posted: a hold posts when it is "
                                  "committed; send no posted time", field="entry.posted")
            raise exc.at_index(i) if batch else exc
        c.fingerprint = _fingerprint(c, expiry)
    by_index = dict(enumerate(compiled))
    inserted, replays = claim_iks(conn, ledger, by_index, now, {}, locate=batch,
                                  raise_refusals=True)
    fresh = [i for i in by_index if i not in replays]
    results: dict[int, HoldResult] = {}
    if fresh:
        entries = [compiled[i] for i in fresh]
        entry_ids = [inserted[compiled[i].request.ik] for i in fresh]
        line_ids = _reserve(conn, ledger, entries, entry_ids, fresh, batch, expiry, now)
        results.update(zip(fresh, _fresh_results(ledger, entries, entry_ids, line_ids,
                                                 expiry, now)))
    if replays:
        order = sorted(replays)
        results.update(zip(order, hold_results(conn, ledger, [replays[i] for i in order],
                                               set(replays.values()))))
    out = [results[i] for i in range(len(compiled))]
    raise_hold_events(conn, ledger, "hold.created", [r for r in out if not r.is_ik_replay])
    return out


def _reserve(conn: Connection, ledger: Ledger, entries: list[CompiledEntry],
             entry_ids: list[int], indexes: list[int], batch: bool, expiry: datetime,
             now: datetime) -> dict[tuple[int, str], int]:
    account_ids = ensure_accounts(conn, ledger, {l.path: l.account for e in entries
                                                 for l in e.lines})
    # Every balance row a hold reserves on is locked, of eventual accounts too: what is
    # held moves under the lock, never as a delta.
    keys = sorted({(account_ids[l.path], l.currency) for e in entries for l in e.lines})
    balances, _, held = lock_balances(conn, ledger, keys)
    for key, amount in held.items():
        balances[key] += amount
    paths_by_id = {v: k for k, v in account_ids.items()}
    total_paths = sorted({c.path for e in entries for c in e.conditions if c.balance == "total"})
    if total_paths:
        for account_id, path, currency, available in lock_descendants(conn, ledger, total_paths):
            balances.setdefault((account_id, currency), available)
            paths_by_id[account_id] = path
    moves: dict[tuple[int, str], tuple[int, int]] = {}
    steps = []
    for entry, entry_id, index in zip(entries, entry_ids, indexes):
        try:
            check_conditions(entry, "pre", balances, account_ids, paths_by_id)
            for l in entry.lines:
                if l.amount < 0:
                    balances[(account_ids[l.path], l.currency)] += l.amount
            check_conditions(entry, "post", balances, account_ids, paths_by_id)
        except LedgerError as exc:
            raise (exc.at_index(index) if batch else exc) from None
        step: dict[tuple[int, str], tuple[int, int]] = {}
        for l in entry.lines:
            key = (account_ids[l.path], l.currency)
            for target in (moves, step):
                dec, inc = target.get(key, (0, 0))
                target[key] = (dec + min(l.amount, 0), inc + max(l.amount, 0))
        steps.append((entry_id, step))
    conn.execute(sa.text(
        "INSERT INTO holds (entry_id, ledger_id, status, expires_at, created) "
        "SELECT e, :l, 'pending', :x, :now FROM unnest(CAST(:ids AS bigint[])) AS e"),
        {"l": ledger.id, "x": expiry, "now": now, "ids": entry_ids})
    line_ids = conn.execute(sa.text(
        "INSERT INTO hold_lines (ledger_id, entry_id, account_id, key, amount, currency, "
        "  description, tx_external_id) "
        "SELECT :l, u.e, u.a, u.k, u.m, u.c, u.d, u.x FROM json_to_recordset(CAST(:rows AS json)) "
        "AS u(e bigint, a bigint, k text, m numeric, c text, d text, x text) "
        "RETURNING entry_id, key, id"),
        {"l": ledger.id, "rows": fastjson.dumps([
            {"e": entry_id, "a": account_ids[l.path], "k": l.key, "m": l.amount,
             "c": l.currency, "d": l.description, "x": l.tx}
            for e, entry_id in zip(entries, entry_ids) for l in e.lines])})
    move_reserved(conn, moves, locked=True)
    watch_reserved(conn, {ledger.id: steps})
    return {(r.entry_id, r.key): r.id for r in line_ids}


def _fresh_results(ledger: Ledger, entries: list[CompiledEntry], entry_ids: list[int],
                   line_ids: dict, expiry: datetime, now: datetime) -> list[HoldResult]:
    """The holds just written, built from what was written rather than read back: a
    batch of 1,000 read back cost a third of its time (the engine answers posts so too)."""
    out = []
    for e, entry_id in zip(entries, entry_ids):
        eid = str(entry_id)
        lines = [Line(f"h{line_ids[(entry_id, l.key)]}", eid, l.key, l.path, l.amount,
                      l.currency, now, now, l.tx, l.description or e.description,
                      l.account.type, None) for l in e.lines]
        out.append(HoldResult(
            Entry(eid, ledger.ik, e.request.ik, e.type, e.description, now, now, e.tags,
                  e.groups, []),
            Hold(eid, "pending", expiry, now, None, lines), False))
    return out
