"""Raising events inside the transaction that makes the change, and reading them back as a
feed that never skips one.

Ids come from a sequence, so a transaction that started later can commit an event with a
smaller id than one already read: reading by id alone would skip it for good. Each event
also keeps the id of the transaction that wrote it (``xid8``); a reader only takes events
of transactions older than every transaction still running (``pg_snapshot_xmin``), in
``(xid, id)`` order. No transaction that could still commit sorts before what was read, so
a cursor ``(xid, id)`` is final: the feed has no gaps and never reorders.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import fastjson
from ledger.db import Pending
from ledger.errors import BadRequestError

# Event types, as the README lists them. A type outside this set is a programming error.
TYPES = frozenset({
    "entry.posted", "entry.reversed",
    "hold.created", "hold.committed", "hold.voided", "hold.expired",
    "job.failed", "balance.crossed", "tx.synced", "tx.unreconciled_for",
    "webhook_endpoint.disabled",
})
MAX_PAGE = 500


class _Switch:
    """Whether posting raises entry.posted (``LEDGER_EVENTS``): set once by each process's
    edge from its settings (``configure_events``); on unless turned off, so a process that
    never configured it still writes its events."""

    posted = True


_switch = _Switch()


def configure_events(enabled: bool) -> None:
    _switch.posted = bool(enabled)


def posting_raises_events() -> bool:
    return _switch.posted


@dataclass(frozen=True)
class Event:
    id: str          # "evt_<n>"
    type: str
    created: datetime
    ledger_ik: str | None
    payload: dict
    cursor: str      # pass as ``after`` to read what follows this event


@dataclass(frozen=True)
class EventPage:
    events: list[Event]
    # The cursor to continue from: the last event's, or the one given when none was new.
    end_cursor: str | None


def raise_event(conn: Connection, *, ledger_id: int | None, type: str,
                payload: dict[str, Any]) -> None:
    """Write one event in the caller's transaction: it exists exactly when the change does."""
    raise_events(conn, [(ledger_id, type, payload)])


def raise_events(conn: Connection, events: Iterable[tuple[int | None, str, dict]], *,
                 pending: Pending | None = None) -> None:
    """Write several events, in order, with one statement (one for a whole posting batch):
    now, or with the writes ``pending`` sends."""
    rows = [{"l": ledger_id, "t": type_, "p": payload} for ledger_id, type_, payload in events]
    for row in rows:
        if row["t"] not in TYPES:
            raise ValueError(f"unknown event type {row['t']!r}")
    if not rows:
        return
    if pending is None:
        conn.execute(_INSERT_EVENTS, {"rows": fastjson.dumps(rows)})
    else:
        pending.add(_INSERT_EVENTS, {"rows": fastjson.dumps(rows)})


# Ids follow the order of the rows given: the events of one transaction read in that order.
_INSERT_EVENTS = sa.text(
    "INSERT INTO events (ledger_id, type, payload) "
    "SELECT CAST(r.value->>'l' AS bigint), r.value->>'t', r.value->'p' "
    "FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS r(value, n) "
    "ORDER BY r.n")


def _cursor(xid: int, id_: int) -> str:
    return base64.urlsafe_b64encode(f"evt|{xid}|{id_}".encode()).decode().rstrip("=")


def _decode(cursor: Any) -> tuple[int, int]:
    bad = BadRequestError("invalid_input", "after: not a cursor of the event feed; pass the "
                          "endCursor (or an event's cursor) it returned", field="after")
    if not isinstance(cursor, str) or not cursor or len(cursor) > 100:
        raise bad
    try:
        kind, xid, id_ = base64.urlsafe_b64decode(
            cursor + "=" * (-len(cursor) % 4)).decode().split("|")
        if kind != "evt":
            raise ValueError(kind)
        return int(xid), int(id_)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad from None


def feed_head(conn: Connection) -> str:
    """A cursor after every event that is final now: what follows it is only what commits
    later (a new webhook endpoint starts here, not at the first event ever raised)."""
    xmin = conn.execute(sa.text(
        "SELECT CAST(pg_snapshot_xmin(pg_current_snapshot()) AS text)")).scalar_one()
    return _cursor(int(xmin), 0)


def read_events(conn: Connection, *, after: str | None = None, types: list[str] | None = None,
                ledger_id: int | None = None, first: int = 100) -> EventPage:
    """Events after the cursor ``after`` (from the start when None), oldest first, of the
    ``types`` given (all when None) and of one ledger when ``ledger_id`` is given."""
    if not isinstance(first, int) or not 1 <= first <= MAX_PAGE:
        raise BadRequestError("invalid_input", f"first: between 1 and {MAX_PAGE}", field="first")
    if types is not None:
        unknown = sorted(set(types) - TYPES)
        if unknown:
            raise BadRequestError("invalid_input", f"types: unknown event type {unknown[0]!r}; "
                                  f"known: {', '.join(sorted(TYPES))}", field="types")
    xid, id_ = _decode(after) if after is not None else (0, 0)
    where = ["e.xid < pg_snapshot_xmin(pg_current_snapshot())",
             "(e.xid, e.id) > (CAST(CAST(:x AS text) AS xid8), :i)"]
    params: dict[str, Any] = {"x": str(xid), "i": id_, "n": first}
    if types is not None:
        where.append("e.type = ANY(CAST(:types AS text[]))")
        params["types"] = list(types)
    if ledger_id is not None:
        where.append("e.ledger_id = :l")
        params["l"] = ledger_id
    rows = conn.execute(sa.text(
        "SELECT e.id, CAST(e.xid AS text) AS xid, e.type, e.created, g.ik, e.payload "
        "FROM events e LEFT JOIN ledgers g ON g.id = e.ledger_id "
        f"WHERE {' AND '.join(where)} ORDER BY e.xid, e.id LIMIT :n"), params).all()
    events = [Event(f"evt_{r.id}", r.type, r.created, r.ik, r.payload,
                    _cursor(int(r.xid), r.id)) for r in rows]
    return EventPage(events, events[-1].cursor if events else after)
