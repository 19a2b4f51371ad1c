"""Balances of an account: now, at a point in time, and their change over a period."""
from __future__ import annotations

import re
import threading
import weakref
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger.db import fetch
from ledger.errors import LedgerError
from ledger.history.model import AccountBalances, BalanceChange
from ledger.history.periods import period_range, resolve_at
from ledger.ledgers import Ledger, load_ledger, take_schema_head
from ledger.schema.model import Account, Schema, resolve_queried_path
from ledger.schema.store import load_schema, schema_at
from ledger.text import check_storable


def resolve_read_path(schema: Schema, path: str) -> tuple[Account, bool]:
    """The account a path names for reading. Besides instances (``users:alice``) a read may
    name a template node itself (``liabilities/users``), whose children are all instances.
    Returns the account and whether the path names a template node without an instance."""
    if isinstance(path, str):
        check_storable(path, "path")
    account = schema.accounts.get(path) if isinstance(path, str) else None
    if account is not None and account.template:
        parts = path.split("/")
        # Above a template node every account must be plain, or the path lacks an instance.
        if not any(schema.accounts["/".join(parts[:i])].template for i in range(1, len(parts))):
            return account, True
    return resolve_queried_path(schema, path, "path"), False


def child_range(path: str, template_node: bool) -> tuple[str, str]:
    """Descendant paths of ``path`` sort between these bounds under the C collation:
    ``path/...`` for ordinary accounts, ``path:...`` for the instances of a template node."""
    sep = ":" if template_node else "/"
    return path + sep, path + chr(ord(sep) + 1)


# Own and child balances now, in one round trip: the own row is one index probe on
# (ledger, path); the children are the path range below it (``child_range``).
_NOW = sa.text(
    "SELECT true, b.currency, b.own FROM balances b JOIN accounts a ON a.id = b.account_id "
    "WHERE a.ledger_id = :l AND a.path = :p AND :own "
    "UNION ALL "
    "SELECT false, b.currency, sum(b.own) FROM balances b JOIN accounts a ON a.id = b.account_id "
    "WHERE a.ledger_id = :l AND a.path > :lo AND a.path < :hi GROUP BY b.currency")


def account_balances(conn: Connection, ledger: Ledger, schema: Schema, path: str) -> AccountBalances:
    account, params = _now_params(schema, path)
    return _now_result(account, path, conn.execute(_NOW, {"l": ledger.id, **params}))


def _now_params(schema: Schema, path: str) -> tuple[Account, dict]:
    account, template_node = resolve_read_path(schema, path)
    lo, hi = child_range(path, template_node)
    return account, {"p": path, "own": not template_node, "lo": lo, "hi": hi}


def _now_result(account: Account, path: str, rows) -> AccountBalances:
    """The balances from ``_NOW``'s rows: (own or child, currency, amount)."""
    own: dict[str, int] = {}
    child: dict[str, int] = {}
    for is_own, currency, amount in rows:
        if currency is not None:
            (own if is_own else child)[currency] = int(amount)
    if account.currency_mode == "single":
        own.setdefault(account.currency, 0)
        child.setdefault(account.currency, 0)
    total = {c: own.get(c, 0) + child.get(c, 0) for c in sorted(set(own) | set(child))}
    return AccountBalances(path, account.type, dict(sorted(own.items())),
                           dict(sorted(child.items())), total)


# ``_NOW`` by the ledger's ik, with the schema version the ledger follows in every row (a
# single row, its balance columns null, when there is no balance; none when there is no
# such ledger): a read is then one statement instead of the ledger's and the balances'.
_NOW_BY_IK = sa.text(
    "SELECT l.schema_id, (SELECT max(v.version) FROM schema_versions v "
    "WHERE v.schema_id = l.schema_id), x.own, x.currency, x.amount FROM ledgers l "
    "LEFT JOIN LATERAL (" + re.sub(r":l\b", "l.id", _NOW.text) + ") AS x(own, currency, amount) "
    "ON true WHERE l.ik = :ik")

# Per database: the (schema id, version) each ledger followed when this process last read
# it. The path's bounds are worked out from that version's schema before the statement
# runs; the statement says the version it saw, and a read made with another is made again.
_heads: "weakref.WeakKeyDictionary[Engine, dict[str, tuple[int, int]]]" = \
    weakref.WeakKeyDictionary()
_heads_lock = threading.Lock()
# Ledgers remembered per database; past it they are forgotten and read the long way once.
MAX_REMEMBERED = 10_000


def latest_balances(conn: Connection, ledger_ik: str, path: str) -> AccountBalances:
    """``account_balances`` of a ledger by its ik: one statement once this process has
    read the ledger (meant for ``Database.autocommit``, which spares the BEGIN and COMMIT
    round trips), else the ledger, its schema, then the balances."""
    with _heads_lock:
        head = _heads.get(conn.engine, {}).get(ledger_ik)
    if head is not None:
        try:
            account, params = _now_params(schema_at(conn, *head), path)
        except LedgerError:
            params = None  # a later version may know the path: judged by the latest below
        if params is not None:
            rows = fetch(conn, _NOW_BY_IK, {"ik": ledger_ik, **params})
            if rows and (rows[0][0], rows[0][1]) == head:
                return _now_result(account, path, [r[2:] for r in rows])
    ledger = load_ledger(conn, ledger_ik)
    found = take_schema_head(conn, ledger.id)
    if found is None:
        schema = load_schema(conn, ledger.id)
    else:
        schema = schema_at(conn, found[0], found[1])
        with _heads_lock:
            remembered = _heads.setdefault(conn.engine, {})
            if len(remembered) >= MAX_REMEMBERED:
                remembered.clear()
            remembered[ledger_ik] = (found[0], found[1])
    return account_balances(conn, ledger, schema, path)


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
