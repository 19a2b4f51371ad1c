"""Running totals of lines (``balance_after``) and the rollup of eventual balances."""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.schema.compile import CompiledLine


class _NewLine(NamedTuple):
    """A line about to be inserted, with its entry's id, the (account id, currency) of its
    balance row and its posted time."""

    entry_id: int
    line: CompiledLine
    balance: tuple[int, str]
    posted: datetime


def _running_totals(flat: list[_NewLine], ids: list[int], before: dict, lines_until: dict):
    """The running own balance after each new line of a strongly consistent account.

    When every existing line of a (account, currency) is posted no later than the new
    ones (the usual case: posting now), the total before the first new line is the locked
    balance itself, so the totals are computed here with no index probe. Otherwise (a
    backdated line, or a balance row whose bound is unknown) the key is "slow": its lines
    are written without a total and renumbered in SQL from the earliest one on.
    Returns (totals per line, slow keys, latest posted per strong key)."""
    by_key: dict[tuple[int, str], list[int]] = {}
    for n, f in enumerate(flat):
        if f.line.account.own_consistency == "strong":
            by_key.setdefault(f.balance, []).append(n)
    totals: list[int | None] = [None] * len(flat)
    slow: list[tuple[int, str]] = []
    until: dict[tuple[int, str], datetime] = {}
    for key, rows in by_key.items():
        posted = [flat[n].posted for n in rows]
        until[key] = max(posted)
        bound = lines_until.get(key)
        if bound is None or min(posted) < bound:
            slow.append(key)
            continue
        running = before[key]
        for n in sorted(rows, key=lambda n: (flat[n].posted, ids[n])):
            running += flat[n].line.amount
            totals[n] = running
    return totals, sorted(slow), until


def rollup(conn: Connection, limit: int = 50_000) -> int:
    """Fold appended deltas of eventually consistent accounts into their balances.

    Skips deltas another rollup holds, so several can run at once; returns how many deltas
    were folded (0 when there is nothing to do). Then numbers the running totals of the
    folded accounts' new lines (see ``_INSERT_LINES``) while it holds their balance rows."""
    row = conn.execute(sa.text(
        "WITH taken AS ("
        "  DELETE FROM balance_deltas WHERE id IN ("
        "    SELECT id FROM balance_deltas ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED)"
        "  RETURNING ledger_id, account_id, currency, amount), "
        "folded AS ("
        "  INSERT INTO balances (account_id, currency, ledger_id, own) "
        "  SELECT account_id, currency, min(ledger_id), sum(amount) FROM taken "
        "  GROUP BY account_id, currency ORDER BY account_id, currency "
        "  ON CONFLICT (account_id, currency) DO UPDATE SET own = balances.own + EXCLUDED.own, "
        "    lines_until = NULL "
        "  RETURNING account_id, currency) "
        "SELECT (SELECT count(*) FROM taken), "
        "  (SELECT array_agg(account_id ORDER BY account_id, currency) FROM folded), "
        "  (SELECT array_agg(currency ORDER BY account_id, currency) FROM folded)"),
        {"n": limit}).first()
    if row[1]:
        number_lines(conn, row[1], row[2])
    return int(row[0])


def number_lines(conn: Connection, account_ids: list[int], currencies: list[str]) -> None:
    """Give running totals to the lines of these (account, currency) keys that lack one.

    The caller holds the keys' balance rows, so no one else renumbers them meanwhile. Each
    key is recomputed from its earliest unnumbered line to its end: lines committed later,
    even earlier in posted time, are numbered by the rollup that folds their own deltas."""
    conn.execute(sa.text(
        "WITH k AS (SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:curs AS text[])) "
        "           AS k(account_id, currency)), "
        "first AS ("
        "  SELECT k.account_id, k.currency, p.posted, p.id FROM k CROSS JOIN LATERAL ("
        "    SELECT x.posted, x.id FROM lines x WHERE x.account_id = k.account_id "
        "    AND x.currency = k.currency AND x.balance_after IS NULL "
        "    ORDER BY x.posted, x.id LIMIT 1) p), "
        # Materialized: computed once per key, not once per line of the window below.
        "base AS MATERIALIZED ("
        "  SELECT f.*, coalesce((SELECT x.balance_after FROM lines x "
        "    WHERE x.account_id = f.account_id AND x.currency = f.currency "
        "    AND (x.posted, x.id) < (f.posted, f.id) AND x.balance_after IS NOT NULL "
        "    ORDER BY x.posted DESC, x.id DESC LIMIT 1), 0) AS total FROM first f), "
        "run AS ("
        "  SELECT x.id, b.total + sum(x.amount) OVER (PARTITION BY x.account_id, x.currency "
        "                                             ORDER BY x.posted, x.id) AS total "
        "  FROM base b JOIN lines x ON x.account_id = b.account_id "
        "  AND x.currency = b.currency AND x.posted >= b.posted "
        "  AND (x.posted, x.id) >= (b.posted, b.id)) "
        "UPDATE lines x SET balance_after = r.total FROM run r "
        "WHERE x.id = r.id AND x.balance_after IS DISTINCT FROM r.total"),
        {"ids": list(account_ids), "curs": list(currencies)})


# The stored ``balance_after`` of a line is exact when no line of its (account, currency)
# earlier in (posted, id) order still waits for the rollup; from the earliest such line on
# the total is that line's predecessor's plus the amounts up to the line, so a read is
# exact at once instead of when the rollup catches up. The partial index
# lines_pending_total finds the earliest waiting line; the sum walks only the lines after
# it (the rollup's backlog), on lines_account_posted.
_RUNNING = sa.text(
    "WITH l AS (SELECT id, account_id, currency, posted, balance_after FROM lines "
    "           WHERE id = ANY(CAST(:ids AS bigint[]))), "
    "e AS (SELECT k.account_id, k.currency, p.posted, p.id FROM "
    "      (SELECT DISTINCT account_id, currency FROM l) k CROSS JOIN LATERAL ("
    "        SELECT x.posted, x.id FROM lines x WHERE x.account_id = k.account_id "
    "        AND x.currency = k.currency AND x.balance_after IS NULL "
    "        ORDER BY x.posted, x.id LIMIT 1) p) "
    "SELECT l.id, CASE WHEN e.id IS NULL OR (l.posted, l.id) < (e.posted, e.id) "
    "  THEN l.balance_after "
    "  ELSE coalesce((SELECT x.balance_after FROM lines x WHERE x.account_id = l.account_id "
    "      AND x.currency = l.currency AND (x.posted, x.id) < (e.posted, e.id) "
    "      ORDER BY x.posted DESC, x.id DESC LIMIT 1), 0) "
    "    + (SELECT sum(x.amount) FROM lines x WHERE x.account_id = l.account_id "
    "      AND x.currency = l.currency AND (x.posted, x.id) >= (e.posted, e.id) "
    "      AND (x.posted, x.id) <= (l.posted, l.id)) END "
    "FROM l LEFT JOIN e ON e.account_id = l.account_id AND e.currency = l.currency")


def running_balances(conn: Connection, line_ids: list[int]) -> dict[int, int]:
    """The own balance of each line's account in the line's currency right after the line,
    in (posted, id) order, counting every committed line: by line id."""
    if not line_ids:
        return {}
    return {int(r[0]): int(r[1]) for r in conn.execute(_RUNNING, {"ids": list(line_ids)})
            if r[1] is not None}


def fill_running_balances(conn: Connection, lines: list) -> list:
    """Set ``running_balance`` on the ``Line`` objects that lack it (one query); returns them."""
    missing = [int(line.id) for line in lines if line.running_balance is None]
    if missing:
        found = running_balances(conn, missing)
        for line in lines:
            if line.running_balance is None:
                line.running_balance = found.get(int(line.id))
    return lines
