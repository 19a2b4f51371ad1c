"""Reads the dashboard needs beyond the API's: each ledger's size and latest activity, and an
account's balance at the end of a run of periods (the points of its chart).

Each read is bounded by an index: the count of a ledger's entries stops at
``ENTRY_COUNT_CAP`` (a page shows "10,000+" rather than scanning a big ledger), an account
path search is a range of the (ledger, path) key, the latest activity the first row of the (ledger, posted) index, and a point of
the series one probe per (account, currency) into the stored running totals."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.db import Database
from ledger.errors import BadRequestError, NotFoundError
from ledger.history.balances import account_balances, account_balances_at
from ledger.history.model import AccountBalances
from ledger.ledgers import Ledger, list_ledgers, load_ledger
from ledger.schema.store import load_schema

# Points a series may hold: a year of days, or a century of months.
MAX_POINTS = 366
SCALES = ("daily", "monthly")


# Entries counted per ledger before the count stops: bounds the ledgers page on big ledgers.
ENTRY_COUNT_CAP = 10_000


@dataclass(frozen=True)
class LedgerActivity:
    ledger: Ledger
    entries: int  # at most ENTRY_COUNT_CAP; then ``capped``
    latest_posted: datetime | None
    capped: bool = False


@dataclass(frozen=True)
class BalancePoint:
    period: str  # 2025-03-05 (daily) or 2025-03 (monthly), in the ledger's balanceUTCOffset
    balances: AccountBalances


_ACTIVITY = sa.text(
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM entries WHERE ledger_id = :id "
    "LIMIT :cap) AS capped) AS n, "
    "(SELECT posted FROM entries WHERE ledger_id = :id ORDER BY posted DESC LIMIT 1) AS latest")


def ledgers_activity(db: Database) -> list[LedgerActivity]:
    """Every ledger with its number of entries (reversed and reversing ones included; past
    ``ENTRY_COUNT_CAP`` it is the cap and ``capped``) and the ``posted`` time of its newest
    entry (None when it has none)."""
    ledgers = list_ledgers(db)
    with db.transaction() as conn:
        conn.execute(sa.text("SET TRANSACTION READ ONLY"))
        found = []
        for ledger in ledgers:
            row = conn.execute(_ACTIVITY, {"id": ledger.id, "cap": ENTRY_COUNT_CAP + 1}).one()
            n = min(int(row.n), ENTRY_COUNT_CAP)
            found.append(LedgerActivity(ledger, n, row.latest, int(row.n) > ENTRY_COUNT_CAP))
    return found


def _periods(end: date, scale: str, points: int) -> list[str]:
    if scale == "daily":
        return [(end - timedelta(days=n)).isoformat() for n in range(points - 1, -1, -1)]
    months = end.year * 12 + end.month - 1
    return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(months - points + 1, months + 1)]


def balance_series(db: Database, ledger_ik: str, path: str, *, end: date,
                   scale: str = "daily", points: int = 30) -> list[BalancePoint]:
    """``path``'s own, child and total balances at the end of each of ``points`` days or
    months, the last one holding ``end``, oldest first, read in one snapshot."""
    if scale not in SCALES:
        raise BadRequestError("invalid_input", f"scale: expected one of {', '.join(SCALES)}, "
                              f"got {scale!r}", field="scale")
    if isinstance(points, bool) or not isinstance(points, int) or not 1 <= points <= MAX_POINTS:
        raise BadRequestError("invalid_input", f"points: expected 1 to {MAX_POINTS}",
                              field="points")
    periods = _periods(end, scale, points)

    def read(conn: Connection) -> list[BalancePoint]:
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        ledger = load_ledger(conn, ledger_ik)
        schema = load_schema(conn, ledger.id)
        return [BalancePoint(p, account_balances_at(conn, ledger, schema, path, p))
                for p in periods]

    return db.run(read)


MAX_PATHS = 200


def balances_of(db: Database, ledger_ik: str, paths: list[str],
                at: str | datetime | None = None) -> dict[str, AccountBalances | None]:
    """Own, child and total balances of each of ``paths`` (at most ``MAX_PATHS``), now or
    ``at`` (a time or period, as in ``account_balances``), read in one snapshot. A path the
    schema has no account for maps to None; a bad ``at`` is ``invalid_input``."""
    if len(paths) > MAX_PATHS:
        raise BadRequestError("invalid_input", f"paths: at most {MAX_PATHS}", field="paths")

    def read(conn: Connection) -> dict[str, AccountBalances | None]:
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        ledger = load_ledger(conn, ledger_ik)
        schema = load_schema(conn, ledger.id)
        found: dict[str, AccountBalances | None] = {}
        for path in dict.fromkeys(paths):
            try:
                found[path] = (account_balances(conn, ledger, schema, path) if at is None
                               else account_balances_at(conn, ledger, schema, path, at))
            except NotFoundError:
                found[path] = None
        return found

    return db.run(read)


@dataclass(frozen=True)
class ChartNode:
    path: str
    template: bool  # a template node: its accounts are its instances (users:alice, ...)


def chart_nodes(db: Database, ledger_ik: str) -> list[ChartNode]:
    """The schema's chart of accounts down to its template nodes, by path: the accounts
    that exist without a template value, and each template node (its instances are the
    ledger's accounts below it, listed by ``list_ledger_accounts``). As many as the
    schema declares, whatever the ledger holds."""
    with db.transaction() as conn:
        schema = load_schema(conn, load_ledger(conn, ledger_ik).id)
    nodes = []
    for account in schema.accounts.values():
        parts = account.path.split("/")
        above = ("/".join(parts[:n]) for n in range(1, len(parts)))
        if not any(schema.accounts[p].template for p in above if p in schema.accounts):
            nodes.append(ChartNode(account.path, account.template))
    return sorted(nodes, key=lambda n: n.path)


MAX_PATH_HITS = 50


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _after_prefix(prefix: str) -> str | None:
    """The first string in "C" (code point) order past every string starting with
    ``prefix``; None when its last character is the last code point."""
    last = ord(prefix[-1])
    return None if last >= 0x10FFFF else prefix[:-1] + chr(last + 1)


def find_account_paths(db: Database, ledger_ik: str, prefix: str,
                       limit: int = 20) -> list[str]:
    """Paths of the ledger's accounts that start with ``prefix``, in path order, at most
    ``limit`` (1 to ``MAX_PATH_HITS``). The paths are "C"-collated, so the prefix is a
    range of the (ledger, path) key: the cost is the hits, not the ledger's size."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PATH_HITS:
        raise BadRequestError("invalid_input", f"limit: expected 1 to {MAX_PATH_HITS}",
                              field="limit")
    if not prefix:
        raise BadRequestError("invalid_input", "prefix: must not be empty", field="prefix")
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        # The range is spelled out: a prepared (generic) plan cannot derive it from LIKE.
        hi = _after_prefix(prefix)
        rows = conn.execute(sa.text(
            "SELECT path FROM accounts WHERE ledger_id = :id AND path >= :lo "
            + ("AND path < :hi " if hi is not None else "")
            + "AND path LIKE :p ESCAPE '\\' ORDER BY path LIMIT :n"),
            {"id": ledger.id, "lo": prefix, "hi": hi, "p": _like_prefix(prefix), "n": limit})
        return [r.path for r in rows]


# Pending jobs of one ledger read at most: past it the jobs page says it counted the oldest.
PENDING_CAP = 10_000


@dataclass(frozen=True)
class LedgerBacklog:
    pending: dict[int, int]  # partition -> pending jobs of this ledger (its partitions only)
    oldest: dict[int, datetime]  # partition -> creation of its oldest pending job
    capped: bool  # more than PENDING_CAP pending: the counts are of the oldest ones


def ledger_backlog(db: Database, ledger_ik: str) -> LedgerBacklog:
    """The ledger's pending posting jobs per partition, read from its oldest ``PENDING_CAP``
    through the (ledger, status, id) index, so a deep backlog costs the cap at most."""
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        rows = conn.execute(sa.text(
            "SELECT partition, count(*) AS n, min(created) AS oldest FROM ("
            " SELECT partition, created FROM posting_jobs"
            " WHERE ledger_id = :id AND status = 'pending' ORDER BY id LIMIT :cap) AS head "
            "GROUP BY partition ORDER BY partition"),
            {"id": ledger.id, "cap": PENDING_CAP + 1}).all()
    total = sum(r.n for r in rows)
    return LedgerBacklog({r.partition: int(r.n) for r in rows},
                         {r.partition: r.oldest for r in rows}, total > PENDING_CAP)
