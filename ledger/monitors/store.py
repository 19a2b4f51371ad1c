"""Creating, listing, updating and deleting balance monitors."""
from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.errors import BadRequestError, NotFoundError
from ledger.ledgers import Ledger, load_ledger, parse_id
from ledger.monitors.model import (
    MAX_PER_LEDGER,
    BalanceMonitor,
    Condition,
    check_account,
    check_condition,
    check_description,
    check_kind,
)
from ledger.schema.store import load_schema

_COLUMNS = ("m.id, m.account, m.balance, m.op, m.amount, m.currency, m.description, "
            "m.created, m.updated")

_COUNT = sa.text("UPDATE ledgers SET monitors = monitors + :d WHERE id = :l RETURNING monitors")


def _monitor(row, ledger_ik: str) -> BalanceMonitor:
    return BalanceMonitor(str(row.id), ledger_ik, row.account, row.balance,
                          Condition(row.op, int(row.amount), row.currency), row.description,
                          row.created, row.updated)


def _check_ik(ik: Any) -> str | None:
    if ik is None:
        return None
    if not isinstance(ik, str) or not ik.strip() or len(ik) > 255:
        raise BadRequestError("invalid_input", "ik: a non-empty string of at most 255 "
                              f"characters, got {ik!r}", field="ik")
    return ik


def _replay(conn: Connection, ledger: Ledger, ik: str, given: str) -> BalanceMonitor | None:
    """The monitor created earlier with ``ik``, if its input was ``given``; another input is
    ``ik_conflict``. The ledger row lock orders concurrent creates with one ik."""
    conn.execute(sa.text("SELECT 1 FROM ledgers WHERE id = :l FOR UPDATE"), {"l": ledger.id})
    row = conn.execute(sa.text(
        f"SELECT {_COLUMNS}, m.ik_input FROM balance_monitors m "
        "WHERE m.ledger_id = :l AND m.ik = :ik"), {"l": ledger.id, "ik": ik}).one_or_none()
    if row is None:
        return None
    if row.ik_input != given:
        raise BadRequestError("ik_conflict", f"ik: monitor {row.id} was created with ik "
                              f"{ik!r} and a different input", field="ik")
    return _monitor(row, ledger.ik)


def create_monitor(conn: Connection, ledger: Ledger, account: Any, balance: Any,
                   condition: Any, description: Any = None, ik: Any = None) -> BalanceMonitor:
    kind = check_kind(balance)
    cond = check_condition(condition)
    path = check_account(load_schema(conn, ledger.id), account, kind)
    text = check_description(description)
    ik = _check_ik(ik)
    given = json.dumps([path, kind, cond.op, str(cond.amount), cond.currency, text])
    if ik is not None and (found := _replay(conn, ledger, ik, given)) is not None:
        return found
    # The ledger's count (which postings read with its schema) moves with its monitors; the
    # row lock also holds the bound under concurrent creates.
    count = conn.execute(_COUNT, {"l": ledger.id, "d": 1}).scalar_one()
    if count > MAX_PER_LEDGER:
        raise BadRequestError("invalid_input", f"ledger: already has {count - 1} balance "
                              f"monitors, the most one ledger may have; delete some first",
                              field="ledger")
    row = conn.execute(sa.text(
        "INSERT INTO balance_monitors AS m (ledger_id, account, balance, op, amount, currency, "
        "  description, ik, ik_input) VALUES (:l, :a, :b, :op, :amount, :c, :d, :ik, :given) "
        "RETURNING " + _COLUMNS),
        {"l": ledger.id, "a": path, "b": kind, "op": cond.op, "amount": cond.amount,
         "c": cond.currency, "d": text, "ik": ik,
         "given": given if ik is not None else None}).one()
    return _monitor(row, ledger.ik)


def list_monitors(conn: Connection, ledger: Ledger) -> list[BalanceMonitor]:
    """Every monitor of the ledger, oldest first (at most ``MAX_PER_LEDGER``)."""
    rows = conn.execute(sa.text(
        f"SELECT {_COLUMNS} FROM balance_monitors m WHERE m.ledger_id = :l ORDER BY m.id"),
        {"l": ledger.id}).all()
    return [_monitor(r, ledger.ik) for r in rows]


def _find(conn: Connection, id: Any, lock: str = ""):
    number = parse_id(id)
    row = None if number is None else conn.execute(sa.text(
        f"SELECT g.ik, {_COLUMNS} FROM balance_monitors m JOIN ledgers g ON g.id = m.ledger_id "
        f"WHERE m.id = :i {lock}"), {"i": number}).first()
    if row is None:
        raise NotFoundError("monitor_not_found", f"id: no balance monitor with id {id!r}",
                            field="id")
    return row


def _locked(conn: Connection, id: Any) -> tuple[Any, Ledger]:
    row = _find(conn, id, "FOR UPDATE OF m")
    return row, load_ledger(conn, row.ik)


def get_monitor(conn: Connection, id: Any) -> BalanceMonitor:
    row = _find(conn, id)
    return _monitor(row, row.ik)


def update_monitor(conn: Connection, id: Any, *, account: Any = None, balance: Any = None,
                   condition: Any = None, description: Any = None,
                   clear_description: bool = False) -> BalanceMonitor:
    """Change what is given; the rest stays. A monitor has no state to reset: from the
    change's commit on, crossings are judged against the new condition."""
    row, ledger = _locked(conn, id)
    kind = check_kind(balance) if balance is not None else row.balance
    cond = (check_condition(condition) if condition is not None
            else Condition(row.op, int(row.amount), row.currency))
    path = row.account if account is None else account
    path = check_account(load_schema(conn, ledger.id), path, kind)
    text = None if clear_description else (
        row.description if description is None else check_description(description))
    updated = conn.execute(sa.text(
        "UPDATE balance_monitors AS m SET account = :a, balance = :b, op = :op, amount = :amount, "
        "  currency = :c, description = :d, updated = now() WHERE m.id = :i RETURNING "
        + _COLUMNS), {"i": row.id, "a": path, "b": kind, "op": cond.op, "amount": cond.amount,
                      "c": cond.currency, "d": text}).one()
    return _monitor(updated, ledger.ik)


def delete_monitor(conn: Connection, id: Any) -> BalanceMonitor:
    """Delete a monitor; returns it as it was."""
    row, ledger = _locked(conn, id)
    ledger_id = conn.execute(sa.text("DELETE FROM balance_monitors WHERE id = :i "
                                     "RETURNING ledger_id"), {"i": row.id}).scalar_one()
    conn.execute(_COUNT, {"l": ledger_id, "d": -1})
    return _monitor(row, ledger.ik)
