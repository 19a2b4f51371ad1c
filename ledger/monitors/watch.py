"""Raising ``balance.crossed`` in the transaction that moves a watched balance.

A change arrives as steps in the order they happened (an entry posted, a hold created or
released, a delta folded), each moving balance rows' ``own``, ``held`` and ``pending_in``.
A crossing is judged per step: the value after each step against the value before it, so
an entry that crosses and a later entry of the same batch that crosses back raise two
events, exactly as if they had been posted one by one. Each crossing must be judged by
exactly one transaction, against the value every earlier change left:

* an own balance (posted, pending or available) moves only under its balance row lock:
  posts of strongly consistent accounts in the engine, folds of eventual ones in the
  rollup, holds' reservations when they are created and released (ledger/holds/). The
  caller holds that lock, so the row read again now less this transaction's moves is the
  value before the first step, exact;
* a child or total balance sums many rows that concurrent transactions move under
  different row locks. Each (monitor, account, currency) has a transaction-level advisory
  lock, taken after the row locks and in one sorted order; under it the sum is read again
  (a new statement sees every transaction that held the lock before), and the value before
  the first step is that sum less this transaction's moves. Transactions moving the sum
  thus judge it one after another, in commit order.

A monitor created while a transaction is under way watches it only if that transaction
reads the monitors after the creation commits.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import fastjson
from ledger.events.store import raise_events
from ledger.history.balances import child_range
from ledger.monitors.model import Condition, kind_parts, pattern_regex, watched_paths
from ledger.schema.store import monitors_seen

# First key of the two-int advisory locks of monitored sums ("LM"), apart from the jobs'.
_LOCK_NAMESPACE = 0x4C4D

# What a step moves on one balance row: (own, held, pending_in).
Move = tuple[int, int, int]
# (the entry that made the step, or None for a folded delta; {(account id, currency): move})
Step = tuple[Any, dict[tuple[int, str], Move]]

_MONITORS = sa.text(
    "SELECT id, account, balance, op, amount, currency FROM balance_monitors "
    "WHERE ledger_id = :l ORDER BY id")

_LOCK = sa.text(
    "SELECT pg_advisory_xact_lock(:ns, k) FROM ("
    "  SELECT DISTINCT k FROM unnest(CAST(:keys AS int[])) AS u(k) ORDER BY k) s")

_ROWS = sa.text(
    "SELECT b.account_id, b.currency, b.own, b.held, b.pending_in FROM balances b "
    "JOIN json_to_recordset(CAST(:keys AS json)) AS k(a bigint, c text) "
    "ON b.account_id = k.a AND b.currency = k.c")

# k.h, k.i: whether the sum counts held (pending decreases) and pending_in (increases).
_SUMS = sa.text(
    "SELECT k.n, coalesce((SELECT sum(b.own + k.h * b.held + k.i * b.pending_in) "
    "  FROM accounts a JOIN balances b ON b.account_id = a.id "
    "  WHERE a.ledger_id = :l AND b.currency = k.c AND a.path = k.p AND k.own), 0) "
    "+ coalesce((SELECT sum(b.own + k.h * b.held + k.i * b.pending_in) FROM accounts a "
    "  JOIN balances b ON b.account_id = a.id WHERE a.ledger_id = :l AND b.currency = k.c "
    "  AND a.path > k.lo AND a.path < k.hi), 0) "
    "FROM json_to_recordset(CAST(:rows AS json)) AS k(n int, p text, c text, lo text, hi text, "
    "own boolean, h int, i int)")

_PATHS = sa.text("SELECT id, path FROM accounts WHERE id = ANY(CAST(:ids AS bigint[]))")

_MONITORED = sa.text(
    "SELECT id FROM ledgers WHERE id = ANY(CAST(:ids AS bigint[])) AND monitors > 0")


@dataclass(frozen=True)
class _Monitor:
    id: int
    account: str
    balance: str
    condition: Condition

    def value(self, state: Move) -> int:
        _, held, pending_in = kind_parts(self.balance)
        return state[0] + held * state[1] + pending_in * state[2]


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

    def scoped(self, scope: str) -> list[str]:
        return sorted(k for k in self.kinds if kind_parts(k)[0] == scope)


def watch_steps(conn: Connection, ledger_id: int, steps: list[Step],
                paths: dict[int, str] | None = None) -> None:
    """After this transaction made ``steps`` on one ledger's balance rows, in order and
    under their row locks: raise an event for each step that makes a monitor's condition
    true or false. ``paths`` by account id (those missing are read). No query for a ledger
    that had no monitors when the transaction loaded its schema."""
    steps = [(entry, {k: m for k, m in moves.items() if any(m)}) for entry, moves in steps]
    steps = [s for s in steps if s[1]]
    if not steps or monitors_seen(conn, ledger_id) == 0:
        return
    rows = conn.execute(_MONITORS, {"l": ledger_id}).all()
    if rows:
        _judge(conn, ledger_id, rows, steps, dict(paths or {}))


def watch_ledgers(conn: Connection, steps_by_ledger: dict[int, list[Step]]) -> None:
    """``watch_steps`` for changes over several ledgers (the rollup, the expiry sweep), in
    ledger order: one query leaves out the ledgers without monitors, unless this
    transaction's schema loads already said."""
    steps_by_ledger = {k: v for k, v in steps_by_ledger.items() if v}
    seen = {k: monitors_seen(conn, k) for k in steps_by_ledger}
    unknown = sorted(k for k, n in seen.items() if n is None)
    monitored = {k for k, n in seen.items() if n}
    if unknown:
        monitored.update(conn.execute(_MONITORED, {"ids": unknown}).scalars().all())
    for ledger_id in sorted(monitored):
        rows = conn.execute(_MONITORS, {"l": ledger_id}).all()
        if rows:
            _judge(conn, ledger_id, rows, steps_by_ledger[ledger_id], {})


def _judge(conn: Connection, ledger_id: int, rows, steps: list[Step],
           paths: dict[int, str]) -> None:
    index = _Index()
    for r in rows:
        index.add(_Monitor(r.id, r.account, r.balance,
                           Condition(r.op, int(r.amount), r.currency)))
    total: dict[tuple[int, str], Move] = {}
    for _, moves in steps:
        for key, move in moves.items():
            total[key] = _plus(total.get(key, (0, 0, 0)), move)
    missing = sorted({a for a, _ in total} - set(paths))
    if missing:
        paths.update(conn.execute(_PATHS, {"ids": missing}).all())
    events = _judge_own(conn, ledger_id, index, steps, total, paths)
    events += _judge_sums(conn, ledger_id, index, steps, paths)
    events.sort(key=lambda e: e[0])
    raise_events(conn, [e[1] for e in events])


def _plus(a: Move, b: Move, sign: int = 1) -> Move:
    return (a[0] + sign * b[0], a[1] + sign * b[1], a[2] + sign * b[2])


def _judge_own(conn: Connection, ledger_id: int, index: _Index, steps: list[Step],
               total: dict, paths: dict) -> list:
    """Own balances: the rows as they are now (locked by the caller) less this
    transaction's moves, then step by step."""
    kinds = index.scoped("own")
    watched = {}
    for key in sorted(total):
        found = [m for kind in kinds for m in index.match(paths[key[0]], kind, key[1])]
        if found:
            watched[key] = found
    if not watched:
        return []
    now = {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4])) for r in conn.execute(
        _ROWS, {"keys": fastjson.dumps([{"a": a, "c": c} for a, c in watched])})}
    events = []
    for key, found in watched.items():
        state = _plus(now[key], total[key], -1)
        for n, (entry, moves) in enumerate(steps):
            if key not in moves:
                continue
            after = _plus(state, moves[key])
            for m in found:
                before_value, after_value = m.value(state), m.value(after)
                if m.condition.holds(before_value) != m.condition.holds(after_value):
                    events.append(((n, 0, key, m.id), _event(
                        ledger_id, m, paths[key[0]], key[1], before_value, after_value, entry)))
            state = after
    return events


def _judge_sums(conn: Connection, ledger_id: int, index: _Index, steps: list[Step],
                paths: dict) -> list:
    """Child and total balances: under their advisory locks, read each sum as it is now
    (with this transaction's moves), take those moves off, then judge step by step."""
    kinds = index.scoped("child") + index.scoped("total")
    if not kinds:
        return []
    # (monitor id, watched path, template node?, currency) -> {step: move of the sum}
    sums: dict[tuple[int, str, bool, str], dict[int, int]] = {}
    monitors: dict[int, _Monitor] = {}
    for n, (_, moves) in enumerate(steps):
        for (account_id, currency), move in moves.items():
            for kind in kinds:
                for watched, node in watched_paths(paths[account_id], kind_parts(kind)[0]):
                    for m in index.match(watched, kind, currency):
                        by_step = sums.setdefault((m.id, watched, node, currency), {})
                        by_step[n] = by_step.get(n, 0) + m.value(move)
                        monitors[m.id] = m
    # A sum no step moves cannot cross; one that moves and moves back within the
    # transaction can, so it is judged although its total move is 0.
    keys = [k for k, by_step in sums.items() if any(by_step.values())]
    if not keys:
        return []
    conn.execute(_LOCK, {"ns": _LOCK_NAMESPACE, "keys": [
        _lock_key(ledger_id, m, path, currency) for m, path, _, currency in keys]})
    rows = []
    for n, (m, path, node, currency) in enumerate(keys):
        lo, hi = child_range(path, node)
        _, held, pending_in = kind_parts(monitors[m].balance)
        rows.append({"n": n, "p": path, "c": currency, "lo": lo, "hi": hi,
                     "own": kind_parts(monitors[m].balance)[0] == "total",
                     "h": held, "i": pending_in})
    events = []
    for n, now in conn.execute(_SUMS, {"l": ledger_id, "rows": fastjson.dumps(rows)}):
        m, path, _, currency = key = keys[n]
        monitor = monitors[m]
        value = int(now) - sum(sums[key].values())
        for step, move in sorted(sums[key].items()):
            after = value + move
            if monitor.condition.holds(value) != monitor.condition.holds(after):
                events.append(((step, 1, m, path, currency), _event(
                    ledger_id, monitor, path, currency, value, after, steps[step][0])))
            value = after
    return events


def _lock_key(ledger_id: int, monitor_id: int, path: str, currency: str) -> int:
    # A collision only makes two sums share a lock: they are then judged one after another.
    return zlib.crc32(f"{ledger_id}|{monitor_id}|{path}|{currency}".encode()) - 2**31


def _event(ledger_id: int, m: _Monitor, path: str, currency: str, before: int,
           after: int, entry: Any) -> tuple[int, str, dict]:
    return (ledger_id, "balance.crossed", {
        "monitorId": str(m.id), "monitorAccount": m.account, "account": path,
        "balance": m.balance, "currency": currency,
        "condition": {m.condition.op: str(m.condition.amount)},
        "before": str(before), "after": str(after),
        "isTrue": m.condition.holds(after),
        "entry": None if entry is None else {"id": str(entry)}})


__all__ = ["Move", "Step", "watch_ledgers", "watch_steps"]
