"""Accounts, balance row locks taken in one order, and the conditions checked under them."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import fastjson
from ledger.db import fetch
from ledger.errors import BadRequestError
from ledger.ledgers import Ledger
from ledger.schema.compile import CompiledEntry
from ledger.schema.model import check_condition

_FIND_ACCOUNTS = sa.text(
    "SELECT a.path, a.id FROM accounts a "
    "JOIN json_array_elements_text(CAST(:p AS json)) AS q(path) ON a.path = q.path "
    "WHERE a.ledger_id = :l")


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


_LOCK_SQL = sa.text(
    "SELECT b.account_id, b.currency, b.own, b.lines_until, b.held FROM balances b "
    "JOIN json_to_recordset(CAST(:keys AS json)) AS k(a bigint, c text) "
    "ON b.account_id = k.a AND b.currency = k.c "
    "ORDER BY b.account_id, b.currency FOR UPDATE OF b")


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
