"""The façade's part for holds (two-phase posting): each function one transaction through
``ledger/holds/``; ``ledger.service`` re-exports them."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Connection

from ledger.commands import EntryRequest
from ledger.db import Database
from ledger.history.entries import entry_ledger, get_entry_by_ik
from ledger.ledgers import load_ledger, parse_id
from ledger.history.model import EntryFilter, Page, TimeRange
from ledger.history.periods import period_range
from ledger.schema.store import load_schema
from ledger.holds import balances as _hold_balances
from ledger.holds import lines as _hold_lines
from ledger.holds import resolve as _holds
from ledger.holds import store as _hold_store
from ledger.holds.create import create_holds
from ledger.holds.model import Hold, HoldBalances, HoldResult


def add_ledger_holds(db: Database, ledger_ik: str, requests: list[EntryRequest],
                     expires_at: Any) -> list[HoldResult]:
    """``add_ledger_holds(db, ledger_ik, requests, expires_at) -> [HoldResult]``: post
    entries as holds, all or none (``ledger/holds/``). Their lines stay pending until
    ``commit_ledger_entry``; their decreases count against available balances at once, and
    conditions are checked against those (``condition_failed`` when a hold does not fit).
    A replayed ik returns the hold as it is now (``is_ik_replay``); the same ik with another
    request or expiry is ``ik_conflict``; an expiry not in the future ``invalid_input``."""
    def run(conn: Connection) -> list[HoldResult]:
        return create_holds(conn, load_ledger(conn, ledger_ik), requests, expires_at)
    return db.run(run)


def add_ledger_hold(db: Database, ledger_ik: str, request: EntryRequest,
                    expires_at: Any) -> HoldResult:
    """One hold: ``add_ledger_holds`` of one request."""
    return add_ledger_holds(db, ledger_ik, [request], expires_at)[0]


def _hold_target(conn: Connection, id: Any, ledger_ik: str | None, ik: str | None):
    if id is not None:
        ledger = entry_ledger(conn, id, ledger_ik)
        return ledger, parse_id(id)
    ledger = load_ledger(conn, ledger_ik)
    return ledger, int(get_entry_by_ik(conn, ledger, ik).id)


def commit_ledger_entry(db: Database, *, id: Any = None, ledger_ik: str | None = None,
                        ik: str | None = None, amount: Any = None,
                        parameters: Any = None) -> HoldResult:
    """``commit_ledger_entry(db, id=... | ledger_ik=..., ik=..., amount=None,
    parameters=None) -> HoldResult``: post a pending hold, all of it or a part (``amount``
    when its lines are one parameter, else ``parameters``; ``hold_exceeded`` beyond what it
    reserved). Again with the same arguments: a replay. Refused: ``hold_voided``,
    ``hold_expired`` (also past ``expiresAt`` before the beat ran), ``hold_committed`` (with
    other arguments), ``hold_not_found`` for an entry that is no hold."""
    def run(conn: Connection) -> HoldResult:
        ledger, entry_id = _hold_target(conn, id, ledger_ik, ik)
        return _holds.commit_hold(conn, ledger, entry_id, amount, parameters)
    return db.run(run)


def void_ledger_entry(db: Database, *, id: Any = None, ledger_ik: str | None = None,
                      ik: str | None = None) -> HoldResult:
    """``void_ledger_entry(db, id=... | ledger_ik=..., ik=...) -> HoldResult``: release a
    pending hold. Again: a replay. Refused: ``hold_committed``, ``hold_expired``,
    ``hold_not_found``."""
    def run(conn: Connection) -> HoldResult:
        ledger, entry_id = _hold_target(conn, id, ledger_ik, ik)
        return _holds.void_hold(conn, ledger, entry_id)
    return db.run(run)


def expire_holds(db: Database, limit: int = 1000) -> int:
    """Expire up to ``limit`` pending holds past their expiry (the beat's sweep); returns
    how many."""
    return len(db.run(lambda conn: _holds.expire_holds(conn, limit)))


def get_ledger_hold(db: Database, id: Any) -> Hold | None:
    """The hold of entry ``id`` (status, expiry, pending lines), or None for an entry posted
    outright."""
    number = parse_id(id)
    with db.transaction() as conn:
        ledger = entry_ledger(conn, id, None)
        return _hold_store.load_holds(conn, ledger, [number]).get(number)


def hold_balances(db: Database, ledger_ik: str, path: str, at: Any = None) -> HoldBalances:
    """``hold_balances(db, ledger_ik, path, at=None) -> HoldBalances``: own, child and total
    pending (posted + every pending line) and available (posted + pending decreases)
    balances per currency, now or at ``at`` (as ``account_balances`` reads it)."""
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        return _hold_balances.hold_balances(conn, ledger, load_schema(conn, ledger.id), path, at)


def list_hold_lines(db: Database, ledger_ik: str, path: str | None, *,
                    status: str | None = "pending", first: int = 50,
                    after: str | None = None) -> Page:
    """``list_hold_lines(db, ledger_ik, path, *, status="pending", first=50, after=None)
    -> Page`` of ``(Line, status)``: the lines holds reserved on one account (``path``
    None: every account of the ledger), newest hold first, with their hold's status (None:
    every status); ``first`` at most 200 a page, ``after`` a page's ``end_cursor``. Line
    lists (``list_lines``) hold posted lines only."""
    with db.transaction() as conn:
        return _hold_store.account_hold_lines(conn, load_ledger(conn, ledger_ik), path, status,
                                              first, after)


def list_lines_by_status(db: Database, ledger_ik: str, account: str | None = None,
                        filters: EntryFilter | dict | None = None, *, status: str = "posted",
                        first: int | None = None, after: str | None = None,
                        last: int | None = None, before: str | None = None,
                        period: str | None = None) -> Page:
    """``list_lines_by_status(db, ledger_ik, account=None, filters=None, *, status="posted",
    first, after, last, before, period=None) -> Page`` of ``(Line, status)``: ``list_lines``
    for posted lines (status None), the lines of pending holds (``pending``, at their hold's
    creation time) or both merged (``all``), with ``list_lines``' arguments and their
    meaning (account path or pattern, ``filters``, forward and backward pages), newest
    first. ``period`` (``2025-02``): only lines of that period, as ``list_account_lines``
    reads it (refused naming ``period``)."""
    flt = EntryFilter.from_input(filters)
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        if period is not None:
            start, end = period_range(period, ledger.balance_utc_offset, "period")
            flt = replace(flt, posted=TimeRange(start, end))
        return _hold_lines.lines_by_status(conn, ledger, account, flt, status, first, after,
                                           last, before)


def list_all_lines(db: Database, ledger_ik: str, path: str | None, *, first: int | None = None,
                   after: str | None = None) -> Page:
    """``list_lines_by_status(status="all")`` paged forward: posted lines (status None) and
    the lines of pending holds (``pending``) of one account (None: the ledger)."""
    return list_lines_by_status(db, ledger_ik, path, status="all", first=first, after=after)


__all__ = [
    "Hold", "HoldBalances", "HoldResult", "add_ledger_hold", "add_ledger_holds",
    "commit_ledger_entry", "expire_holds", "list_all_lines", "list_lines_by_status", "get_ledger_hold", "hold_balances", "list_hold_lines",
    "void_ledger_entry"
]
