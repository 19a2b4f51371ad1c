"""An account's lines with the entry each belongs to: what a wallet's statement shows (the
REST ``/v1/ledgers/{ik}/accounts/{path}/lines``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.history.model import EntryFilter, PageInfo, TimeRange
from ledger.history.periods import period_range
from ledger.history.queries import list_lines
from ledger.ledgers import Ledger
from ledger.posting.model import Line


@dataclass
class EntryRef:
    id: str
    ik: str
    type: str
    description: str | None


@dataclass
class AccountLines:
    """One page of lines, newest posted first, and the entries they belong to by id."""

    lines: list[Line]
    entries: dict[str, EntryRef]
    page_info: PageInfo


def account_lines(conn: Connection, ledger: Ledger, path: str, first: Any = None,
                  after: Any = None, period: Any = None) -> AccountLines:
    """Every line of ``path`` (reversed and reversing ones too, so that each line's running
    balance follows from the one before it), within ``period`` if given."""
    posted = None
    if period is not None:
        # Checked here so that a bad one is refused naming ``period``, as the caller called it.
        start, end = period_range(period, ledger.balance_utc_offset, "period")
        posted = TimeRange(start, end)
    flt = EntryFilter(posted=posted, reversed=None)
    page = list_lines(conn, ledger, path, flt, first, after)
    ids = sorted({int(line.entry_id) for line in page.nodes})
    e = t.entries.c
    refs = {str(r.id): EntryRef(str(r.id), r.ik, r.type, r.description) for r in conn.execute(
        sa.select(e.id, e.ik, e.type, e.description).where(e.id.in_(ids)))} if ids else {}
    return AccountLines(page.nodes, refs, page.page_info)
