"""Reversing an entry: a mirror entry, refused where it would cross a guarded condition."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.commands import EntryRequest
from ledger.errors import BadRequestError
from ledger.events.store import raise_event
from ledger.history.entries import _entry_id, _entry_row, load_history_entries
from ledger.history.model import ReverseResult
from ledger.ledgers import Ledger
from ledger.posting.engine import apply_compiled
from ledger.schema.compile import CompiledCondition, CompiledEntry, CompiledLine
from ledger.schema.model import Schema, Text, resolve_path
from ledger.schema.store import load_schema


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

    schema = load_schema(conn, ledger.id)
    now = datetime.now(timezone.utc)
    lines = [CompiledLine(r["key"], r["path"], resolve_path(schema, r["path"], "path"),
                          -int(r["amount"]), r["currency"], None, r["description"])
             for r in conn.execute(
                 sa.select(t.lines, t.accounts.c.path)
                 .join(t.accounts, t.accounts.c.id == t.lines.c.account_id)
                 .where(t.lines.c.entry_id == original["id"]).order_by(t.lines.c.id)).mappings()]
    if not lines:
        # Only a hold has no lines of its own, until it is committed (ledger/holds/).
        raise BadRequestError(
            "hold_not_committed", f"id: entry {original['id']} is a hold that was not "
            "committed, so nothing of it is posted; void it instead", field="id")
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
            apply_compiled(conn, ledger, schema, [compiled], [reversing_id], now)
        except BadRequestError as exc:
            if exc.code != "condition_failed":
                raise
            raise BadRequestError(
                "condition_failed", f"entry {original['id']} cannot be reversed: {exc.message}",
                field=exc.field) from None
        conn.execute(t.entries.update().where(t.entries.c.id == original["id"])
                     .values(reversed_by_id=reversing_id, reversed_at=now))
        raise_event(conn, ledger_id=ledger.id, type="entry.reversed", payload={
            "id": str(original["id"]), "ik": original["ik"], "type": original["type"],
            "reversedBy": str(reversing_id), "reversedAt": now})
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
