"""Ledger history: balances at a point in time and over periods, reversals, entry and line
queries with keyset pagination, tag and group updates, group balances.

Every function here runs inside the caller's transaction (``conn``); ``ledger/service.py``
wraps each one for callers.

The performance bound of time travel
------------------------------------
Each line carries ``balance_after``: the own balance of its account in its currency right
after it, in ``(posted, id)`` order (``ledger/posting.py`` keeps it exact under the balance
row lock; the rollup numbers the lines of eventually consistent accounts). So:

- the own balance of an account at a time is, per currency the account holds, one probe of
  the index ``(account_id, currency, posted, id)`` for the last line at or before that time:
  one index descent and one row, whatever the number of lines of the account or ledger;
- a child or total balance costs one such probe per (descendant account, currency);
- a change over a period costs two probes per (account, currency);
- for an eventually consistent account the probe also steps over its lines the rollup has
  not numbered yet (at most the rollup's backlog).

The price is paid on writes, and only when posting into the past: a backdated line adds its
amount to the running total of every later line of the same account and currency. Posting
at the end of an account's history costs nothing extra: the totals follow from the locked
balance (ledger/posting.py, ``_running_totals``).
"""
from __future__ import annotations

import base64
import re
from calendar import monthrange
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import posting
from ledger import tables as t
from ledger.balances import child_range, resolve_read_path
from ledger.errors import BadRequestError, NotFoundError
from ledger.model import (AccountBalances, BalanceChange, EntryChange, EntryFilter, EntryGroup,
                          EntryRequest, GroupBalance, HistoryEntry, Ledger, Line, Page, PageInfo,
                          ReverseResult, TimeRange, UpdateEntryResult, check_storable,
                          parse_time)
from ledger.schema import (CompiledCondition, CompiledEntry, CompiledLine, Schema, Text,
                           resolve_path)

DEFAULT_PAGE = 20
MAX_PAGE = 200

# ---------------------------------------------------------------------------- periods

_PERIOD = re.compile(r"^(\d{4})(?:-Q([1-4])|-(\d{2})(?:-(\d{2})(?:T(\d{2}))?)?)?$", re.IGNORECASE)
_OFFSET = re.compile(r"^([+-])(\d{2}):00$")
_END_OF_TIME = datetime.max.replace(tzinfo=timezone.utc)


def ledger_timezone(offset: str) -> timezone:
    m = _OFFSET.match(offset or "+00:00")
    if not m:
        return timezone.utc
    hours = int(m.group(2)) * (-1 if m.group(1) == "-" else 1)
    return timezone(timedelta(hours=hours))


def _local(tz: timezone, year: int, month: int = 1, day: int = 1, hour: int = 0) -> datetime:
    if year > 9999:
        return _END_OF_TIME
    return datetime(year, month, day, hour, tzinfo=tz).astimezone(timezone.utc)


def is_period(text: Any) -> bool:
    return isinstance(text, str) and _PERIOD.match(text.strip()) is not None


def period_range(period: str, offset: str, field: str = "period") -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of ``2025``, ``2025-Q1``, ``2025-02``, ``2025-02-03`` or
    ``2025-02-03T04``, whose calendar is the ledger's balanceUTCOffset."""
    m = _PERIOD.match(period.strip()) if isinstance(period, str) else None
    bad = BadRequestError(
        "invalid_input", f"{field}: expected a period like 2025, 2025-Q1, 2025-02, 2025-02-03 "
        f"or 2025-02-03T04, got {period!r}", field=field)
    if m is None:
        raise bad
    tz = ledger_timezone(offset)
    year, quarter, month, day, hour = m.groups()
    y = int(year)
    if y < 1:
        raise bad
    if quarter:
        q = int(quarter)
        start = _local(tz, y, 3 * q - 2)
        end = _local(tz, y + 1) if q == 4 else _local(tz, y, 3 * q + 1)
        return start, end
    if month is None:
        return _local(tz, y), _local(tz, y + 1)
    mo = int(month)
    if not 1 <= mo <= 12:
        raise bad
    if day is None:
        return _local(tz, y, mo), (_local(tz, y + 1) if mo == 12 else _local(tz, y, mo + 1))
    d = int(day)
    if not 1 <= d <= monthrange(y, mo)[1]:
        raise bad
    try:
        if hour is None:
            start = _local(tz, y, mo, d)
            return start, _after(start, timedelta(days=1))
        h = int(hour)
        if not 0 <= h <= 23:
            raise bad
        start = _local(tz, y, mo, d, h)
        return start, _after(start, timedelta(hours=1))
    except (OverflowError, ValueError):
        raise bad from None


def _after(start: datetime, step: timedelta) -> datetime:
    try:
        return start + step
    except OverflowError:
        return _END_OF_TIME


def resolve_at(at: Any, offset: str, field: str = "at") -> tuple[datetime, bool]:
    """The moment a balance is read at, and whether a line posted exactly then counts.

    A period string (``2025-02``) means the end of that period in the ledger's offset: every
    line posted before the next period starts. A time (a datetime or an ISO 8601 string
    with a time) counts every line posted at or before it."""
    if isinstance(at, str) and is_period(at):
        return period_range(at, offset, field)[1], False
    return parse_time(at, field), True


def _range(r: TimeRange | None, offset: str, field: str) -> tuple[datetime | None, datetime | None]:
    if r is None:
        return None, None
    if r.period is not None:
        return period_range(r.period, offset, field)
    return r.start, r.end


# ---------------------------------------------------------------------------- balances

def _own_sql(where: str, bounds: list[tuple[str, str]], group: bool) -> sa.TextClause:
    """Balances of the accounts matching ``where`` at each bound: one index probe per
    (account, currency) and bound, on (account_id, currency, posted, id)."""
    cols, joins = [], []
    for name, op in bounds:
        joins.append(
            f"LEFT JOIN LATERAL (SELECT x.balance_after FROM lines x "
            f"WHERE x.account_id = b.account_id AND x.currency = b.currency "
            f"AND x.posted {op} :{name} AND x.balance_after IS NOT NULL "
            f"ORDER BY x.posted DESC, x.id DESC LIMIT 1) {name}_x ON true")
        cols.append(f"sum(coalesce({name}_x.balance_after, 0))" if group
                    else f"coalesce({name}_x.balance_after, 0)")
    return sa.text(
        f"SELECT b.currency, {', '.join(cols)} FROM accounts a "
        f"JOIN balances b ON b.account_id = a.id {' '.join(joins)} "
        f"WHERE a.ledger_id = :l AND {where}" + (" GROUP BY b.currency" if group else ""))


def _balances_at(conn: Connection, ledger: Ledger, schema: Schema, path: str,
                 bounds: dict[str, tuple[datetime, bool]]):
    """Own and child balances of ``path`` at each named bound: ``{name: (own, child)}``."""
    account, template_node = resolve_read_path(schema, path)
    spec = [(name, "<=" if inclusive else "<") for name, (_, inclusive) in bounds.items()]
    params = {"l": ledger.id, **{name: when for name, (when, _) in bounds.items()}}
    own: dict[str, dict[str, int]] = {name: {} for name in bounds}
    child: dict[str, dict[str, int]] = {name: {} for name in bounds}
    if not template_node:
        for row in conn.execute(_own_sql("a.path = :p", spec, False), {**params, "p": path}):
            for i, name in enumerate(bounds):
                own[name][row[0]] = own[name].get(row[0], 0) + int(row[i + 1])
    lo, hi = child_range(path, template_node)
    for row in conn.execute(_own_sql("a.path > :lo AND a.path < :hi", spec, True),
                            {**params, "lo": lo, "hi": hi}):
        for i, name in enumerate(bounds):
            child[name][row[0]] = int(row[i + 1])
    if account.currency_mode == "single":
        for name in bounds:
            own[name].setdefault(account.currency, 0)
            child[name].setdefault(account.currency, 0)
    return account, own, child


def _total(own: dict[str, int], child: dict[str, int]) -> dict[str, int]:
    return {c: own.get(c, 0) + child.get(c, 0) for c in sorted(set(own) | set(child))}


def account_balances_at(conn: Connection, ledger: Ledger, schema: Schema, path: str,
                        at: Any) -> AccountBalances:
    """Own, child and total balance of ``path`` at ``at`` (see ``resolve_at``)."""
    when = resolve_at(at, ledger.balance_utc_offset)
    account, own, child = _balances_at(conn, ledger, schema, path, {"at_": when})
    o, c = dict(sorted(own["at_"].items())), dict(sorted(child["at_"].items()))
    return AccountBalances(path, account.type, o, c, _total(o, c))


def balance_change(conn: Connection, ledger: Ledger, schema: Schema, path: str,
                   period: str) -> BalanceChange:
    """How own, child and total balances of ``path`` changed over ``period``."""
    start, end = period_range(period, ledger.balance_utc_offset)
    account, own, child = _balances_at(conn, ledger, schema, path,
                                       {"start_": (start, False), "end_": (end, False)})

    def diff(d: dict[str, dict[str, int]]) -> dict[str, int]:
        cur = set(d["start_"]) | set(d["end_"])
        return {c: d["end_"].get(c, 0) - d["start_"].get(c, 0) for c in sorted(cur)}

    o, c = diff(own), diff(child)
    return BalanceChange(path, account.type, period, start, end, o, c, _total(o, c))


# ---------------------------------------------------------------------------- entries

def _entry_id(value: Any, field: str = "id") -> int:
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not text.isdigit() or len(text) > 18:
        raise NotFoundError("entry_not_found", f"{field}: no entry {value!r}", field=field)
    return int(text)


def load_history_entries(conn: Connection, ledger: Ledger, rows) -> list[HistoryEntry]:
    """Entries (rows of ``entries``) with their lines, in the order given."""
    ids = [r["id"] for r in rows]
    by_entry: dict[int, list[Line]] = {}
    if ids:
        for r in conn.execute(
                sa.select(t.lines, t.accounts.c.path, t.accounts.c.type.label("account_type"))
                .join(t.accounts, t.accounts.c.id == t.lines.c.account_id)
                .where(t.lines.c.entry_id.in_(ids)).order_by(t.lines.c.id)).mappings():
            by_entry.setdefault(r["entry_id"], []).append(posting.line_from_row(r))
    return [_history_entry(r, ledger.ik, by_entry.get(r["id"], [])) for r in rows]


def _history_entry(r, ledger_ik: str, lines: list[Line]) -> HistoryEntry:
    return HistoryEntry(
        str(r["id"]), ledger_ik, r["ik"], r["type"], r["description"], r["posted"], r["created"],
        dict(r["tags"]), dict(r["groups"]), lines, ik_version=r["ik_version"],
        reverses_id=str(r["reverses_id"]) if r["reverses_id"] is not None else None,
        reversed_by_id=str(r["reversed_by_id"]) if r["reversed_by_id"] is not None else None,
        reversed_at=r["reversed_at"])


def _entry_row(conn: Connection, ledger: Ledger, entry_id: int, lock: bool = False):
    q = sa.select(t.entries).where(t.entries.c.id == entry_id, t.entries.c.ledger_id == ledger.id)
    if lock:
        q = q.with_for_update()
    row = conn.execute(q).mappings().first()
    if row is None:
        raise NotFoundError("entry_not_found", f"id: no entry {entry_id} in ledger {ledger.ik!r}", field="id")
    return row


def get_entry(conn: Connection, ledger: Ledger, entry_id: Any) -> HistoryEntry:
    return load_history_entries(conn, ledger, [_entry_row(conn, ledger, _entry_id(entry_id))])[0]


def get_entry_by_ik(conn: Connection, ledger: Ledger, ik: str,
                    version: int | None = None) -> HistoryEntry:
    """The entry posted under ``ik``: its latest version, or the version asked for."""
    q = sa.select(t.entries).where(t.entries.c.ledger_id == ledger.id, t.entries.c.ik == ik,
                                   t.entries.c.ik_version > 0)
    if version is not None:
        q = q.where(t.entries.c.ik_version == version)
    row = conn.execute(q.order_by(t.entries.c.ik_version.desc()).limit(1)).mappings().first()
    if row is None:
        which = f" version {version}" if version is not None else ""
        raise NotFoundError("entry_not_found", f"ik: no entry with ik {ik!r}{which} in ledger {ledger.ik!r}", field="ik")
    return load_history_entries(conn, ledger, [row])[0]


def ik_versions(conn: Connection, ledger: Ledger, ik: str) -> list[HistoryEntry]:
    """Every entry posted under ``ik``, oldest version first; all but the last are reversed."""
    rows = conn.execute(sa.select(t.entries).where(
        t.entries.c.ledger_id == ledger.id, t.entries.c.ik == ik, t.entries.c.ik_version > 0)
        .order_by(t.entries.c.ik_version)).mappings().all()
    if not rows:
        raise NotFoundError("entry_not_found", f"ik: no entry with ik {ik!r} in ledger {ledger.ik!r}", field="ik")
    return load_history_entries(conn, ledger, rows)


# ---------------------------------------------------------------------------- reversals

def reverse_entry(conn: Connection, ledger: Ledger, entry_id: Any) -> ReverseResult:
    """Reverse an entry: a new entry mirrors each of its lines at the same posted time.

    Reversing a reversed entry again returns the first reversal (``is_ik_replay``). The
    reversal is refused with ``condition_failed`` when it would move an account past a
    condition the schema guards it with (see ``_guarding_conditions``); nothing is written
    then. A reversing entry cannot itself be reversed (``entry_reversed``): post again
    under the original ik instead."""
    original = _entry_row(conn, ledger, _entry_id(entry_id), lock=True)
    if original["reverses_id"] is not None:
        raise BadRequestError(
            "entry_reversed", f"id: entry {original['id']} is the reversal of entry "
            f"{original['reverses_id']} and cannot be reversed; post the original ik again instead",
            field="id")
    if original["reversed_by_id"] is not None:
        reversing = _entry_row(conn, ledger, original["reversed_by_id"])
        found = load_history_entries(conn, ledger, [original, reversing])
        return ReverseResult(found[0], found[1], True)

    schema = posting.load_schema(conn, ledger.id)
    now = datetime.now(timezone.utc)
    lines = [CompiledLine(r["key"], r["path"], resolve_path(schema, r["path"], "path"),
                          -int(r["amount"]), r["currency"], None, r["description"])
             for r in conn.execute(
                 sa.select(t.lines, t.accounts.c.path)
                 .join(t.accounts, t.accounts.c.id == t.lines.c.account_id)
                 .where(t.lines.c.entry_id == original["id"]).order_by(t.lines.c.id)).mappings()]
    description = f"Reversal of: {original['description'] or original['type']}"
    # A savepoint, so that a refused reversal leaves nothing behind even in a caller's
    # longer transaction.
    with conn.begin_nested():
        reversing_id = conn.execute(t.entries.insert().values(
            ledger_id=ledger.id, ik=original["ik"], ik_version=-original["ik_version"],
            fingerprint="reversal", type=original["type"], description=description,
            posted=original["posted"], created=now, parameters=original["parameters"],
            tags=original["tags"], groups=original["groups"], reverses_id=original["id"],
        ).returning(t.entries.c.id)).scalar_one()
        compiled = CompiledEntry(
            EntryRequest(ik=original["ik"], type=original["type"], posted=original["posted"]),
            original["type"], description, lines, _guarding_conditions(schema, lines),
            dict(original["tags"]), dict(original["groups"]))
        try:
            posting.apply_compiled(conn, ledger, schema, [compiled], [reversing_id], now)
        except BadRequestError as exc:
            if exc.code != "condition_failed":
                raise
            raise BadRequestError(
                "condition_failed", f"entry {original['id']} cannot be reversed: {exc.message}",
                field=exc.field) from None
        conn.execute(t.entries.update().where(t.entries.c.id == original["id"])
                     .values(reversed_by_id=reversing_id, reversed_at=now))
    found = load_history_entries(conn, ledger, [
        _entry_row(conn, ledger, original["id"]), _entry_row(conn, ledger, reversing_id)])
    return ReverseResult(found[0], found[1], False)


def _template_regex(text: Text) -> re.Pattern:
    return re.compile("".join(re.escape(p) if i % 2 == 0 else ".+" for i, p in enumerate(text.parts)))


def _matches(template, path: str) -> bool:
    parts = path.split("/")
    if len(parts) != len(template.segments):
        return False
    for seg, raw in zip(template.segments, parts):
        key, sep, value = raw.partition(":")
        if key != seg.key or bool(sep) != (seg.value is not None):
            return False
        if seg.value is not None and not _template_regex(seg.value).fullmatch(value):
            return False
    return True


def _guarding_conditions(schema: Schema, lines: list[CompiledLine]) -> list[CompiledCondition]:
    """The conditions a reversal must keep: every postcondition of the schema with a
    constant bound (``gte``/``lte``) on an account the reversal changes, where the reversal
    moves that balance towards the bound. Such a postcondition states what the account
    must never cross ("a user's available balance stays >= 0"); a bound that depends on an
    entry's parameters, or an ``eq``, describes one kind of entry, not the account."""
    own_net: dict[tuple[str, str], int] = {}
    for line in lines:
        own_net[(line.path, line.currency)] = own_net.get((line.path, line.currency), 0) + line.amount
    accounts = {line.path: line.account for line in lines}
    out: dict[tuple, CompiledCondition] = {}
    for et in schema.entry_types.values():
        for cond in et.conditions:
            if cond.when != "post" or cond.op == "eq" or cond.value.params:
                continue
            only = cond.currency.parts[0] if cond.currency and cond.currency.is_literal else None
            for path in accounts:
                if not _matches(cond.path, path):
                    continue
                for (p, currency), _ in own_net.items():
                    if p != path or (only is not None and currency != only):
                        continue
                    if cond.balance == "own":
                        net = own_net[(path, currency)]
                    else:
                        net = sum(v for (q, c), v in own_net.items() if c == currency and (
                            q == path or q.startswith(path + "/")))
                    if (cond.op == "gte" and net < 0) or (cond.op == "lte" and net > 0):
                        key = (path, cond.balance, cond.op, cond.value.const, currency)
                        out[key] = CompiledCondition(path, accounts[path], "post", cond.balance,
                                                     cond.op, cond.value.const, currency)
    return [out[k] for k in sorted(out, key=str)]


# ---------------------------------------------------------------------------- updates

def _changes(value: Any, field: str) -> dict[str, str | None]:
    """Tag or group changes: ``{key: value}`` or ``[{key, value}]``; a None value removes."""
    if value is None:
        return {}
    items = list(value.items()) if isinstance(value, dict) else None
    if isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            if not isinstance(item, dict) or "key" not in item:
                raise BadRequestError("invalid_input", f"{field}[{i}]: expected {{\"key\": ..., \"value\": ...}}", field=f"{field}[{i}]")
            items.append((item["key"], item.get("value")))
    if items is None:
        raise BadRequestError("invalid_input", f"{field}: expected a list of {{key, value}}", field=field)
    out: dict[str, str | None] = {}
    for k, v in items:
        if not isinstance(k, str) or not k:
            raise BadRequestError("invalid_input", f"{field}: a key must be a non-empty string", field=field)
        if v is not None and (not isinstance(v, (str, int)) or isinstance(v, bool)):
            raise BadRequestError("invalid_input", f"{field}.{k}: value must be a string (or null to remove it)", field=f"{field}.{k}")
        if k in out:
            raise BadRequestError("invalid_input", f"{field}: key {k!r} given twice", field=field)
        out[k] = None if v is None else str(v)
    check_storable(out, field)
    return out


def _merged(old: dict, changes: dict[str, str | None]) -> dict[str, str]:
    out = dict(old)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return dict(sorted(out.items()))


def update_entry(conn: Connection, ledger: Ledger, entry_id: Any, tags: Any = None,
                 groups: Any = None) -> UpdateEntryResult:
    """Set or remove tags and groups of an entry (a None value removes a key), recording
    the change. Reversed and reversing entries are immutable (``entry_reversed``)."""
    tag_changes = _changes(tags, "tags")
    group_changes = _changes(groups, "groups")
    row = _entry_row(conn, ledger, _entry_id(entry_id), lock=True)
    if row["reverses_id"] is not None or row["reversed_by_id"] is not None:
        what = "reverses another entry" if row["reverses_id"] is not None else "is reversed"
        raise BadRequestError("entry_reversed", f"id: entry {row['id']} {what}; a reversed or reversing entry cannot change", field="id")
    new_tags, new_groups = _merged(row["tags"], tag_changes), _merged(row["groups"], group_changes)
    if new_tags == dict(row["tags"]) and new_groups == dict(row["groups"]):
        return UpdateEntryResult(load_history_entries(conn, ledger, [row])[0], None)
    now = datetime.now(timezone.utc)
    conn.execute(t.entries.update().where(t.entries.c.id == row["id"])
                 .values(tags=new_tags, groups=new_groups))
    change_id = conn.execute(t.entry_changes.insert().values(
        ledger_id=ledger.id, entry_id=row["id"], changed=now, tags_before=row["tags"],
        tags_after=new_tags, groups_before=row["groups"], groups_after=new_groups,
    ).returning(t.entry_changes.c.id)).scalar_one()
    entry = load_history_entries(conn, ledger, [_entry_row(conn, ledger, row["id"])])[0]
    return UpdateEntryResult(entry, EntryChange(str(change_id), str(row["id"]), now,
                                                dict(row["tags"]), new_tags,
                                                dict(row["groups"]), new_groups))


def entry_changes(conn: Connection, ledger: Ledger, entry_id: Any) -> list[EntryChange]:
    row = _entry_row(conn, ledger, _entry_id(entry_id))
    c = t.entry_changes.c
    return [EntryChange(str(r["id"]), str(r["entry_id"]), r["changed"], dict(r["tags_before"]),
                        dict(r["tags_after"]), dict(r["groups_before"]), dict(r["groups_after"]))
            for r in conn.execute(sa.select(t.entry_changes).where(c.entry_id == row["id"])
                                  .order_by(c.id)).mappings()]


# ---------------------------------------------------------------------------- queries

def _cursor(kind: str, posted: datetime, id_: int) -> str:
    raw = f"{kind}|{posted.isoformat()}|{id_}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(kind: str, cursor: Any, field: str) -> tuple[datetime, int]:
    bad = BadRequestError("invalid_input", f"{field}: not a cursor of this list; pass a startCursor or endCursor it returned", field=field)
    if not isinstance(cursor, str) or not cursor or len(cursor) > 200:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        k, posted, id_ = raw.split("|")
        when = datetime.fromisoformat(posted)
        if k != kind or when.tzinfo is None or not id_.isdigit():
            raise ValueError(raw)
        return when, int(id_)
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
    if first is not None and last is not None:
        raise BadRequestError("invalid_input", "last: give first or last, not both", field="last")
    backward = last is not None
    size = _page_size(last if backward else first, "last" if backward else "first")
    key = sa.tuple_(posted_col, id_col)

    def position(cursor: tuple[datetime, int]):
        return sa.tuple_(sa.literal(cursor[0], sa.DateTime(timezone=True)),
                         sa.literal(cursor[1], sa.BigInteger))

    a = _decode_cursor(kind, after, "after") if after is not None else None
    b = _decode_cursor(kind, before, "before") if before is not None else None
    q = query
    if a is not None:
        q = q.where(key < position(a))
    if b is not None:
        q = q.where(key > position(b))
    if backward:
        q = q.order_by(posted_col.asc(), id_col.asc())
    else:
        q = q.order_by(posted_col.desc(), id_col.desc())
    rows = conn.execute(q.limit(size + 1)).mappings().all()
    more = len(rows) > size
    rows = list(rows[:size])
    if backward:
        rows.reverse()

    def exists(cond) -> bool:
        return bool(conn.execute(sa.select(query.where(cond).exists())).scalar())

    if backward:
        has_previous, has_next = more, b is not None and exists(key <= position(b))
    else:
        has_next, has_previous = more, a is not None and exists(key >= position(a))
    info = PageInfo(has_next, has_previous,
                    _cursor(kind, rows[0]["posted"], rows[0]["id"]) if rows else None,
                    _cursor(kind, rows[-1]["posted"], rows[-1]["id"]) if rows else None)
    return rows, info


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
    a = t.accounts.c
    base = sa.select(a.id).where(a.ledger_id == ledger.id)
    if "*" not in account:
        resolve_path(schema, account, field)
        return base.where(a.path == account)
    head, descendants = (account[:-2], True) if account.endswith("/*") else (account, False)
    if not head or "//" in account or "**" in account:
        raise BadRequestError("invalid_input", f"{field}: {account!r} is not a path pattern", field=field)
    regex = "^" + "[^/]+".join(re.escape(p) for p in head.split("*")) + ("/.+" if descendants else "") + "$"
    prefix = head.split("*", 1)[0]
    q = base.where(a.path.op("~")(regex))
    if prefix:
        # Under the C collation, the literal head of the pattern bounds an index range.
        q = q.where(a.path >= prefix, a.path < prefix[:-1] + chr(ord(prefix[-1]) + 1))
    return q


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
        ids = _account_ids(ledger, schema or posting.load_schema(conn, ledger.id), account)
        q = q.where(sa.exists().where(t.lines.c.entry_id == e.c.id, t.lines.c.account_id.in_(ids)))
    rows, info = _paginate(conn, "entry", q, e.c.posted, e.c.id, first, after, last, before)
    return Page(load_history_entries(conn, ledger, rows), info)


def list_lines(conn: Connection, ledger: Ledger, account: str | None = None,
               flt: EntryFilter | None = None, first: int | None = None, after: str | None = None,
               last: int | None = None, before: str | None = None, *,
               schema: Schema | None = None) -> Page:
    """Lines of an account, of a path pattern, or (``account`` None) of the whole ledger,
    whose entries match ``flt``, newest ``posted`` first."""
    flt = flt or EntryFilter()
    ln, e, a = t.lines, t.entries, t.accounts
    q = (sa.select(ln, a.c.path, a.c.type.label("account_type")).join(a, a.c.id == ln.c.account_id).join(e, e.c.id == ln.c.entry_id)
         .where(ln.c.ledger_id == ledger.id, *_entry_conditions(ledger, flt, e, ln)))
    if flt.currency is not None:
        q = q.where(ln.c.currency == flt.currency)
    if account is not None:
        # Ids first, as literals: the planner then walks the (account_id, posted, id) index
        # of a single account, or the ledger's (ledger_id, posted, id) index for several,
        # newest first, and stops after one page, instead of sorting all their lines.
        ids = conn.execute(_account_ids(
            ledger, schema or posting.load_schema(conn, ledger.id), account)).scalars().all()
        if not ids:
            q = q.where(sa.false())
        elif len(ids) == 1:
            q = q.where(ln.c.account_id == ids[0])
        else:
            q = q.where(
            ln.c.account_id == sa.any_(sa.literal(list(ids), sa.ARRAY(sa.BigInteger))))
    rows, info = _paginate(conn, "line", q, ln.c.posted, ln.c.id, first, after, last, before)
    return Page([posting.line_from_row(r) for r in rows], info)


# ---------------------------------------------------------------------------- groups

def _group_key(key: Any, value: Any) -> tuple[str, str]:
    if not isinstance(key, str) or not key:
        raise BadRequestError("invalid_input", "group.key: a group key is required", field="group.key")
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
        raise BadRequestError("invalid_input", "group.value: a group value is required", field="group.value")
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
