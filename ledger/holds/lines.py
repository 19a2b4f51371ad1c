"""Line lists by status (``lines(status: posted | pending | all)``): the lines of pending
holds are paged and filtered by the posted lines' own code (``ledger/history/queries.py``),
so every argument means the same for each status: ``filter``, an account path or pattern,
``first``/``after`` and ``last``/``before``, newest first. A pending line sits at its
hold's creation time; ``all`` merges both streams in the order (time, posted before
pending, id), each read a page at a time from its own keyset."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.errors import BadRequestError
from ledger.history.model import EntryFilter, Page
from ledger.history.queries import (
    account_ids_condition,
    entry_conditions,
    lines_of_rows,
    list_lines,
    paginate_streams,
    posted_lines_query,
)
from ledger.holds.store import _line
from ledger.ledgers import Ledger
from ledger.schema.model import Schema
from ledger.schema.store import load_schema

LINE_STATUSES = ("posted", "pending", "all")

# Ranks in the merged order: at one instant a posted line comes before a pending one.
_POSTED, _PENDING = 1, 0


def _pending_query(conn: Connection, ledger: Ledger, account: str | None, flt: EntryFilter,
                   schema: Schema) -> sa.Select:
    hl, h, e, a = t.hold_lines, t.holds, t.entries, t.accounts
    description = sa.func.coalesce(hl.c.description, e.c.description).label("description")
    q = (sa.select(hl.c.id, hl.c.entry_id, hl.c.key, a.c.path, a.c.type, hl.c.amount,
                   hl.c.currency, description, hl.c.tx_external_id,
                   h.c.created.label("posted"))
         .join_from(hl, h, h.c.entry_id == hl.c.entry_id)
         .join(e, e.c.id == hl.c.entry_id).join(a, a.c.id == hl.c.account_id)
         # A pending line's posted and created time is its hold's creation: filters on
         # either read that, as they read a posted line's own.
         .where(hl.c.ledger_id == ledger.id, h.c.ledger_id == ledger.id,
                h.c.status == "pending",
                *entry_conditions(ledger, flt, e, SimpleNamespace(
                    c={"posted": h.c.created, "created": h.c.created}))))
    if flt.currency is not None:
        q = q.where(hl.c.currency == flt.currency)
    if account is not None:
        q = q.where(account_ids_condition(conn, ledger, schema, account, hl.c.account_id))
    return q


def lines_by_status(conn: Connection, ledger: Ledger, account: str | None, flt: EntryFilter,
                    status: Any, first: Any = None, after: Any = None, last: Any = None,
                    before: Any = None) -> Page:
    """A page of ``(Line, status)``: posted lines (status None: as their entry says),
    pending hold lines (``pending``) or both (``all``), of an account, a pattern or the
    whole ledger (``account`` None), matching ``flt``, newest first. Arguments, errors and
    page sizes as in ``list_lines``; a cursor belongs to the status it was read with."""
    if status not in LINE_STATUSES:
        raise BadRequestError("invalid_input", f"status: one of {', '.join(LINE_STATUSES)}, "
                              f"got {status!r}", field="status")
    schema = load_schema(conn, ledger.id)
    if status == "posted":
        page = list_lines(conn, ledger, account, flt, first, after, last, before, schema=schema)
        return Page([(line, None) for line in page.nodes], page.page_info)
    ln, h = t.lines, t.holds
    streams = [(_PENDING, _pending_query(conn, ledger, account, flt, schema), h.c.created,
                t.hold_lines.c.id)]
    if status == "all":
        streams.append((_POSTED, posted_lines_query(conn, ledger, account, flt, schema),
                        ln.c.posted, ln.c.id))
    rows, info = paginate_streams(conn, status, streams, first, after, last, before)
    posted = iter(lines_of_rows(conn, [r for rank, r in rows if rank == _POSTED]))
    return Page([(next(posted), None) if rank == _POSTED
                 else (_line(SimpleNamespace(**r), r["posted"]), "pending")
                 for rank, r in rows], info)
