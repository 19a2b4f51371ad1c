"""Audit a ledger's books: the invariants the engine keeps, checked from the tables alone.

The engine guarantees these by how it writes (one transaction per batch, balance rows
locked, lines written from the entries and accounts it just read or created), and some
are deliberately not database constraints (migration 0007 explains why). An audit reads
everything, so it is for tests, for operators after a restore or a manual repair, and for
anyone who wants to see the books balance for themselves; it never writes. Besides the
engine's invariants it checks the schema's: no balance is on the wrong side of a bound a
condition of the schema keeps (``broken_conditions``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.ledgers import Ledger
from ledger.schema.model import ConditionType, PathTemplate, Schema
from ledger.schema.store import load_schema

# Each check lists up to this many examples; one is enough to know the books are wrong.
EXAMPLES = 20


@dataclass(frozen=True)
class Problem:
    check: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.detail}"


_CHECKS: dict[str, str] = {
    # Every line belongs to an entry and an account of its own ledger.
    "line_without_entry": """
        SELECT 'line ' || l.id || ' names entry ' || l.entry_id
        FROM lines l LEFT JOIN entries e ON e.id = l.entry_id AND e.ledger_id = l.ledger_id
        WHERE l.ledger_id = :l AND e.id IS NULL ORDER BY l.id LIMIT :n""",
    "line_without_account": """
        SELECT 'line ' || l.id || ' names account ' || l.account_id
        FROM lines l LEFT JOIN accounts a ON a.id = l.account_id AND a.ledger_id = l.ledger_id
        WHERE l.ledger_id = :l AND a.id IS NULL ORDER BY l.id LIMIT :n""",
    # Every hold is an entry of its own ledger, and every hold line belongs to a hold and
    # an account of that ledger (no foreign keys: 0018_holds_no_fkeys).
    "hold_without_entry": """
        SELECT 'hold ' || h.entry_id || ' names no entry of its ledger'
        FROM holds h LEFT JOIN entries e ON e.id = h.entry_id AND e.ledger_id = h.ledger_id
        WHERE h.ledger_id = :l AND e.id IS NULL ORDER BY h.entry_id LIMIT :n""",
    "hold_line_without_hold": """
        SELECT 'hold line ' || hl.id || ' names hold ' || hl.entry_id
        FROM hold_lines hl LEFT JOIN holds h ON h.entry_id = hl.entry_id
          AND h.ledger_id = hl.ledger_id
        WHERE hl.ledger_id = :l AND h.entry_id IS NULL ORDER BY hl.id LIMIT :n""",
    "hold_line_without_account": """
        SELECT 'hold line ' || hl.id || ' names account ' || hl.account_id
        FROM hold_lines hl LEFT JOIN accounts a ON a.id = hl.account_id
          AND a.ledger_id = hl.ledger_id
        WHERE hl.ledger_id = :l AND a.id IS NULL ORDER BY hl.id LIMIT :n""",
    # Every entry has lines, and they balance in each currency:
    # assets - liabilities - income + expense = 0. A hold has lines once committed; until
    # then (and voided or expired for good) they are pending lines (hold_lines).
    "entry_without_lines": """
        SELECT 'entry ' || e.id || ' (ik ' || e.ik || ')'
        FROM entries e WHERE e.ledger_id = :l
          AND NOT EXISTS (SELECT 1 FROM lines l WHERE l.entry_id = e.id)
          AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.entry_id = e.id
                          AND h.status <> 'committed')
        ORDER BY e.id LIMIT :n""",
    # What a balance row says holds reserve (held, pending_in) is what its pending holds'
    # lines add up to (ledger/holds/).
    "hold_reservation_wrong": """
        WITH pending AS (
            SELECT hl.account_id, hl.currency, sum(least(hl.amount, 0)) AS held,
                   sum(greatest(hl.amount, 0)) AS pending_in
            FROM hold_lines hl JOIN holds h ON h.entry_id = hl.entry_id
            WHERE h.ledger_id = :l AND h.status = 'pending'
            GROUP BY hl.account_id, hl.currency)
        SELECT 'account ' || b.account_id || ' ' || b.currency || ': held ' || b.held
               || ' and pending_in ' || b.pending_in || ', its pending holds sum to '
               || coalesce(p.held, 0) || ' and ' || coalesce(p.pending_in, 0)
        FROM balances b LEFT JOIN pending p
          ON p.account_id = b.account_id AND p.currency = b.currency
        WHERE b.ledger_id = :l AND (b.held <> coalesce(p.held, 0)
                                    OR b.pending_in <> coalesce(p.pending_in, 0))
        ORDER BY 1 LIMIT :n""",
    "entry_unbalanced": """
        SELECT 'entry ' || l.entry_id || ' is off by ' || sum(
                 CASE WHEN a.type IN ('asset', 'expense') THEN l.amount ELSE -l.amount END)
               || ' ' || l.currency
        FROM lines l JOIN accounts a ON a.id = l.account_id
        WHERE l.ledger_id = :l
        GROUP BY l.entry_id, l.currency
        HAVING sum(CASE WHEN a.type IN ('asset', 'expense') THEN l.amount
                        ELSE -l.amount END) <> 0
        ORDER BY l.entry_id LIMIT :n""",
    # Every own balance is the sum of its account's lines, counting the deltas of an
    # eventually consistent account that the rollup has yet to fold in.
    "balance_not_sum_of_lines": """
        WITH sums AS (
            SELECT account_id, currency, sum(amount) AS amount
            FROM lines WHERE ledger_id = :l GROUP BY account_id, currency),
        held AS (
            SELECT account_id, currency, sum(amount) AS amount FROM (
                SELECT account_id, currency, own AS amount FROM balances
                WHERE ledger_id = :l
                UNION ALL
                SELECT account_id, currency, amount FROM balance_deltas
                WHERE ledger_id = :l) x
            GROUP BY account_id, currency)
        SELECT 'account ' || coalesce(h.account_id, s.account_id) || ' '
               || coalesce(h.currency, s.currency) || ': balance '
               || coalesce(h.amount, 0) || ', lines sum to ' || coalesce(s.amount, 0)
        FROM held h FULL JOIN sums s
          ON s.account_id = h.account_id AND s.currency = h.currency
        WHERE coalesce(h.amount, 0) <> coalesce(s.amount, 0)
        ORDER BY 1 LIMIT :n""",
    # Every numbered line carries the running own balance of its account and currency
    # in (posted, id) order: what balance-at-a-time reads rest on (ledger/history.py).
    "running_total_wrong": """
        SELECT 'line ' || id || ' carries ' || balance_after || ', its lines sum to '
               || running
        FROM (SELECT id, balance_after, sum(amount) OVER (
                  PARTITION BY account_id, currency ORDER BY posted, id) AS running
              FROM lines WHERE ledger_id = :l) x
        WHERE balance_after IS NOT NULL AND balance_after <> running
        ORDER BY id LIMIT :n""",
}


def audit(conn: Connection, ledger: Ledger) -> list[Problem]:
    """Everything wrong with ``ledger``'s books (empty when they hold), up to
    ``EXAMPLES`` examples per check. Run it in a REPEATABLE READ transaction (as
    ``service.audit`` does), so postings that commit meanwhile cannot make sums disagree."""
    problems: list[Problem] = []
    for check, sql in _CHECKS.items():
        for (detail,) in conn.execute(sa.text(sql), {"l": ledger.id, "n": EXAMPLES}):
            problems.append(Problem(check, detail))
    problems += broken_conditions(conn, ledger, load_schema(conn, ledger.id))
    return problems


# A balance breaks a bound when it is on the wrong side of it.
_BREAKS = {"gte": "<", "lte": ">"}


def standing_bounds(schema: Schema) -> list[tuple[ConditionType, str]]:
    """The conditions that state a bound an account's balance keeps between postings, each
    with an entry type stating it: postconditions ``gte`` or ``lte`` a constant
    (``"gte": "0"``: no overdraft). Left out: preconditions and ``eq`` (they gate a posting,
    as "open only an empty account" does, and later postings legitimately move on), and
    values that take a parameter (they bound one posting, not the account)."""
    seen: dict[tuple, tuple[ConditionType, str]] = {}
    for et in schema.entry_types.values():
        for c in et.conditions:
            if c.when != "post" or c.op not in _BREAKS or c.value.params:
                continue
            currency = c.currency.source() if c.currency and c.currency.is_literal else None
            key = (c.path.source(), c.balance, c.op, c.value.const, currency)
            seen.setdefault(key, (c, et.type))
    return list(seen.values())


def broken_conditions(conn: Connection, ledger: Ledger, schema: Schema) -> list[Problem]:
    """Balances on the wrong side of a standing bound of the schema (``standing_bounds``):
    the engine refuses every posting that would break one, so one that is broken was moved
    by something else: an entry type without the condition, a hand-made UPDATE, or a hold
    that expired (expiry is never refused; its ``hold.expired`` event names the bound)."""
    problems: list[Problem] = []
    for cond, etype in standing_bounds(schema):
        shape = _instance_pattern(cond.path)
        literal = cond.currency.source() if cond.currency and cond.currency.is_literal else None
        sql = _OWN_BREAKS if cond.balance == "own" else _TOTAL_BREAKS
        rows = conn.execute(sa.text(sql.format(breaks=_BREAKS[cond.op])), {
            "l": ledger.id, "chart": cond.path.account, "cur": literal,
            "v": str(cond.value.const)})
        name = "ownBalance" if cond.balance == "own" else "totalBalance"
        for path, currency, balance in rows:
            if not shape.fullmatch(path):
                continue
            problems.append(Problem("condition_broken", (
                f"account {path} {currency}: {name} {balance} breaks the postcondition "
                f"{name} {cond.op} {cond.value.const} of entry type {etype!r}")))
            if len(problems) >= EXAMPLES:
                return problems
    return problems


def _instance_pattern(path: PathTemplate) -> re.Pattern:
    """The concrete paths a path template names: its literal text, any value for each
    parameter."""
    parts = path.text.parts
    return re.compile("".join(re.escape(p) if i % 2 == 0 else "[^/]+"
                              for i, p in enumerate(parts)))


# Conditions are kept on available balances (own less what holds reserve).
_OWN_BREAKS = """
    SELECT a.path, b.currency, b.own + b.held FROM balances b JOIN accounts a ON a.id = b.account_id
    WHERE a.ledger_id = :l AND a.chart_path = :chart
      AND (CAST(:cur AS text) IS NULL OR b.currency = :cur)
      AND b.own + b.held {breaks} CAST(:v AS numeric)
    ORDER BY a.path, b.currency"""


_TOTAL_BREAKS = """
    SELECT path, currency, total FROM (
        SELECT a.path, b.currency, b.own + b.held + coalesce((
            SELECT sum(d.own + d.held) FROM balances d JOIN accounts x ON x.id = d.account_id
            WHERE x.ledger_id = a.ledger_id AND d.currency = b.currency
              AND x.path > a.path || '/' AND x.path < a.path || '0'), 0) AS total
        FROM balances b JOIN accounts a ON a.id = b.account_id
        WHERE a.ledger_id = :l AND a.chart_path = :chart
          AND (CAST(:cur AS text) IS NULL OR b.currency = :cur)) t
    WHERE total {breaks} CAST(:v AS numeric)
    ORDER BY path, currency"""
