"""Entries by id or ik, their versions, and updates of their tags and groups."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.errors import BadRequestError, NotFoundError
from ledger.history.model import EntryChange, HistoryEntry, UpdateEntryResult
from ledger.ledgers import Ledger, load_ledger, parse_id
from ledger.posting.engine import line_from_row, with_entry_description
from ledger.posting.model import Line
from ledger.posting.rollup import fill_running_balances
from ledger.text import check_storable


def _entry_id(value: Any, field: str = "id") -> int:
    number = parse_id(value.strip() if isinstance(value, str) else value)
    if number is None:
        raise NotFoundError("entry_not_found", f"{field}: no entry {value!r}", field=field)
    return number


def _entry_ik(ik: Any, field: str = "ik") -> str:
    if not isinstance(ik, str) or not ik:
        raise BadRequestError("invalid_input", f"{field}: expected an idempotency key", field=field)
    check_storable(ik, field)
    return ik


def load_history_entries(conn: Connection, ledger: Ledger, rows) -> list[HistoryEntry]:
    """Entries (rows of ``entries``) with their lines, in the order given."""
    ids = [r["id"] for r in rows]
    by_entry: dict[int, list[Line]] = {}
    if ids:
        for r in conn.execute(
                sa.select(t.lines, t.accounts.c.path, t.accounts.c.type.label("account_type"))
                .join(t.accounts, t.accounts.c.id == t.lines.c.account_id)
                .where(t.lines.c.entry_id.in_(ids)).order_by(t.lines.c.id)).mappings():
            by_entry.setdefault(r["entry_id"], []).append(line_from_row(r))
    fill_running_balances(conn, [line for lines in by_entry.values() for line in lines])
    return [_history_entry(r, ledger.ik, by_entry.get(r["id"], [])) for r in rows]


def _history_entry(r, ledger_ik: str, lines: list[Line]) -> HistoryEntry:
    return HistoryEntry(
        str(r["id"]), ledger_ik, r["ik"], r["type"], r["description"], r["posted"], r["created"],
        dict(r["tags"]), dict(r["groups"]), with_entry_description(lines, r["description"]),
        ik_version=r["ik_version"],
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
    ik = _entry_ik(ik)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or not -2**31 <= version < 2**31):
        raise NotFoundError("entry_not_found", f"ikVersion: no version {version!r} of ik {ik!r}", field="ikVersion")
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
    ik = _entry_ik(ik)
    rows = conn.execute(sa.select(t.entries).where(
        t.entries.c.ledger_id == ledger.id, t.entries.c.ik == ik, t.entries.c.ik_version > 0)
        .order_by(t.entries.c.ik_version)).mappings().all()
    if not rows:
        raise NotFoundError("entry_not_found", f"ik: no entry with ik {ik!r} in ledger {ledger.ik!r}", field="ik")
    return load_history_entries(conn, ledger, rows)


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


def entry_ledger(conn: Connection, id: Any, ledger_ik: str | None) -> Ledger:
    """The ledger of entry ``id`` (which must be ``ledger_ik`` when given)."""
    number = parse_id(id)
    found = conn.execute(sa.select(t.ledgers.c.ik)
                         .join(t.entries, t.entries.c.ledger_id == t.ledgers.c.id)
                         .where(t.entries.c.id == number)).scalar() if number is not None else None
    if found is None or (ledger_ik is not None and found != ledger_ik):
        raise NotFoundError("entry_not_found", f"id: no entry {id!r}", field="id")
    return load_ledger(conn, found)
