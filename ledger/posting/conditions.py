"""Accounts, balance row locks taken in one order, and the conditions checked under them."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import fastjson
from ledger.db import fetch
from ledger.errors import BadRequestError
from ledger.ledgers import Ledger
from ledger.schema.compile import CompiledEntry
from ledger.schema.model import check_condition

# The lookups by key below are LATERAL subqueries that PostgreSQL cannot flatten into a
# join (a LIMIT, a FOR UPDATE): each key is one index probe. As plain joins, the planner
# took the JSON document for 100 rows and chose a hash join over a sequential scan of the
# ledger's accounts or balances, on every post, until the table was large enough.
_FIND_ACCOUNTS_SQL = (
    "SELECT q.path, a.id FROM json_array_elements_text(CAST(:p AS json)) AS q(path) "
    "CROSS JOIN LATERAL (SELECT id FROM accounts WHERE ledger_id = :l AND path = q.path "
    "LIMIT 1) a")
_FIND_ACCOUNTS = sa.text(_FIND_ACCOUNTS_SQL)


def _keys(keys: list[tuple[int, str]]) -> dict:
    return {"keys": fastjson.dumps([{"a": k[0], "c": k[1]} for k in keys])}


def _ensure_accounts(conn: Connection, ledger: Ledger, wanted: dict) -> dict[str, int]:
    """Ids of the accounts at these paths, creating template instances on first use."""
    paths = sorted(wanted)
    found = dict(fetch(conn, _FIND_ACCOUNTS, {"l": ledger.id, "p": fastjson.dumps(paths)}))
    missing = [p for p in paths if p not in found]
    if missing:
        found.update(fetch(conn, _CREATE_ACCOUNTS, {
            "l": ledger.id, "created": datetime.now(timezone.utc), "rows": fastjson.dumps([
                {"path": p, "chart_path": wanted[p].path, "type": wanted[p].type,
                 "consistency": wanted[p].own_consistency} for p in missing])}))
        still = [p for p in missing if p not in found]
        if still:  # created meanwhile by a concurrent transaction that has now committed
            found.update(fetch(conn, _FIND_ACCOUNTS, {"l": ledger.id, "p": fastjson.dumps(still)}))
    return found


_CREATE_ACCOUNTS = sa.text(
    "INSERT INTO accounts (ledger_id, path, chart_path, type, consistency, created) "
    "SELECT :l, u.path, u.chart_path, u.type, u.consistency, :created "
    "FROM json_to_recordset(CAST(:rows AS json)) "
    "AS u(path text, chart_path text, type text, consistency text) "
    "ON CONFLICT ON CONSTRAINT accounts_ledger_path_key DO NOTHING RETURNING path, id")


# Locked one key after the other in (account, currency) order: the keys (k: a, c) are
# sorted (OFFSET 0 keeps the sort below the loop), and a nested loop locks in its outer order.
_LOCKED_ROWS = ("SELECT b.account_id, b.currency, b.own, b.lines_until, b.held FROM ({keys} "
                "ORDER BY 1, 2 OFFSET 0) k "
                "CROSS JOIN LATERAL (SELECT * FROM balances "
                "WHERE account_id = k.a AND currency = k.c FOR UPDATE) b")
_LOCK_SQL = sa.text(_LOCKED_ROWS.format(
    keys="SELECT k.a, k.c FROM json_to_recordset(CAST(:keys AS json)) AS k(a bigint, c text)"))


# A new row has no lines yet, so every line to come is posted after its bound.
_CREATE_BALANCES = sa.text(
    "INSERT INTO balances (account_id, currency, ledger_id, own, lines_until) "
    "SELECT k.a, k.c, :l, 0, TIMESTAMPTZ '0001-01-01 00:00:00+00' "
    "FROM json_to_recordset(CAST(:keys AS json)) AS k(a bigint, c text) "
    "ORDER BY 1, 2 ON CONFLICT DO NOTHING")


def _lock_balances(conn: Connection, ledger: Ledger, keys: list[tuple[int, str]]):
    """Lock the strongly consistent balance rows an entry changes, in one sorted order so
    that concurrent postings never deadlock, creating the rows that do not exist yet.
    Returns their balances, their ``lines_until`` (every line of the key is posted at or
    before it; None when unknown) and what holds reserve of them (the pending decreases,
    <= 0; only the keys where that is not 0)."""
    if not keys:
        return {}, {}, {}
    rows = fetch(conn, _LOCK_SQL, _keys(keys))
    held = {(r[0], r[1]) for r in rows}
    missing = [k for k in keys if k not in held]
    if missing:
        fetch(conn, _CREATE_BALANCES, {"l": ledger.id, **_keys(missing)})
        rows += fetch(conn, _LOCK_SQL, _keys(missing))
    return ({(r[0], r[1]): int(r[2]) for r in rows}, {(r[0], r[1]): r[3] for r in rows},
            {(r[0], r[1]): int(r[4]) for r in rows if r[4]})


# The usual batch, whose accounts and balance rows all exist, in one round trip instead of
# three: its accounts found, its strong balance rows locked (as _FIND_ACCOUNTS and
# _LOCK_SQL do), then the ids of its new lines drawn. The ids come after every lock: the
# count of locked rows is an argument of generate_series, so the locking CTE is read to its
# end before the first nextval. Lines of a key are thus numbered in the order their
# transactions locked it, which the running totals follow (rollup.py). In two parts, so
# that a statement doing more first can share them (posting.engine._CLAIM_AND_LOCK): the
# CTEs, and the rows, each of a kind (0 an account, 1 a locked balance, 2 a line id).
FIND_LOCK_DRAW_CTES = (
    f"acc AS ({_FIND_ACCOUNTS_SQL}), "
    "bal AS (" + _LOCKED_ROWS.format(
        keys="SELECT acc.id AS a, k.c FROM acc JOIN json_to_recordset(CAST(:keys AS json)) "
             "AS k(p text, c text) ON k.p = acc.path") + ")")
FIND_LOCK_DRAW_ROWS = (
    "SELECT 0, acc.path, acc.id, NULL::text, NULL::numeric, NULL::timestamptz, NULL::numeric "
    "FROM acc "
    "UNION ALL SELECT 1, NULL, account_id, currency, own, lines_until, held FROM bal "
    "UNION ALL SELECT 2, NULL, nextval('lines_id_seq'), NULL, NULL, NULL, NULL "
    "FROM generate_series(1, :n + 0 * (SELECT count(*) FROM bal))")
_FIND_LOCK_DRAW = sa.text(f"WITH {FIND_LOCK_DRAW_CTES} {FIND_LOCK_DRAW_ROWS}")


@dataclass
class Locked:
    """What ``find_and_lock`` found: account ids by path; balances, ``lines_until`` and
    what holds reserve (only where not 0) by locked strong key; the line ids drawn under
    the locks, or None when some had to be created (the caller draws them); and the rows
    of any other kind the statement returned."""

    account_ids: dict[str, int]
    balances: dict[tuple[int, str], int]
    lines_until: dict[tuple[int, str], Any]
    held: dict[tuple[int, str], int]
    ids: list[int] | None
    other: list[tuple] = field(default_factory=list)


def lock_params(ledger: Ledger, lines: list, draw: int) -> dict:
    """The parameters of ``FIND_LOCK_DRAW_CTES`` and ``FIND_LOCK_DRAW_ROWS``."""
    return {"l": ledger.id, "n": draw,
            "p": fastjson.dumps(sorted({l.path for l in lines})),
            "keys": fastjson.dumps([{"p": p, "c": c} for p, c in _strong_pairs(lines)])}


def _strong_pairs(lines: list) -> list[tuple[str, str]]:
    return sorted({(l.path, l.currency) for l in lines if l.account.own_consistency == "strong"})


def find_and_lock(conn: Connection, ledger: Ledger, lines: list, draw: int, *,
                  statement: sa.TextClause = _FIND_LOCK_DRAW,
                  params: dict | None = None) -> Locked:
    """The accounts of ``lines`` (compiled lines: path, account, currency) that exist, the
    locks of their strongly consistent balance rows that exist, and ``draw`` new line ids
    drawn under those locks, in one round trip. ``statement`` may do more first (with its
    own ``params`` beside ``lock_params``'), its rows of other kinds kept in ``other``.
    ``lock_the_rest`` then creates and locks what is missing."""
    rows = fetch(conn, statement, params or lock_params(ledger, lines, draw))
    locked = [r for r in rows if r[0] == 1]
    return Locked({r[1]: r[2] for r in rows if r[0] == 0},
                  {(r[2], r[3]): int(r[4]) for r in locked},
                  {(r[2], r[3]): r[5] for r in locked},
                  {(r[2], r[3]): int(r[6]) for r in locked if r[6]},
                  [r[2] for r in rows if r[0] == 2], [r for r in rows if r[0] > 2])


def lock_the_rest(conn: Connection, ledger: Ledger, locked: Locked, lines: list) -> Locked:
    """``locked`` completed for ``lines``, as ``_ensure_accounts`` then ``_lock_balances``
    would: the accounts and balance rows ``find_and_lock`` did not find created (template
    instances on first use), then locked, after the others. The ids drawn before these
    locks are then dropped (a gap in the sequence): ``ids`` becomes None, for the caller to
    draw them once every row it writes is locked."""
    missing = {l.path: l.account for l in lines if l.path not in locked.account_ids}
    if missing:
        locked.account_ids.update(_ensure_accounts(conn, ledger, missing))
    unlocked = sorted({(locked.account_ids[p], c) for p, c in _strong_pairs(lines)}
                      - locked.balances.keys())
    if unlocked:
        balances, lines_until, held = _lock_balances(conn, ledger, unlocked)
        locked.balances.update(balances)
        locked.lines_until.update(lines_until)
        locked.held.update(held)
        locked.ids = None
    return locked


def _lock_descendants(conn: Connection, ledger: Ledger, paths: list[str]):
    """Balance rows under accounts whose totalBalance a condition reads, as available
    balances (what holds reserve already taken off)."""
    return [(r[0], r[1], r[2], int(r[3])) for r in conn.execute(sa.text(
        "SELECT b.account_id, a.path, b.currency, b.own + b.held FROM balances b "
        "JOIN accounts a ON a.id = b.account_id "
        "JOIN unnest(CAST(:p AS text[])) AS q(path) "
        "ON a.path > q.path || '/' AND a.path < q.path || '0' "
        "WHERE a.ledger_id = :l ORDER BY b.account_id, b.currency FOR UPDATE OF b"),
        {"l": ledger.id, "p": paths})]


_OPS = {"gte": ">=", "lte": "<=", "eq": "=="}


def _check_conditions(entry: CompiledEntry, when: str, balances: dict, account_ids: dict,
                      paths_by_id: dict) -> None:
    for cond in entry.conditions:
        if cond.when != when:
            continue
        account_id = account_ids[cond.path]
        currencies = [cond.currency] if cond.currency else sorted(
            {l.currency for l in entry.lines if l.path == cond.path})
        for currency in currencies:
            balance = balances.get((account_id, currency), 0)
            if cond.balance == "total":
                prefix = cond.path + "/"
                balance += sum(v for (aid, cur), v in balances.items()
                               if cur == currency and paths_by_id.get(aid, "").startswith(prefix))
            if not check_condition(balance, cond.op, cond.value):
                name = "ownBalance" if cond.balance == "own" else "totalBalance"
                phase = "precondition" if when == "pre" else "postcondition"
                state = "is" if when == "pre" else "would be"
                raise BadRequestError(
                    "condition_failed",
                    f"{phase} failed on account {cond.path!r}: {name} {state} {balance} {currency}, "
                    f"which is not {_OPS[cond.op]} {cond.value}; nothing was posted",
                    field="conditions")


# The same functions under public names, for the other capabilities that move balances
# under the engine's locks and rules (ledger/holds/).
ensure_accounts = _ensure_accounts
lock_balances = _lock_balances
lock_descendants = _lock_descendants
check_conditions = _check_conditions
