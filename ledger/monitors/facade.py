"""The façade's part for balance monitors; ``ledger.service`` re-exports them."""
from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from ledger.db import Database
from ledger.ledgers import load_ledger
from ledger.monitors import store as _monitors
from ledger.monitors.model import BalanceMonitor, Condition as MonitorCondition
from ledger.monitors.model import KINDS as MONITOR_KINDS, OPS as MONITOR_OPS


def create_balance_monitor(db: Database, ledger_ik: str, account: Any, balance: Any,
                           condition: Any, description: Any = None,
                           ik: Any = None) -> BalanceMonitor:
    """``create_balance_monitor(db, ledger_ik, account, balance, condition, description=None)
    -> BalanceMonitor``: watch the ``balance`` (one of ``MONITOR_KINDS``: own | child | total,
    posted, and each as ...Pending and ...Available, counting holds) of ``account`` (a path,
    a template node, or a pattern like ``liabilities/users:*/available``) against
    ``condition`` (``{"lt"|"lte"|"gt"|"gte"|"eq": amount, "currency": code?}``). Each entry
    posted or reversed, folded delta and hold created or resolved that makes it true, or
    false again, raises ``balance.crossed`` in its own transaction, entry by entry
    (ledger/monitors/watch.py). Bad input: ``invalid_input`` naming the field.
    ``ik``: the same ik with the same input replays the monitor (while it exists), with
    another input it is refused with ``ik_conflict``."""
    def run(conn: Connection) -> BalanceMonitor:
        return _monitors.create_monitor(conn, load_ledger(conn, ledger_ik), account, balance,
                                        condition, description, ik)
    return db.run(run)


def list_balance_monitors(db: Database, ledger_ik: str) -> list[BalanceMonitor]:
    """Every balance monitor of a ledger, oldest first (a ledger has at most 1,000)."""
    with db.transaction() as conn:
        return _monitors.list_monitors(conn, load_ledger(conn, ledger_ik))


def get_balance_monitor(db: Database, id: Any) -> BalanceMonitor:
    """A balance monitor by id; NotFoundError ``monitor_not_found``."""
    with db.transaction() as conn:
        return _monitors.get_monitor(conn, id)


def update_balance_monitor(db: Database, id: Any, *, account: Any = None, balance: Any = None,
                           condition: Any = None, description: Any = None,
                           clear_description: bool = False) -> BalanceMonitor:
    """Change the given parts of a monitor (None: unchanged); ``monitor_not_found`` or
    ``invalid_input`` naming the field."""
    return db.run(lambda conn: _monitors.update_monitor(
        conn, id, account=account, balance=balance, condition=condition,
        description=description, clear_description=clear_description))


def delete_balance_monitor(db: Database, id: Any) -> BalanceMonitor:
    """Delete a monitor and return it as it was; ``monitor_not_found``."""
    return db.run(lambda conn: _monitors.delete_monitor(conn, id))


__all__ = [
    "BalanceMonitor", "MonitorCondition", "MONITOR_KINDS", "MONITOR_OPS", "create_balance_monitor",
    "delete_balance_monitor", "get_balance_monitor", "list_balance_monitors",
    "update_balance_monitor"
]
