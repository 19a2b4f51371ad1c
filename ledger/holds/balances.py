"""Balances counting holds: pending (posted plus every pending line) and available (posted
plus the pending decreases only), now and at a past time."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.history.balances import (
    account_balances,
    account_balances_at,
    child_range,
    resolve_read_path,
)
from ledger.history.periods import resolve_at
from ledger.holds.model import HoldBalances
from ledger.ledgers import Ledger
from ledger.schema.model import Schema

# Now: what the balance rows say holds reserve.
_NOW = ("SELECT b.currency, sum(b.held), sum(b.pending_in) FROM balances b "
        "JOIN accounts a ON a.id = b.account_id WHERE a.ledger_id = :l AND {where} "
        "GROUP BY b.currency")

# At a time: the lines of the holds created by then and not yet resolved then. A commit
# resolves its hold at the time its lines post, so nothing is counted twice or missed.
_AT = ("SELECT hl.currency, sum(least(hl.amount, 0)), sum(greatest(hl.amount, 0)) "
       "FROM hold_lines hl JOIN holds h ON h.entry_id = hl.entry_id "
       "JOIN accounts a ON a.id = hl.account_id "
       "WHERE hl.ledger_id = :l AND h.ledger_id = :l AND a.ledger_id = :l AND {where} "
       "AND h.created {op} :at AND (h.resolved IS NULL OR NOT h.resolved {op} :at) "
       "GROUP BY hl.currency")


def _pending(conn: Connection, sql: str, where: str, params: dict) -> dict[str, tuple[int, int]]:
    return {r[0]: (int(r[1]), int(r[2])) for r in conn.execute(
        sa.text(sql.format(where=where, op=params.pop("op", "<="))), params)}


def hold_balances(conn: Connection, ledger: Ledger, schema: Schema, path: str,
                  at: Any = None) -> HoldBalances:
    """Pending and available own, child and total balances of ``path`` per currency, now
    (``at`` None) or at ``at`` (as ``account_balances`` reads it)."""
    _, template_node = resolve_read_path(schema, path)
    lo, hi = child_range(path, template_node)
    base: dict[str, Any] = {"l": ledger.id}
    if at is None:
        posted = account_balances(conn, ledger, schema, path)
        sql = _NOW
    else:
        posted = account_balances_at(conn, ledger, schema, path, at)
        when, inclusive = resolve_at(at, ledger.balance_utc_offset)
        base.update(at=when, op="<=" if inclusive else "<")
        sql = _AT
    own = {} if template_node else _pending(conn, sql, "a.path = :p", {**base, "p": path})
    child = _pending(conn, sql, "a.path > :lo AND a.path < :hi", {**base, "lo": lo, "hi": hi})

    def apply(balances: dict[str, int], pending: dict[str, tuple[int, int]], both: bool):
        out = dict(balances)
        for currency, (dec, inc) in pending.items():
            out[currency] = out.get(currency, 0) + dec + (inc if both else 0)
        return dict(sorted(out.items()))

    total = {c: own.get(c, (0, 0)) for c in set(own) | set(child)}
    for c, (dec, inc) in child.items():
        total[c] = (total[c][0] + dec, total[c][1] + inc)
    return HoldBalances(
        path, posted.type,
        apply(posted.own, own, True), apply(posted.own, own, False),
        apply(posted.child, child, True), apply(posted.child, child, False),
        apply(posted.total, total, True), apply(posted.total, total, False))
