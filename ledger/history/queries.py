"""Lists of entries, lines, accounts and group balances, in keyset pages."""
from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.db import Database
from ledger.errors import BadRequestError
from ledger.history.entries import load_history_entries
from ledger.history.model import (
    AccountInfo,
    EntryFilter,
    EntryGroup,
    GroupBalance,
    Page,
    PageInfo,
)
from ledger.history.periods import _range
from ledger.ledgers import Ledger, load_ledger, parse_id
from ledger.posting.engine import line_from_row
from ledger.posting.rollup import fill_running_balances
from ledger.schema.model import Schema, resolve_queried_path
from ledger.schema.store import load_schema
from ledger.text import check_storable, unstorable

DEFAULT_PAGE = 20


MAX_PAGE = 200


def _cursor(kind: str, posted: datetime, id_: int, rank: int | None = None) -> str:
    raw = f"{kind}|{posted.isoformat()}|{id_}" + ("" if rank is None else f"|{rank}")
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(kind: str, cursor: Any, field: str,
                   ranks: tuple[int, ...] = ()) -> tuple[datetime, int]:
    """A cursor's position; with ``ranks`` (a list merging streams) also the rank of its
    stream, as a third item."""
    bad = BadRequestError("invalid_input", f"{field}: not a cursor of this list; pass a startCursor or endCursor it returned", field=field)
    if not isinstance(cursor, str) or not cursor or len(cursor) > 200:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        k, posted, id_, *rank = raw.split("|")
        when = datetime.fromisoformat(posted)
        if (k != kind or when.tzinfo is None or parse_id(id_) is None
                or len(rank) != (1 if ranks else 0) or (ranks and rank[0] not in map(str, ranks))):
            raise ValueError(raw)
        return (when, int(id_), int(rank[0])) if ranks else (when, int(id_))
    except (ValueError, UnicodeDecodeError):
        raise bad from None


def _page_size(value: Any, field: str) -> int:
    if value is None:
        return DEFAULT_PAGE
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PAGE:
        raise BadRequestError("invalid_input", f"{field}: expected a page size from 0 to {MAX_PAGE}, got {value!r}", field=field)
    return value


def _paginate(conn: Connection, kind: str, query: sa.Select, posted_col, id_col,
              first: Any, after: Any, last: Any, before: Any) -> tuple[list, PageInfo]:
    """Keyset pagination over ``(posted, id)`` descending: a cursor is a position, not an
    offset, so rows inserted meanwhile never shift a page nor repeat a row."""
    rows, info = _paginate_streams(conn, kind, [(0, query, posted_col, id_col)],
                                   first, after, last, before)
    return [row for _, row in rows], info


def _beyond(rank: int, posted_col, id_col, cursor: tuple, op: str):
    """The rows of stream ``rank`` on side ``op`` of ``cursor`` in the order (posted, rank,
    id): within the cursor's own stream a keyset comparison, in another stream one on
    ``posted`` alone (a tie on it is decided by rank), so each stays an index range."""
    when = sa.literal(cursor[0], sa.DateTime(timezone=True))
    if len(cursor) == 2 or cursor[2] == rank:
        key = sa.tuple_(posted_col, id_col)
        position = sa.tuple_(when, sa.literal(cursor[1], sa.BigInteger))
        return {"<": key < position, ">": key > position,
                "<=": key <= position, ">=": key >= position}[op]
    if op in ("<", "<="):
        return posted_col <= when if rank < cursor[2] else posted_col < when
    return posted_col >= when if rank > cursor[2] else posted_col > when


def _paginate_streams(conn: Connection, kind: str, streams: list, first: Any, after: Any,
                      last: Any, before: Any) -> tuple[list, PageInfo]:
    """``_paginate`` over several streams ``(rank, query, posted_col, id_col)`` merged in
    the order (posted, rank, id) descending: each reads at most one page from its own
    keyset, whatever the history. Returns ``[(rank, row)]`` and the page info; with more
    than one stream a cursor also names its stream's rank."""
    if first is not None and last is not None:
        raise BadRequestError("invalid_input", "last: give first or last, not both", field="last")
    backward = last is not None
    size = _page_size(last if backward else first, "last" if backward else "first")
    ranks = tuple(s[0] for s in streams) if len(streams) > 1 else ()
    a = _decode_cursor(kind, after, "after", ranks) if after is not None else None
    b = _decode_cursor(kind, before, "before", ranks) if before is not None else None
    fetched = []
    for rank, query, posted_col, id_col in streams:
        q = query
        if a is not None:
            q = q.where(_beyond(rank, posted_col, id_col, a, "<"))
        if b is not None:
            q = q.where(_beyond(rank, posted_col, id_col, b, ">"))
        order = (posted_col.asc(), id_col.asc()) if backward else (posted_col.desc(), id_col.desc())
        fetched += [(r["posted"], rank, r["id"], r)
                    for r in conn.execute(q.order_by(*order).limit(size + 1)).mappings()]
    fetched.sort(key=lambda x: x[:3], reverse=not backward)
    more = len(fetched) > size
    rows = fetched[:size]
    if backward:
        rows.reverse()

    def exists(cursor: tuple, op: str) -> bool:
        return any(conn.execute(sa.select(query.where(
            _beyond(rank, posted_col, id_col, cursor, op)).exists())).scalar()
            for rank, query, posted_col, id_col in streams)

    if backward:
        has_previous, has_next = more, b is not None and exists(b, "<=")
    else:
        has_next, has_previous = more, a is not None and exists(a, ">=")

    def cursor(x) -> str:
        return _cursor(kind, x[0], x[2], x[1] if ranks else None)
    info = PageInfo(has_next, has_previous, cursor(rows[0]) if rows else None,
                    cursor(rows[-1]) if rows else None)
    return [(x[1], x[3]) for x in rows], info


def _entry_conditions(ledger: Ledger, flt: EntryFilter, e, time_source) -> list:
    """SQL conditions of ``flt`` on entries ``e``; times are read on ``time_source``
    (the entries, or the lines, which carry the same posted and created)."""
    conds = []
    for name, rng in (("posted", flt.posted), ("created", flt.created)):
        start, end = _range(rng, ledger.balance_utc_offset, f"filter.{name}")
        col = time_source.c[name]
        if start is not None:
            conds.append(col >= start)
        if end is not None:
            conds.append(col < end)
    if flt.types:
        conds.append(e.c.type.in_(list(flt.types)))
    if flt.tags:
        conds.append(e.c.tags.contains(dict(flt.tags)))
    if flt.groups:
        conds.append(e.c.groups.contains(dict(flt.groups)))
    hidden = sa.or_(e.c.reverses_id.is_not(None), e.c.reversed_by_id.is_not(None))
    if flt.reversed is False:
        conds.append(sa.not_(hidden))
    elif flt.reversed is True:
        conds.append(hidden)
    return conds


def _account_ids(ledger: Ledger, schema: Schema, account: str, field: str = "account"):
    """A subquery of the ids of the accounts an account argument names: a path, a pattern
    with ``*`` standing for one instance value or key (``liabilities/users:*/available``),
    or a path ending in ``/*`` for all its descendants."""
    if not isinstance(account, str) or not account.strip():
        raise BadRequestError("invalid_input", f"{field}: expected an account path or pattern", field=field)
    check_storable(account, field)
    a = t.accounts.c
    base = sa.select(a.id).where(a.ledger_id == ledger.id)
    if "*" not in account:
        resolve_queried_path(schema, account, field)
        return base.where(a.path == account)
    head, descendants = (account[:-2], True) if account.endswith("/*") else (account, False)
    if not head or "//" in account or "**" in account:
        raise BadRequestError("invalid_input", f"{field}: {account!r} is not a path pattern", field=field)
    regex = "^" + "[^/]+".join(re.escape(p) for p in head.split("*")) + ("/.+" if descendants else "") + "$"
    prefix = head.split("*", 1)[0]
    q = base.where(a.path.op("~")(regex))
    if prefix:
        # Under the C collation, the literal head of the pattern bounds an index range.
        q = q.where(a.path >= prefix)
        upper = _after_prefix(prefix)
        if upper is not None:
            q = q.where(a.path < upper)
    return q


def _after_prefix(prefix: str) -> str | None:
    """The least text above every text starting with ``prefix`` in code point order (the C
    collation's order of UTF-8), or None when there is none. The next code point after
    U+D7FF is U+E000: a surrogate can be neither stored nor sent to the database."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(0xE000 if 0xD800 <= last + 1 <= 0xDFFF else last + 1)
        prefix = prefix[:-1]
    return None


def list_entries(conn: Connection, ledger: Ledger, flt: EntryFilter | None = None,
                 first: int | None = None, after: str | None = None, last: int | None = None,
                 before: str | None = None, *, schema: Schema | None = None,
                 account: str | None = None) -> Page:
    """Entries of the ledger matching ``flt`` (and, given ``account``, having a line in it),
    newest ``posted`` first."""
    flt = flt or EntryFilter()
    e = t.entries
    q = sa.select(e).where(e.c.ledger_id == ledger.id, *_entry_conditions(ledger, flt, e, e))
    if flt.currency is not None:
        q = q.where(sa.exists().where(t.lines.c.entry_id == e.c.id, t.lines.c.currency == flt.currency))
    if account is not None:
        ids = _account_ids(ledger, schema or load_schema(conn, ledger.id), account)
        q = q.where(sa.exists().where(t.lines.c.entry_id == e.c.id, t.lines.c.account_id.in_(ids)))
    rows, info = _paginate(conn, "entry", q, e.c.posted, e.c.id, first, after, last, before)
    return Page(load_history_entries(conn, ledger, rows), info)


def _account_ids_condition(conn: Connection, ledger: Ledger, schema: Schema | None,
                           account: str, column):
    """``column`` in the accounts an account argument names (as ``_account_ids``)."""
    # Ids first, as literals: the planner then walks the (account_id, posted, id) index
    # of a single account, or the ledger's (ledger_id, posted, id) index for several,
    # newest first, and stops after one page, instead of sorting all their lines.
    ids = conn.execute(_account_ids(
        ledger, schema or load_schema(conn, ledger.id), account)).scalars().all()
    if not ids:
        return sa.false()
    if len(ids) == 1:
        return column == ids[0]
    return column == sa.any_(sa.literal(list(ids), sa.ARRAY(sa.BigInteger)))


def _posted_lines_query(conn: Connection, ledger: Ledger, account: str | None,
                        flt: EntryFilter, schema: Schema | None) -> sa.Select:
    ln, e, a = t.lines, t.entries, t.accounts
    # A line without a description of its own reads its entry's, as in the entry's lines
    # and a mutation's result: the same line says the same thing on every path.
    columns = [c for c in ln.c if c.name != "description"]
    description = sa.func.coalesce(ln.c.description, e.c.description).label("description")
    q = (sa.select(*columns, description, a.c.path, a.c.type.label("account_type"),
                   a.c.consistency)
         .join_from(ln, a, a.c.id == ln.c.account_id).join(e, e.c.id == ln.c.entry_id)
         .where(ln.c.ledger_id == ledger.id, *_entry_conditions(ledger, flt, e, ln)))
    if flt.currency is not None:
        q = q.where(ln.c.currency == flt.currency)
    if account is not None:
        q = q.where(_account_ids_condition(conn, ledger, schema, account, ln.c.account_id))
    return q


def _lines_of_rows(conn: Connection, rows: list) -> list:
    return fill_running_balances(conn, [line_from_row(r) for r in rows])


def list_lines(conn: Connection, ledger: Ledger, account: str | None = None,
               flt: EntryFilter | None = None, first: int | None = None, after: str | None = None,
               last: int | None = None, before: str | None = None, *,
               schema: Schema | None = None) -> Page:
    """Lines of an account, of a path pattern, or (``account`` None) of the whole ledger,
    whose entries match ``flt``, newest ``posted`` first."""
    q = _posted_lines_query(conn, ledger, account, flt or EntryFilter(), schema)
    ln = t.lines
    rows, info = _paginate(conn, "line", q, ln.c.posted, ln.c.id, first, after, last, before)
    return Page(_lines_of_rows(conn, rows), info)


def _group_key(key: Any, value: Any) -> tuple[str, str]:
    if not isinstance(key, str) or not key:
        raise BadRequestError("invalid_input", "group.key: a group key is required", field="group.key")
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
        raise BadRequestError("invalid_input", "group.value: a group value is required", field="group.value")
    check_storable(key, "group.key")
    check_storable(str(value), "group.value")
    return key, str(value)


def group_balances(conn: Connection, ledger: Ledger, key: str, value: str,
                   flt: EntryFilter | None = None) -> EntryGroup:
    """Net change per account and currency of the entries in group ``key``=``value`` that
    match ``flt`` (by default reversed entries and their reversals, which net to zero, are
    left out). Accounts whose lines in the group net to zero are listed with 0."""
    key, value = _group_key(key, value)
    flt = flt or EntryFilter()
    ln, e, a = t.lines, t.entries, t.accounts
    q = (sa.select(a.c.path, ln.c.currency, sa.func.sum(ln.c.amount))
         .select_from(e).join(ln, ln.c.entry_id == e.c.id).join(a, a.c.id == ln.c.account_id)
         .where(e.c.ledger_id == ledger.id, e.c.groups.contains({key: value}),
                *_entry_conditions(ledger, flt, e, e))
         .group_by(a.c.path, ln.c.currency).order_by(a.c.path, ln.c.currency))
    if flt.currency is not None:
        q = q.where(ln.c.currency == flt.currency)
    return EntryGroup(key, value, [GroupBalance(r[0], r[1], int(r[2])) for r in conn.execute(q)])


def list_group_entries(conn: Connection, ledger: Ledger, key: str, value: str,
                       flt: EntryFilter | None = None, first: int | None = None,
                       after: str | None = None, last: int | None = None,
                       before: str | None = None) -> Page:
    key, value = _group_key(key, value)
    flt = flt or EntryFilter()
    if flt.groups.get(key, value) != value:
        return Page([], PageInfo(False, False, None, None))
    merged = EntryFilter(flt.posted, flt.created, flt.types, flt.tags,
                         {**flt.groups, key: value}, flt.currency, flt.reversed)
    return list_entries(conn, ledger, merged, first, after, last, before)


def list_ledger_accounts(db: Database, ledger_ik: str, *, first: int | None = None,
                         after: str | None = None, last: int | None = None,
                         before: str | None = None) -> Page:
    """``list_ledger_accounts(db, ledger_ik, *, first, after, last, before) ->
    Page[AccountInfo]``: the accounts the ledger holds (those lines were posted to), by
    path. Keyset pages as in ``list_lines`` (20 by default, at most 200); a cursor is a
    position in path order, so accounts created meanwhile never shift a page."""
    if first is not None and last is not None:
        raise BadRequestError("invalid_input", "last: give first or last, not both", field="last")
    backward = last is not None
    field = "last" if backward else "first"
    size = last if backward else first
    if size is None:
        size = DEFAULT_PAGE
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_PAGE:
        raise BadRequestError("invalid_input", f"{field}: expected a page size from 0 to {MAX_PAGE}, got {size!r}", field=field)
    a = t.accounts.c
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        base = sa.select(a.id, a.path, a.type, a.consistency, a.created).where(a.ledger_id == ledger.id)
        q = base
        lo = _account_cursor(after, "after") if after is not None else None
        hi = _account_cursor(before, "before") if before is not None else None
        if lo is not None:
            q = q.where(a.path > lo)
        if hi is not None:
            q = q.where(a.path < hi)
        q = q.order_by(a.path.desc() if backward else a.path).limit(size + 1)
        rows = conn.execute(q).all()
        more = len(rows) > size
        rows = list(rows[:size])
        if backward:
            rows.reverse()

        def exists(cond) -> bool:
            return bool(conn.execute(sa.select(base.where(cond).exists())).scalar())

        if backward:
            has_previous, has_next = more, hi is not None and exists(a.path >= hi)
        else:
            has_next, has_previous = more, lo is not None and exists(a.path <= lo)
    nodes = [AccountInfo(str(r.id), r.path, r.type, r.consistency, r.created) for r in rows]
    return Page(nodes, PageInfo(has_next, has_previous,
                                _encode_account_cursor(nodes[0].path) if nodes else None,
                                _encode_account_cursor(nodes[-1].path) if nodes else None))


def _encode_account_cursor(path: str) -> str:
    return base64.urlsafe_b64encode(f"account|{path}".encode()).decode().rstrip("=")


def _account_cursor(cursor: Any, field: str) -> str:
    bad = BadRequestError("invalid_input", f"{field}: not a cursor of this list; pass a startCursor or endCursor it returned", field=field)
    if not isinstance(cursor, str) or not cursor or len(cursor) > 4000:
        raise bad
    try:
        kind, sep, path = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("|")
    except (ValueError, UnicodeDecodeError):
        raise bad from None
    if kind != "account" or not sep or not path or unstorable(path):
        raise bad
    return path


# The same cursor codec, paging, filters and posted-lines query under public names, for
# other capabilities' keyset lists (ledger/holds/: hold lines paged by (created, id), and
# lines(status: pending | all), which page pending lines as posted ones are).
encode_cursor = _cursor
decode_cursor = _decode_cursor
paginate_streams = _paginate_streams
entry_conditions = _entry_conditions
account_ids_condition = _account_ids_condition
posted_lines_query = _posted_lines_query
lines_of_rows = _lines_of_rows
