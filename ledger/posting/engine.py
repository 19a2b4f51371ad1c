"""The posting engine: one path by which every entry reaches the books.

``post_entries`` runs inside the caller's transaction so that the sync API (one
transaction per request) and the async workers (a savepoint per batch or per entry) share
every rule. Statements per call are bounded and independent of the batch size: one that
claims the iks, finds the accounts, locks the balance rows and draws the line ids
(``_CLAIM_AND_LOCK``, which also reads the ledger's schema head for ``verify_head``; a few
more when accounts or balance rows must be created, or an ik was used before), one insert
of lines, one update of balances and one insert of deltas.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import fastjson
from ledger import tables as t
from ledger.amounts import MAX_AMOUNT
from ledger.commands import EntryRequest
from ledger.db import Pending, fetch
from ledger.errors import BadRequestError, LedgerError
from ledger.events.store import posting_raises_events, raise_events
from ledger.ledgers import Ledger
from ledger.monitors.watch import watch_steps
from ledger.posting.conditions import (
    _check_conditions,
    FIND_LOCK_DRAW_CTES,
    FIND_LOCK_DRAW_ROWS,
    Locked,
    _lock_descendants,
    find_and_lock,
    lock_params,
    lock_the_rest,
)
from ledger.posting.idempotency import (
    INSERT_ENTRIES_SQL,
    _located,
    claim_iks,
    entry_rows,
    fingerprint,
)
from ledger.posting.model import Entry, Line, Posted, PostResult
from ledger.posting.rollup import (
    _NewLine,
    _running_totals,
    fill_running_balances,
    number_lines,
)
from ledger.schema.compile import CompiledEntry, compile_entry
from ledger.schema.model import Schema
from ledger.schema.store import head_seen, load_schema, monitors_seen

MAX_BATCH = 1000


class StaleHead(Exception):
    """The ledger's schema version or monitor count is no longer the one a caller handed in
    (``post_entries(verify_head=True)``): nothing may be answered from it. The caller rolls
    back, reads the ledger afresh and posts again."""


def compile_all(schema: Schema, requests: list[EntryRequest], txs=None) -> list[CompiledEntry]:
    """Compile every request, or fail on the first bad one naming its index."""
    batch = len(requests) > 1
    if len(requests) > MAX_BATCH:
        raise BadRequestError("invalid_input", f"entries: at most {MAX_BATCH} entries a batch, got {len(requests)}", field="entries")
    seen: dict[str, int] = {}
    out = []
    for i, req in enumerate(requests):
        if req.ik in seen:
            raise _located(BadRequestError("invalid_input", f"ik {req.ik!r} appears twice in the batch (also at {seen[req.ik]})", field="ik"), i, batch)
        seen[req.ik] = i
        try:
            entry = compile_entry(schema, req, txs)
        except LedgerError as exc:
            raise _located(exc, i, batch) from None
        entry.fingerprint = fingerprint(req)
        out.append(entry)
    return out


def _compile_each(schema: Schema, requests: list[EntryRequest], txs,
                  refused: dict[int, LedgerError]) -> dict[int, CompiledEntry]:
    """Compile every request that compiles; each refusal goes to ``refused`` by index."""
    compiled_by: dict[int, CompiledEntry] = {}
    seen: set[str] = set()
    for i, req in enumerate(requests):
        try:
            if req.ik in seen:
                raise BadRequestError("invalid_input", f"ik {req.ik!r} appears twice in the batch", field="ik")
            seen.add(req.ik)
            entry = compile_entry(schema, req, txs)
            entry.fingerprint = fingerprint(req)
            compiled_by[i] = entry
        except LedgerError as exc:
            exc.index = i
            refused[i] = exc
    return compiled_by


def _compile(schema: Schema, requests: list[EntryRequest], txs, refused: dict[int, LedgerError],
             *, report: bool, verify_head: bool) -> dict[int, CompiledEntry]:
    """``post_entries``' compilation: each refusal to ``refused`` (report) or the first one
    raised; with a schema from a handed-in head, ``StaleHead`` instead of any refusal."""
    try:
        if report:
            compiled_by = _compile_each(schema, requests, txs, refused)
        else:
            # txs: the locked external txs reconcile_tx resolved (see compile_entry).
            compiled_by = dict(enumerate(compile_all(schema, requests, txs)))
    except LedgerError:
        if verify_head:
            raise StaleHead() from None
        raise
    if verify_head and refused:
        raise StaleHead()
    return compiled_by


def post_entries(conn: Connection, ledger: Ledger, requests: list[EntryRequest],
                 txs=None, *, refusals: str = "raise", detail: bool = True,
                 pending: Pending | None = None, verify_head: bool = False) -> list:
    """Post entries atomically in the caller's transaction; replays return the original.

    ``refusals="raise"`` (the sync API): the first entry the engine refuses raises its
    LedgerError (with ``.index``) and the caller's transaction must be rolled back.
    ``refusals="report"`` (the async workers): a refused entry is returned in its place as
    its LedgerError and leaves no trace, while the others post in the same statements, so
    one bad job never costs its batch a rollback.

    ``detail=False`` answers each posted or replayed entry with a ``Posted`` (its id and
    whether it was a replay) instead of a ``PostResult``, for callers that record only the
    reference: neither the entries' objects are built nor replayed entries read back.

    The last writes, which need no answer, are sent before this returns, or with a
    ``pending`` given, left in it for the caller to send (with its commit: one round trip
    fewer while the balance rows are locked).

    ``verify_head``: the ledger's schema head was handed in (``hand_schema_head``) from an
    earlier transaction, not read in this one. The locking statement reads it, and
    ``StaleHead`` is raised, before anything is answered, when it changed or when a
    refusal would rest on it unchecked (the compiler refused an entry that a newer schema
    version might know)."""
    if not requests:
        return []
    report = refusals == "report"
    schema = load_schema(conn, ledger.id)
    refused: dict[int, LedgerError] = {}
    compiled_by = _compile(schema, requests, txs, refused, report=report,
                           verify_head=verify_head)
    batch = len(requests) > 1
    now = datetime.now(timezone.utc)
    locked = claimed = None
    if compiled_by:
        # The ik claims, the accounts, the balance locks and the line ids in one round
        # trip, for every entry the engine compiled (the lines of replays and of refusals
        # are locked and drawn for nothing: both are rare, and a round trip is not).
        compiled = [compiled_by[i] for i in sorted(compiled_by)]
        lines = [line for c in compiled for line in c.lines]
        locked = find_and_lock(conn, ledger, lines, len(lines), statement=_CLAIM_AND_LOCK,
                               params={**entry_rows(ledger, now, compiled, [1] * len(compiled)),
                                       **lock_params(ledger, lines, len(lines))})
        claimed = {r[1]: r[2] for r in locked.other if r[0] == 3}
        if verify_head:
            _check_head(conn, ledger, locked)
    inserted, replays = claim_iks(conn, ledger, compiled_by, now, refused,
                                  locate=batch and not report, raise_refusals=not report,
                                  claimed=claimed)
    fresh = [i for i in sorted(compiled_by) if i not in replays and i not in refused]

    results: dict[int, Any] = dict(refused)
    own = pending is None
    if fresh:
        # What the batch writes under its balance locks goes in one round trip at the end.
        pending = Pending() if own else pending
        _apply(conn, ledger, schema, [compiled_by[i] for i in fresh],
               [inserted[compiled_by[i].request.ik] for i in fresh], fresh, batch, now, results,
               report=report, detail=detail, pending=pending, locked=locked)
        gone = [inserted[compiled_by[i].request.ik] for i in fresh
                if isinstance(results[i], LedgerError)]
        if gone:  # refused under the lock: release their ik claims
            pending.add(_RELEASE_IKS, {"ids": gone})
        if posting_raises_events():  # in this transaction: one statement for the batch
            raise_events(conn, [(ledger.id, "entry.posted", {
                "id": str(inserted[e.request.ik]), "ik": e.request.ik, "type": e.type,
                "posted": e.request.posted or now}) for e in (
                    compiled_by[i] for i in fresh if not isinstance(results[i], LedgerError))],
                pending=pending)
        if own:
            pending.send(conn)
    if replays and not detail:
        results.update((i, Posted(str(entry_id), True)) for i, entry_id in replays.items())
    elif replays:
        loaded = load_entries(conn, ledger, list(replays.values()))
        for i, entry_id in replays.items():
            entry = loaded[entry_id]
            results[i] = PostResult(entry, entry.lines, True)
    return [results[i] for i in range(len(requests))]


def _check_head(conn: Connection, ledger: Ledger, locked: Locked) -> None:
    """``StaleHead`` unless the head ``_CLAIM_AND_LOCK`` read (its row of kind 4) is the one
    this transaction compiled with. Its version and count come back as numeric (the union's
    column type): a Decimal equals the int it holds."""
    if [(r[2], r[4], r[6]) for r in locked.other if r[0] == 4] != [head_seen(conn, ledger.id)]:
        raise StaleHead()


_RELEASE_IKS = sa.text("DELETE FROM entries WHERE id = ANY(:ids)")

# The entry rows claiming the batch's iks, then find_and_lock's statement. The insert is
# read by the first branch, so it runs to its end (its ik locks taken, or waited for) before
# the first balance lock, in the order the two statements had; its rows are of kind 3. One
# row of kind 4 is the ledger's schema head now (schema id, latest version, monitor count),
# for a caller that compiled with a head it remembered (verify_head).
_CLAIM_AND_LOCK = sa.text(
    f"WITH ins AS ({INSERT_ENTRIES_SQL}), {FIND_LOCK_DRAW_CTES} "
    f"SELECT 3, ins.ik, ins.id, NULL::text, NULL::numeric, NULL::timestamptz, NULL::numeric "
    f"FROM ins UNION ALL "
    f"SELECT 4, NULL, h.schema_id, NULL, (SELECT max(v.version) FROM schema_versions v "
    f"WHERE v.schema_id = h.schema_id), NULL, h.monitors FROM ledgers h WHERE h.id = :l "
    f"UNION ALL {FIND_LOCK_DRAW_ROWS}")


def _apply(conn: Connection, ledger: Ledger, schema: Schema, entries: list[CompiledEntry],
           entry_ids: list[int], indexes: list[int], batch: bool, now: datetime,
           results: dict, *, report: bool = False, detail: bool = True,
           released: dict | None = None, pending: Pending | None = None,
           locked: Locked | None = None) -> None:
    """Lock, check, write. The writes are added to ``pending`` for the caller to send
    with its own; without one they are sent before this returns. ``locked``: what the
    caller's ``find_and_lock`` found for (at least) these entries' lines, if it made one."""
    own = pending is None
    pending = Pending() if own else pending
    lines = [line for e in entries for line in e.lines]
    if locked is None:
        locked = find_and_lock(conn, ledger, lines, len(lines))
    # Accounts and balance rows created only for the entries about to post: not for a
    # replay, an ik conflict or an entry the compiler refused, whose lines the caller's
    # statement may have looked up too.
    lock_the_rest(conn, ledger, locked, lines)
    account_ids, balances, held = locked.account_ids, locked.balances, locked.held
    lines_until, ids = locked.lines_until, locked.ids
    # Running totals start from the posted balances; conditions see the available ones
    # (ledger/holds/: a hold's pending decreases count against them at once).
    before = dict(balances)
    for key, amount in held.items():
        balances[key] += amount
    total_paths = sorted({c.path for e in entries for c in e.conditions if c.balance == "total"})
    paths_by_id: dict[int, str] = {v: k for k, v in account_ids.items()}
    if total_paths:
        for account_id, path, currency, own in _lock_descendants(conn, ledger, total_paths):
            balances.setdefault((account_id, currency), own)
            paths_by_id[account_id] = path
    eventual = sorted({(account_ids[l.path], l.currency) for e in entries for l in e.lines
                       if l.account.own_consistency != "strong"})
    moved = _Moves(_read_balances(conn, eventual))
    for entry, entry_id, index in zip(entries, entry_ids, indexes):
        try:
            moved.add(entry, account_ids, balances, paths_by_id)
        except LedgerError as exc:
            if not report:
                raise _located(exc, index, batch) from None
            exc.index = index
            results[index] = exc
            continue
        moved.accepted.append((entry, entry_id, index))
    if not moved.accepted:
        return
    ids, until, totals = _insert_lines(conn, ledger, moved.accepted, account_ids, now, before,
                                       lines_until, pending, ids)
    _move_balances(conn, ledger, moved, until, pending)
    # Now when no caller will send them, or when the monitors below read what they write.
    if own or monitors_seen(conn, ledger.id) != 0:
        pending.send(conn)
    # Balance monitors, in this transaction, entry by entry in the order they were accepted
    # (a committed hold's release is part of its entry's step: ``released`` by entry id).
    watch_steps(conn, ledger.id, [
        (entry_id, _with_released(step, (released or {}).get(entry_id, {})))
        for (_, entry_id, _), step in zip(moved.accepted, moved.steps)], paths_by_id)
    if not detail:
        for _, entry_id, index in moved.accepted:
            results[index] = Posted(str(entry_id), False)
        return
    # The accepted entries' lines were inserted in order, and ``ids`` is aligned with them.
    # Running totals known without a query; the others (backdated lines, eventual accounts)
    # stay None, to be read after commit by whoever asks (service.line_running_balances),
    # rather than cost every batch a query while it holds its balance rows.
    line_ids, line_totals = iter(ids), iter(totals)
    for e, entry_id, index in moved.accepted:
        posted = e.request.posted or now
        eid = str(entry_id)
        # A line without a description of its own reads its entry's, on every path.
        lines = [Line(str(next(line_ids)), eid, l.key, l.path, l.amount, l.currency, posted,
                      now, l.tx, l.description or e.description, l.account.type,
                      next(line_totals))
                 for l in e.lines]
        entry = Entry(eid, ledger.ik, e.request.ik, e.type, e.description, posted, now,
                      e.tags, e.groups, lines)
        results[index] = PostResult(entry, lines, False)


def _with_released(step: dict[tuple[int, str], int], released: dict) -> dict:
    """An entry's own moves, and what its hold gave back (``(held, pending_in)`` by key),
    as the monitors' moves."""
    out = {key: (amount, 0, 0) for key, amount in step.items()}
    for key, (held, pending_in) in released.items():
        own = out.get(key, (0, 0, 0))[0]
        out[key] = (own, held, pending_in)
    return out


class _Moves:
    """What the accepted entries of a batch move: strong balances (by (account id,
    currency)), eventual deltas, and the entries themselves with their ids and indexes;
    per accepted entry (aligned with ``accepted``) its strong moves and its eventual ones."""

    def __init__(self, eventual_base: dict[tuple[int, str], int]):
        self.deltas: dict[tuple[int, str], int] = {}
        self.eventual: dict[tuple[int, str], int] = {}
        self.eventual_base = eventual_base
        self.accepted: list[tuple[CompiledEntry, int, int]] = []
        self.steps: list[dict[tuple[int, str], int]] = []
        self.eventual_steps: list[dict[tuple[int, str], int]] = []

    def add(self, entry: CompiledEntry, account_ids: dict, balances: dict,
            paths_by_id: dict) -> None:
        """Check the entry's conditions against ``balances`` (moved by the entries accepted
        before it), and that no balance leaves the range of amounts, and count its moves;
        raise, leaving ``balances`` as it was, if one fails."""
        moves = [((account_ids[l.path], l.currency), l.amount,
                  l.account.own_consistency == "strong", l) for l in entry.lines]
        applied = []
        try:
            _check_conditions(entry, "pre", balances, account_ids, paths_by_id)
            for key, amount, is_strong, line in moves:
                if is_strong:
                    balances[key] += amount
                    applied.append((key, amount))
                    # After each line, not each entry: every line carries the running total.
                    _check_range(balances[key], line)
                else:
                    _check_range(self.eventual_base.get(key, 0) + self.eventual.get(key, 0)
                                 + amount, line)
            _check_conditions(entry, "post", balances, account_ids, paths_by_id)
        except LedgerError:
            for key, amount in applied:
                balances[key] -= amount
            raise
        step: dict[tuple[int, str], int] = {}
        eventual_step: dict[tuple[int, str], int] = {}
        for key, amount, is_strong, _ in moves:
            target = self.deltas if is_strong else self.eventual
            target[key] = target.get(key, 0) + amount
            per_entry = step if is_strong else eventual_step
            per_entry[key] = per_entry.get(key, 0) + amount
        self.steps.append(step)
        self.eventual_steps.append(eventual_step)


def _check_range(balance: int, line) -> None:
    """Balances are read back as amounts (Int96 and wider, up to 2^120-1 in magnitude): one
    past that no client could read, so the entry that would make it is refused."""
    if abs(balance) > MAX_AMOUNT:
        raise BadRequestError(
            "balance_out_of_range",
            f"entry.lines.{line.key}: the balance of {line.path!r} in {line.currency} would be "
            f"{balance}, beyond the range of amounts ±(2^120-1); nothing was posted",
            field=f"entry.lines.{line.key}")


# One index probe per key, as the lookups of ledger/posting/conditions.py.
_READ_BALANCES = sa.text(
    "SELECT b.account_id, b.currency, b.own "
    "FROM json_to_recordset(CAST(:keys AS json)) AS k(a bigint, c text) "
    "CROSS JOIN LATERAL (SELECT account_id, currency, own FROM balances "
    "WHERE account_id = k.a AND currency = k.c LIMIT 1) b")


def _read_balances(conn: Connection, keys: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """Eventually consistent balances as last rolled up, unlocked (no hot row is locked):
    the range check of their moves starts from them. Deltas not yet folded in are not
    counted, so it is a bound on what one batch adds, not a proof under concurrency."""
    if not keys:
        return {}
    return {(r[0], r[1]): int(r[2]) for r in conn.execute(
        _READ_BALANCES, {"keys": fastjson.dumps([{"a": k[0], "c": k[1]} for k in keys])})}


def _insert_lines(conn: Connection, ledger: Ledger, accepted: list, account_ids: dict,
                  now: datetime, before: dict, lines_until: dict, pending: Pending,
                  drawn: list[int] | None = None):
    """Insert the lines of the accepted entries, with running totals where known, under
    the ids ``drawn`` under the balance locks when given (at least one per line), else
    drawn here. Returns (line ids in the entries' line order, latest posted time per
    strong key, the running totals known without a query, aligned with the ids)."""
    flat = [_NewLine(entry_id, l, (account_ids[l.path], l.currency), e.request.posted or now)
            for e, entry_id, _ in accepted for l in e.lines]
    # Lines posted "now" (most) send no time of their own: the statement's :created is it.
    iso = {now: None}
    # Ids drawn up front, in order: the running totals below follow (posted, id) order.
    ids = sorted(drawn)[:len(flat)] if drawn is not None else sorted(
        row[0] for row in fetch(conn, _NEXT_LINE_IDS, {"n": len(flat)}))
    totals, slow, until = _running_totals(flat, ids, before, lines_until)
    pending.add(_INSERT_LINES, {"l": ledger.id, "created": now, "rows": fastjson.dumps([{
        "i": line_id, "e": f.entry_id, "a": f.balance[0], "k": f.line.key, "m": f.line.amount,
        "c": f.line.currency,
        "p": iso[f.posted] if f.posted in iso else iso.setdefault(f.posted, f.posted.isoformat()),
        "d": f.line.description, "x": f.line.tx, "t": total}
        for f, line_id, total in zip(flat, ids, totals)])})
    if slow:
        pending.send(conn)  # numbering reads the lines just inserted
        number_lines(conn, [k[0] for k in slow], [k[1] for k in slow])
    return ids, until, totals


# Each row found by one index probe (its ctid, read in this statement) and updated by it:
# joined on the document's keys instead, the planner took the document for 100 rows and
# scanned every balance row of the ledger in a hash join. The rows are this transaction's
# locked ones, so no other transaction moves them between the probe and the update.
_UPDATE_BALANCES = sa.text(
    "UPDATE balances b SET own = b.own + d.delta, lines_until = CASE "
    "  WHEN b.lines_until IS NULL THEN (SELECT max(x.posted) FROM lines x "
    "    WHERE x.account_id = b.account_id AND x.currency = b.currency) "
    "  ELSE greatest(b.lines_until, d.until) END "
    "FROM (SELECT d.delta, d.until, r.ctid AS row FROM json_to_recordset(CAST(:rows AS json)) "
    "  AS d(account_id bigint, currency text, delta numeric, until timestamptz) "
    "  CROSS JOIN LATERAL (SELECT ctid FROM balances "
    "  WHERE account_id = d.account_id AND currency = d.currency LIMIT 1) r) d "
    "WHERE b.ctid = d.row")

_APPEND_DELTAS = sa.text(
    "INSERT INTO balance_deltas (ledger_id, account_id, currency, amount) "
    "SELECT :l, d.account_id, d.currency, d.amount FROM ROWS FROM (json_to_recordset("
    "CAST(:rows AS json)) AS (account_id bigint, currency text, amount numeric)) "
    "WITH ORDINALITY AS d(account_id, currency, amount, n) ORDER BY d.n")


def _move_balances(conn: Connection, ledger: Ledger, moved: _Moves, until: dict,
                   pending: Pending) -> None:
    """Update the locked strong balances; append the eventual accounts' deltas."""
    touched = sorted(until)
    if touched:
        pending.add(_UPDATE_BALANCES, {"rows": fastjson.dumps([
            {"account_id": k[0], "currency": k[1], "delta": moved.deltas.get(k, 0),
             "until": until[k].isoformat()} for k in touched])})
    # One delta per key for the batch; per entry, in the entries' order, in a ledger with
    # balance monitors, so that the rollup judges crossings entry by entry (watch.py).
    steps = moved.eventual_steps if monitors_seen(conn, ledger.id) != 0 else [moved.eventual]
    rows = [{"account_id": k[0], "currency": k[1], "amount": v}
            for step in steps for k, v in step.items() if v]
    if rows:
        pending.add(_APPEND_DELTAS, {"l": ledger.id, "rows": fastjson.dumps(rows)})


# Lines carry the running own balance of their (account, currency) in (posted, id) order
# (``balance_after``), so that a balance at any time is one index probe (ledger/history/).
# Strongly consistent accounts get it here, computed under the balance row lock (see
# ``_running_totals``); lines of eventually consistent accounts are written without one and
# the rollup numbers them under the balance row lock it takes anyway, so no hot row forms.
# The sequence by name, a constant: looking it up with pg_get_serial_sequence() in the
# statement ran that catalog lookup once per id, and the statement took four times as long.
# (lines.id is an identity column since 0001_core; PostgreSQL names its sequence so.)
_NEXT_LINE_IDS = sa.text("SELECT nextval('lines_id_seq') FROM generate_series(1, :n)")


_INSERT_LINES = sa.text(
    "INSERT INTO lines (id, ledger_id, entry_id, account_id, key, amount, currency, posted, "
    "  created, description, tx_external_id, balance_after) "
    "SELECT u.i, :l, u.e, u.a, u.k, u.m, u.c, coalesce(u.p, :created), :created, u.d, u.x, "
    "  u.t FROM json_to_recordset(CAST(:rows AS json)) "
    "AS u(i bigint, e bigint, a bigint, k text, m numeric, c text, p timestamptz, d text, "
    "x text, t numeric)")


def apply_compiled(conn: Connection, ledger: Ledger, schema: Schema,
                   entries: list[CompiledEntry], entry_ids: list[int],
                   now: datetime, released: dict | None = None) -> list[PostResult]:
    """Write already compiled entries whose entry rows exist (ids given): lock, check
    conditions, insert lines, move balances. For entries the engine makes itself, such as
    reversals (ledger/history.py) and committed holds (``released``: what each hold gave
    back in this transaction, ``{entry id: {key: (held, pending_in)}}``, judged by the
    balance monitors together with the entry's posting); everything else goes through
    ``post_entries``."""
    results: dict[int, PostResult] = {}
    indexes = list(range(len(entries)))
    _apply(conn, ledger, schema, entries, entry_ids, indexes, len(entries) > 1, now, results,
           released=released)
    return [results[i] for i in indexes]


def load_entries(conn: Connection, ledger: Ledger, ids: Iterable[int]) -> dict[int, Entry]:
    ids = list(ids)
    rows = conn.execute(sa.select(t.entries).where(t.entries.c.id.in_(ids))).mappings().all()
    line_rows = conn.execute(
        sa.select(t.lines, t.accounts.c.path, t.accounts.c.type.label("account_type"))
        .join(t.accounts, t.accounts.c.id == t.lines.c.account_id)
        .where(t.lines.c.entry_id.in_(ids)).order_by(t.lines.c.id)).mappings().all()
    by_entry: dict[int, list[Line]] = {}
    for r in line_rows:
        by_entry.setdefault(r["entry_id"], []).append(line_from_row(r))
    fill_running_balances(conn, [line for lines in by_entry.values() for line in lines])
    return {r["id"]: entry_from_row(r, ledger.ik, by_entry.get(r["id"], [])) for r in rows}


def with_entry_description(lines: list[Line], description: str | None) -> list[Line]:
    """A line without a description of its own reads its entry's: the same line then says
    the same thing in a posting's result, an entry's lines and every list of lines."""
    for line in lines:
        if line.description is None:
            line.description = description
    return lines


def line_from_row(r) -> Line:
    # A strong account's stored running total is kept exact by every posting (a backdated
    # line renumbers the later ones under the balance lock); an eventual one's may trail
    # the rollup, so fill_running_balances works it out.
    stored = r.get("balance_after") if r.get("consistency") == "strong" else None
    return Line(str(r["id"]), str(r["entry_id"]), r["key"], r["path"], int(r["amount"]),
                r["currency"], r["posted"], r["created"], r["tx_external_id"], r["description"],
                r.get("account_type"), None if stored is None else int(stored))


def entry_from_row(r, ledger_ik: str, lines: list[Line]) -> Entry:
    with_entry_description(lines, r["description"])
    return Entry(str(r["id"]), ledger_ik, r["ik"], r["type"], r["description"], r["posted"],
                 r["created"], dict(r["tags"]), dict(r["groups"]), lines)
