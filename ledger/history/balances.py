"""Balances of an account: now, at a point in time, and their change over a period."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.history.model import AccountBalances, BalanceChange
from ledger.history.periods import period_range, resolve_at
from ledger.ledgers import Ledger
from ledger.schema.model import Account, Schema, resolve_queried_path
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
    account, template_node = resolve_read_path(schema, path)
    lo, hi = child_range(path, template_node)
    own: dict[str, int] = {}
    child: dict[str, int] = {}
    for is_own, currency, amount in conn.execute(_NOW, {
            "l": ledger.id, "p": path, "own": not template_node, "lo": lo, "hi": hi}):
        (own if is_own else child)[currency] = int(amount)
    if account.currency_mode == "single":
        own.setdefault(account.currency, 0)
        child.setdefault(account.currency, 0)
    total = {c: own.get(c, 0) + child.get(c, 0) for c in sorted(set(own) | set(child))}
    return AccountBalances(path, account.type, dict(sorted(own.items())),
                           dict(sorted(child.items())), total)


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
