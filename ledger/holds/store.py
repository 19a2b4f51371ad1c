"""Reading holds back, and moving what they reserve on the balance rows."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import fastjson
from ledger.errors import BadRequestError, NotFoundError
from ledger.events.store import raise_events
from ledger.holds.model import STATUSES, Hold, HoldResult
from ledger.history.model import Page, PageInfo
from ledger.history.queries import decode_cursor, encode_cursor
from ledger.ledgers import Ledger
from ledger.monitors.watch import watch_ledgers
from ledger.posting.engine import load_entries
from ledger.posting.model import Line

_HOLDS = sa.text(
    "SELECT entry_id, status, expires_at, created, resolved FROM holds "
    "WHERE ledger_id = :l AND entry_id = ANY(:ids)")

_HOLD_LINES = sa.text(
    "SELECT hl.id, hl.entry_id, hl.key, a.path, a.type, hl.amount, hl.currency, "
    "  hl.description, hl.tx_external_id "
    "FROM hold_lines hl JOIN accounts a ON a.id = hl.account_id "
    "WHERE hl.ledger_id = :l AND hl.entry_id = ANY(:ids) ORDER BY hl.id")


def _line(r, created) -> Line:
    # Reserved lines are no lines of the books: their ids say so ("h" + hold line id).
    return Line(f"h{r.id}", str(r.entry_id), r.key, r.path, int(r.amount), r.currency,
                created, created, r.tx_external_id, r.description, r.type, None)


def load_holds(conn: Connection, ledger: Ledger, entry_ids: list[int]) -> dict[int, Hold]:
    """The holds among these entries, by entry id (an entry that is no hold is absent)."""
    holds = {r.entry_id: Hold(str(r.entry_id), r.status, r.expires_at, r.created, r.resolved, [])
             for r in conn.execute(_HOLDS, {"l": ledger.id, "ids": entry_ids})}
    if holds:
        for r in conn.execute(_HOLD_LINES, {"l": ledger.id, "ids": list(holds)}):
            hold = holds[r.entry_id]
            hold.lines.append(_line(r, hold.created))
    return holds


def hold_results(conn: Connection, ledger: Ledger, entry_ids: list[int],
                 replays: set[int]) -> list[HoldResult]:
    """The holds of these entries with their entries, in their order, read in three
    statements whatever their number (a batch of 1,000 holds would cost 3,000 otherwise);
    ``replays``: the entry ids answered as replays."""
    entries = load_entries(conn, ledger, entry_ids)
    holds = load_holds(conn, ledger, entry_ids)
    out = []
    for entry_id in entry_ids:
        hold = holds.get(entry_id)
        if hold is None:
            raise NotFoundError("hold_not_found", f"id: entry {entry_id} is not a hold",
                                field="id")
        entry = entries[entry_id]
        for line in hold.lines:
            if line.description is None:
                line.description = entry.description
        out.append(HoldResult(entry, hold, entry_id in replays))
    return out


def hold_result(conn: Connection, ledger: Ledger, entry_id: int, replay: bool) -> HoldResult:
    return hold_results(conn, ledger, [entry_id], {entry_id} if replay else set())[0]


_LOCK_ROWS = sa.text(
    "SELECT b.account_id FROM balances b "
    "JOIN json_to_recordset(CAST(:rows AS json)) AS d(a bigint, c text) "
    "ON b.account_id = d.a AND b.currency = d.c "
    "ORDER BY b.account_id, b.currency FOR UPDATE OF b")

_MOVE = sa.text(
    "UPDATE balances b SET held = b.held + d.held, pending_in = b.pending_in + d.pin "
    "FROM json_to_recordset(CAST(:rows AS json)) AS d(a bigint, c text, held numeric, "
    "pin numeric) WHERE b.account_id = d.a AND b.currency = d.c")

_RESERVED = sa.text(
    "SELECT ledger_id, entry_id, account_id, currency, sum(least(amount, 0)), "
    "  sum(greatest(amount, 0)) "
    "FROM hold_lines WHERE ledger_id = ANY(:ls) AND entry_id = ANY(:ids) "
    "GROUP BY ledger_id, entry_id, account_id, currency")

# By ledger, (hold entry id, {(account id, currency): (held, pending_in) moved}) per hold.
Released = dict[int, list[tuple[int, dict[tuple[int, str], tuple[int, int]]]]]


def move_reserved(conn: Connection, moves: dict[tuple[int, str], tuple[int, int]],
                  locked: bool) -> None:
    """Add (held, pending_in) to balance rows; ``locked``: the caller holds their locks,
    else they are taken here in the engine's one order."""
    rows = fastjson.dumps([{"a": k[0], "c": k[1], "held": v[0], "pin": v[1]}
                           for k, v in sorted(moves.items()) if v != (0, 0)])
    if rows == "[]":
        return
    if not locked:
        conn.execute(_LOCK_ROWS, {"rows": rows})
    conn.execute(_MOVE, {"rows": rows})


def release(conn: Connection, ledger_ids: list[int], entry_ids: list[int]) -> Released:
    """Give back what these holds reserve (they are committed, voided or expired); returns
    what each gave back, the holds in the order of ``entry_ids``, for the balance
    monitors."""
    order = {entry_id: n for n, entry_id in enumerate(entry_ids)}
    moves: dict[tuple[int, str], tuple[int, int]] = {}
    by_hold: dict[tuple[int, int], dict] = {}
    for ledger_id, entry_id, account_id, currency, dec, inc in conn.execute(
            _RESERVED, {"ls": ledger_ids, "ids": entry_ids}):
        key, move = (account_id, currency), (-int(dec), -int(inc))
        total = moves.get(key, (0, 0))
        moves[key] = (total[0] + move[0], total[1] + move[1])
        by_hold.setdefault((ledger_id, entry_id), {})[key] = move
    move_reserved(conn, moves, locked=False)
    out: Released = {}
    for (ledger_id, entry_id), held in sorted(by_hold.items(), key=lambda h: order[h[0][1]]):
        out.setdefault(ledger_id, []).append((entry_id, held))
    return out


def watch_reserved(conn: Connection, reserved: Released) -> None:
    """The balance monitors of what holds reserved or gave back, a step per hold (after
    every balance row lock of the transaction is taken: watch.py's order)."""
    watch_ledgers(conn, {ledger_id: [(entry_id, {k: (0, h, p) for k, (h, p) in held.items()})
                                     for entry_id, held in holds]
                         for ledger_id, holds in reserved.items()})


def _lines(lines: list[Line]) -> list[dict]:
    return [{"key": x.key, "account": {"path": x.account_path}, "amount": str(x.amount),
             "currency": x.currency} for x in lines]


def raise_hold_events(conn: Connection, ledger: Ledger, type_: str,
                      results: list[HoldResult]) -> None:
    """hold.created | hold.committed | hold.voided for these holds, in the caller's
    transaction: the event exists exactly when the change does. Their lines: what was
    reserved (created, voided), or what the commit posted (committed)."""
    raise_events(conn, [(ledger.id, type_, {
        "entry": {"id": r.entry.id, "ik": r.entry.ik, "type": r.entry.type},
        "status": r.hold.status, "expiresAt": r.hold.expires_at.isoformat(),
        "lines": _lines(r.entry.lines if type_ == "hold.committed" else r.hold.lines)})
        for r in results])


def raise_expired_events(conn: Connection, entry_ids: list[int],
                         broken: dict[int, list[str]]) -> None:
    """hold.expired for holds the sweep just expired, in its transaction, each with the
    upper bounds its release left broken (``conditionsBroken``, empty when none): an expiry
    is never refused, so this is where a crossing is told."""
    rows = conn.execute(sa.text(
        "SELECT h.ledger_id, h.entry_id, h.expires_at, e.ik, e.type FROM holds h "
        "JOIN entries e ON e.id = h.entry_id WHERE h.entry_id = ANY(:ids) "
        "ORDER BY h.expires_at, h.entry_id"), {"ids": entry_ids}).all()
    raise_events(conn, [(r.ledger_id, "hold.expired", {
        "entry": {"id": str(r.entry_id), "ik": r.ik, "type": r.type}, "status": "expired",
        "expiresAt": r.expires_at.isoformat(),
        "conditionsBroken": broken.get(r.entry_id, [])}) for r in rows])


MAX_HOLD_LINES = 200

# Newest hold first, keyset over (hold created, hold line id): a cursor is a position, so
# holds created meanwhile never shift a page. ``:p`` NULL: every account of the ledger.
_HOLD_LINES_PAGE = (
    "SELECT hl.id, hl.entry_id, hl.key, a.path, a.type, hl.amount, hl.currency, "
    "  coalesce(hl.description, e.description) AS description, hl.tx_external_id, "
    "  h.status, h.created "
    "FROM hold_lines hl JOIN accounts a ON a.id = hl.account_id "
    "JOIN holds h ON h.entry_id = hl.entry_id JOIN entries e ON e.id = hl.entry_id "
    "WHERE hl.ledger_id = :l AND h.ledger_id = :l AND a.ledger_id = :l {account} "
    "  AND (CAST(:s AS text) IS NULL OR h.status = :s) {after} "
    "ORDER BY h.created DESC, hl.id DESC LIMIT :n")


def account_hold_lines(conn: Connection, ledger: Ledger, path: str | None, status: str | None,
                       first: int, after: str | None = None) -> Page:
    """The lines holds reserved on the account at ``path`` (None: on every account of the
    ledger), newest hold first, with their hold's status (``status`` None: every status):
    a page of ``first`` (at most 200) ``(Line, status)`` after the cursor ``after``."""
    if status is not None and status not in STATUSES:
        raise BadRequestError("invalid_input", f"status: one of {', '.join(STATUSES)}, got "
                              f"{status!r}", field="status")
    if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_HOLD_LINES:
        raise BadRequestError("invalid_input", f"first: between 1 and {MAX_HOLD_LINES}",
                              field="first")
    params: dict[str, Any] = {"l": ledger.id, "p": path, "s": status, "n": first + 1}
    where_after = ""
    if after is not None:
        params["ac"], params["ai"] = decode_cursor("hold", after, "after")
        where_after = "AND (h.created, hl.id) < (:ac, :ai)"
    sql = _HOLD_LINES_PAGE.format(account="" if path is None else "AND a.path = :p",
                                  after=where_after)
    rows = conn.execute(sa.text(sql), params).all()
    more = len(rows) > first
    rows = rows[:first]
    info = PageInfo(more, after is not None,
                    encode_cursor("hold", rows[0].created, rows[0].id) if rows else None,
                    encode_cursor("hold", rows[-1].created, rows[-1].id) if rows else None)
    return Page([(_line(r, r.created), r.status) for r in rows], info)
