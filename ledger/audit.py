"""Audit a ledger's books: the invariants the engine keeps, checked from the tables alone.

The engine guarantees these by how it writes (one transaction per batch, balance rows
locked, lines written from the entries and accounts it just read or created), and some
are deliberately not database constraints (migration 0007 explains why). An audit reads
everything, so it is for tests, for operators after a restore or a manual repair, and for
anyone who wants to see the books balance for themselves; it never writes.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.ledgers import Ledger

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
    # Every entry has lines, and they balance in each currency:
    # assets - liabilities - income + expense = 0.
    "entry_without_lines": """
        SELECT 'entry ' || e.id || ' (ik ' || e.ik || ')'
        FROM entries e WHERE e.ledger_id = :l
          AND NOT EXISTS (SELECT 1 FROM lines l WHERE l.entry_id = e.id)
        ORDER BY e.id LIMIT :n""",
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
    return problems
