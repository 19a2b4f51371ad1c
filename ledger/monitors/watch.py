"""Raising ``balance.crossed`` in the transaction that moves a watched balance.

A crossing is judged by comparing the balance just before a change with the balance just
after it, so each crossing must be judged by exactly one transaction, against the balance
every earlier change left:

* an own balance of a strongly consistent account moves only in the engine, under its
  balance row lock: the engine's locked value and its moves are exact;
* an own balance of an eventually consistent account moves only when the rollup folds its
  deltas, under the row lock of its upsert: the folded value and the delta are exact;
* a child or total balance sums many rows that concurrent transactions move under
  different row locks. Each (monitor, account, currency) has a transaction-level advisory
  lock, taken after the row locks and in one sorted order; under it the sum is read again
  (a new statement sees every transaction that held the lock before), and the balance
  before is that sum less this transaction's own moves. Transactions moving the sum thus
  judge it one after another, in commit order.

A change that crosses and crosses back within one batch raises nothing: the batch is the
change. A monitor created while a transaction is under way watches it only if that
transaction reads the monitors after the creation commits.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import fastjson
from ledger.events.store import raise_events
from ledger.history.balances import child_range
from ledger.monitors.model import Condition, pattern_regex, watched_paths
from ledger.schema.store import monitors_seen

# First key of the two-int advisory locks of monitored sums ("LM"), apart from the jobs'.
_LOCK_NAMESPACE = 0x4C4D

_MONITORS = sa.text(
    "SELECT id, account, balance, op, amount, currency FROM balance_monitors "
    "WHERE ledger_id = :l ORDER BY id")

_LOCK = sa.text(
    "SELECT pg_advisory_xact_lock(:ns, k) FROM ("
    "  SELECT DISTINCT k FROM unnest(CAST(:keys AS int[])) AS u(k) ORDER BY k) s")

_SUMS = sa.text(
    "SELECT k.n, coalesce((SELECT sum(b.own) FROM accounts a "
    "  JOIN balances b ON b.account_id = a.id WHERE a.ledger_id = :l AND b.currency = k.c "
    "  AND a.path = k.p AND k.own), 0) "
    "+ coalesce((SELECT sum(b.own) FROM accounts a "
    "  JOIN balances b ON b.account_id = a.id WHERE a.ledger_id = :l AND b.currency = k.c "
    "  AND a.path > k.lo AND a.path < k.hi), 0) "
    "FROM json_to_recordset(CAST(:rows AS json)) AS k(n int, p text, c text, lo text, hi text, "
    "own boolean)")

_FOLDED_LEDGERS = sa.text(
    "SELECT a.id, a.ledger_id, a.path FROM accounts a WHERE a.id = ANY(CAST(:ids AS bigint[])) "
    "AND EXISTS (SELECT 1 FROM ledgers g WHERE g.id = a.ledger_id AND g.monitors > 0)")


@dataclass(frozen=True)
class _Monitor:
    id: int
    account: str
    balance: str
    condition: Condition


@dataclass
class _Index:
    """A ledger's monitors by kind: exact paths in a dict, patterns as regexes."""

    exact: dict[tuple[str, str], list[_Monitor]] = field(default_factory=dict)
    patterns: dict[str, list[tuple[Any, _Monitor]]] = field(default_factory=dict)
    kinds: set[str] = field(default_factory=set)

    def add(self, m: _Monitor) -> None:
        self.kinds.add(m.balance)
        if "*" in m.account:
            self.patterns.setdefault(m.balance, []).append((pattern_regex(m.account), m))
        else:
            self.exact.setdefault((m.balance, m.account), []).append(m)

    def match(self, path: str, kind: str, currency: str) -> list[_Monitor]:
        found = self.exact.get((kind, path), []) + [
            m for rx, m in self.patterns.get(kind, ()) if rx.match(path)]
        return [m for m in found if m.condition.currency in (None, currency)]


def watch_moves(conn: Connection, ledger_id: int, moves: dict[tuple[int, str], tuple[int, int]],
                paths: dict[int, str]) -> None:
    """After the engine moved strongly consistent balances (``{(account id, currency):
    (before, after)}``, exact under their row locks; ``paths`` by account id): raise an
    event for each monitor of the ledger whose condition these moves made true or false.
    No query for a ledger that had none when the posting loaded its schema; else one
    indexed query."""
    moves = {k: v for k, v in moves.items() if v[0] != v[1]}
    if not moves or monitors_seen(conn, ledger_id) == 0:
        return
    rows = conn.execute(_MONITORS, {"l": ledger_id}).all()
    if rows:
        _judge(conn, ledger_id, rows, moves, paths)


def watch_folded(conn: Connection, folded: Iterable[tuple[int, str, int, int]]) -> None:
    """After the rollup folded deltas (``(account id, currency, balance after, delta)``,
    exact under the upsert's row locks), for every ledger that has monitors."""
    folded = [f for f in folded if f[3]]
    if not folded:
        return
    accounts = conn.execute(_FOLDED_LEDGERS, {"ids": sorted({f[0] for f in folded})}).all()
    if not accounts:
        return
    ledger_of = {a.id: a.ledger_id for a in accounts}
    paths = {a.id: a.path for a in accounts}
    for ledger_id in sorted(set(ledger_of.values())):
        moves = {(a, c): (after - delta, after) for a, c, after, delta in folded
                 if ledger_of.get(a) == ledger_id}
        rows = conn.execute(_MONITORS, {"l": ledger_id}).all()
        if rows:
            _judge(conn, ledger_id, rows, moves, paths)


def _judge(conn: Connection, ledger_id: int, rows, moves: dict, paths: dict[int, str]) -> None:
    index = _Index()
    for r in rows:
        index.add(_Monitor(r.id, r.account, r.balance,
                           Condition(r.op, int(r.amount), r.currency)))
    events: list[tuple[int, str, dict]] = []
    sums: dict[tuple[int, str, bool, str], int] = {}
    monitors: dict[int, _Monitor] = {}
    for (account_id, currency), (before, after) in sorted(moves.items()):
        path = paths[account_id]
        for m in index.match(path, "own", currency):
            if m.condition.holds(before) != m.condition.holds(after):
                events.append(_event(ledger_id, m, path, currency, before, after))
        for kind in ("child", "total"):
            if kind not in index.kinds:
                continue
            for watched, node in watched_paths(path, kind):
                for m in index.match(watched, kind, currency):
                    key = (m.id, watched, node, currency)
                    sums[key] = sums.get(key, 0) + after - before
                    monitors[m.id] = m
    sums = {k: v for k, v in sums.items() if v}
    if sums:
        events += _judge_sums(conn, ledger_id, sums, monitors)
    raise_events(conn, events)


def _judge_sums(conn: Connection, ledger_id: int, sums: dict, monitors: dict) -> list:
    """Child and total balances: under their advisory locks, read each sum as it is now
    (with this transaction's moves) and judge it against itself less those moves."""
    keys = list(sums)
    conn.execute(_LOCK, {"ns": _LOCK_NAMESPACE, "keys": [
        _lock_key(ledger_id, m, path, currency) for m, path, _, currency in keys]})
    rows = []
    for n, (m, path, node, currency) in enumerate(keys):
        lo, hi = child_range(path, node)
        rows.append({"n": n, "p": path, "c": currency, "lo": lo, "hi": hi,
                     "own": monitors[m].balance == "total"})
    events = []
    for n, after in conn.execute(_SUMS, {"l": ledger_id, "rows": fastjson.dumps(rows)}):
        m, path, _, currency = keys[n]
        after = int(after)
        before = after - sums[keys[n]]
        monitor = monitors[m]
        if monitor.condition.holds(before) != monitor.condition.holds(after):
            events.append(_event(ledger_id, monitor, path, currency, before, after))
    events.sort(key=lambda e: (e[2]["monitorId"], e[2]["account"], e[2]["currency"]))
    return events


def _lock_key(ledger_id: int, monitor_id: int, path: str, currency: str) -> int:
    # A collision only makes two sums share a lock: they are then judged one after another.
    return zlib.crc32(f"{ledger_id}|{monitor_id}|{path}|{currency}".encode()) - 2**31


def _event(ledger_id: int, m: _Monitor, path: str, currency: str, before: int,
           after: int) -> tuple[int, str, dict]:
    return (ledger_id, "balance.crossed", {
        "monitorId": str(m.id), "monitorAccount": m.account, "account": path,
        "balance": m.balance, "currency": currency,
        "condition": {m.condition.op: str(m.condition.amount)},
        "before": str(before), "after": str(after),
        "isTrue": m.condition.holds(after)})
