"""Running totals of lines (``balance_after``) and the rollup of eventual balances."""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.monitors.watch import watch_ledgers
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
    folded accounts' new lines (see ``_INSERT_LINES``) while it holds their balance rows,
    and has the balance monitors judge each folded delta in the order it was appended."""
    row = conn.execute(sa.text(
        "WITH taken AS ("
        "  DELETE FROM balance_deltas WHERE id IN ("
        "    SELECT id FROM balance_deltas ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED)"
        "  RETURNING id, ledger_id, account_id, currency, amount), "
        "folded AS ("
        "  INSERT INTO balances (account_id, currency, ledger_id, own) "
        "  SELECT account_id, currency, min(ledger_id), sum(amount) FROM taken "
        "  GROUP BY account_id, currency ORDER BY account_id, currency "
        "  ON CONFLICT (account_id, currency) DO UPDATE SET own = balances.own + EXCLUDED.own, "
        "    lines_until = NULL "
        "  RETURNING account_id, currency) "
        "SELECT (SELECT count(*) FROM taken), "
        "  (SELECT array_agg(account_id ORDER BY account_id, currency) FROM folded), "
        "  (SELECT array_agg(currency ORDER BY account_id, currency) FROM folded), "
        "  (SELECT json_agg(json_build_array(ledger_id, account_id, currency, amount) "
        "    ORDER BY id) FROM taken)"),
        {"n": limit}).first()
    if row[1]:
        number_lines(conn, row[1], row[2])
        # Balance monitors of the folded accounts and their parents, in this transaction:
        # a step per delta (the engine appends one per entry in a ledger with monitors).
        steps: dict[int, list] = {}
        for ledger_id, account_id, currency, amount in row[3]:
            steps.setdefault(ledger_id, []).append(
                (None, {(account_id, currency): (int(amount), 0, 0)}))
        watch_ledgers(conn, steps)
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
# earlier in (posted, id) order still waits for the rollup. So a read takes the lines with,
# per line, the earliest waiting line of its key (the partial index lines_pending_total:
# none for strong accounts and rolled-up ones, the usual case, which ends there). From a
# waiting line on, a key's totals are the stored one before it plus a running sum up to the
# latest line asked for: one walk of the rollup's backlog on lines_account_posted per such
# key, exact at once instead of when the rollup catches up. Two small statements rather than
# one: together the planner priced them high enough to compile the query (JIT), which cost
# more than running it.
_LINES_AND_PENDING = sa.text(
    "WITH l AS MATERIALIZED (SELECT id, account_id, currency, posted, balance_after "
    "  FROM lines WHERE id = ANY(CAST(:ids AS bigint[]))) "
    "SELECT l.id, l.account_id, l.currency, l.posted, l.balance_after, p.posted, p.id "
    "FROM l LEFT JOIN LATERAL (SELECT x.posted, x.id FROM lines x "
    "  WHERE x.account_id = l.account_id AND x.currency = l.currency "
    "  AND x.balance_after IS NULL ORDER BY x.posted, x.id LIMIT 1) p ON true")

_BACKLOG_TOTALS = sa.text(
    "SELECT x.id, coalesce((SELECT y.balance_after FROM lines y WHERE y.account_id = :a "
    "    AND y.currency = :c AND (y.posted, y.id) < (:p, :i) "
    "    ORDER BY y.posted DESC, y.id DESC LIMIT 1), 0) "
    "  + sum(x.amount) OVER (ORDER BY x.posted, x.id) "
    "FROM lines x WHERE x.account_id = :a AND x.currency = :c "
    "AND (x.posted, x.id) >= (:p, :i) AND x.posted <= :last")


def running_balances(conn: Connection, line_ids: list[int]) -> dict[int, int]:
    """The own balance of each line's account in the line's currency right after the line,
    in (posted, id) order, counting every committed line: by line id."""
    if not line_ids:
        return {}
    out: dict[int, int] = {}
    backlog: dict[tuple[int, str, datetime, int], datetime] = {}
    for id_, account, currency, posted, stored, p_posted, p_id in conn.execute(
            _LINES_AND_PENDING, {"ids": list(line_ids)}):
        if p_id is None or (posted, id_) < (p_posted, p_id):
            out[id_] = int(stored)
        else:
            key = (account, currency, p_posted, p_id)
            backlog[key] = max(backlog.get(key, posted), posted)
    wanted = set(line_ids)
    for (account, currency, p_posted, p_id), last in backlog.items():
        for id_, total in conn.execute(_BACKLOG_TOTALS, {
                "a": account, "c": currency, "p": p_posted, "i": p_id, "last": last}):
            if id_ in wanted:
                out[id_] = int(total)
    return out


def fill_running_balances(conn: Connection, lines: list) -> list:
    """Set ``running_balance`` on the ``Line`` objects that lack it (one query); returns them."""
    missing = [int(line.id) for line in lines if line.running_balance is None]
    if missing:
        found = running_balances(conn, missing)
        for line in lines:
            if line.running_balance is None:
                line.running_balance = found.get(int(line.id))
    return lines
