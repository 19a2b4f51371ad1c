"""The posting engine: one path by which every entry reaches the books.

``post_entries`` runs inside the caller's transaction so that the sync API (one
transaction per request) and the async workers (a savepoint per batch or per entry) share
every rule. Statements per call are bounded and independent of the batch size: one
insert of entries, at most three for accounts, at most three for balance rows, one insert
of lines, one update of balances and one insert of deltas.
"""
from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timezone
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.errors import BadRequestError, LedgerError, NotFoundError
from ledger.model import Entry, EntryRequest, Ledger, Line, PostResult
from ledger.schema import (CompiledEntry, Schema, canonical_json, check_condition,
                           compile_entry, parse_schema)
from ledger.schema import partition_key as _partition_key

MAX_BATCH = 1000

_schema_cache: dict[tuple[int, int], Schema] = {}
_cache_lock = threading.Lock()


def load_schema(conn: Connection, ledger_id: int) -> Schema:
    """The latest schema version of a ledger (a ledger follows its schema's updates)."""
    row = conn.execute(sa.text(
        "SELECT l.schema_id, max(v.version) FROM ledgers l "
        "JOIN schema_versions v ON v.schema_id = l.schema_id WHERE l.id = :id "
        "GROUP BY l.schema_id"), {"id": ledger_id}).first()
    if row is None:
        raise NotFoundError("ledger_not_found", "the ledger has no schema")
    key = (row[0], row[1])
    schema = _schema_cache.get(key)
    if schema is None:
        doc = conn.execute(sa.select(t.schema_versions.c.json).where(
            t.schema_versions.c.schema_id == key[0], t.schema_versions.c.version == key[1])).scalar_one()
        schema = parse_schema(doc)
        with _cache_lock:
            _schema_cache[key] = schema
    return schema


def fingerprint(request: EntryRequest) -> str:
    """What makes two requests "the same" for idempotency: everything the caller sent."""
    body = {
        "type": request.type,
        "parameters": {k: str(v) for k, v in request.parameters.items()},
        "posted": request.posted.isoformat() if request.posted else None,
        "tags": request.tags,
        "groups": request.groups,
        "lines": request.lines,
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def partition_key(schema: Schema, request: EntryRequest) -> str:
    return _partition_key(schema, request)


def _located(exc: LedgerError, index: int, batch: bool) -> LedgerError:
    if batch:
        return exc.at_index(index)
    exc.index = index
    return exc


def compile_all(schema: Schema, requests: list[EntryRequest], txs=None) -> list[CompiledEntry]:
    """Compile every request, or fail on the first bad one naming its index."""
    batch = len(requests) > 1
    if len(requests) > MAX_BATCH:
        raise BadRequestError("invalid_input", f"entries: at most {MAX_BATCH} entries a batch, got {len(requests)}", field="entries")
    seen: dict[str, int] = {}
    out = []
    for i, req in enumerate(requests):
        if req.ik in seen:
            raise _located(BadRequestError("invalid_input", f"ik {req.ik!r} appears twice in the batch (also at {seen[req.ik]})", field="ik"), i, batch)
        seen[req.ik] = i
        try:
            entry = compile_entry(schema, req, txs)
        except LedgerError as exc:
            raise _located(exc, i, batch) from None
        entry.fingerprint = fingerprint(req)
        out.append(entry)
    return out


def post_entries(conn: Connection, ledger: Ledger, requests: list[EntryRequest],
                 txs=None) -> list[PostResult]:
    """Post entries atomically in the caller's transaction; replays return the original."""
    if not requests:
        return []
    schema = load_schema(conn, ledger.id)
    # txs: the locked external txs reconcile_tx resolved (see schema.compile_entry).
    compiled = compile_all(schema, requests, txs)
    batch = len(requests) > 1
    now = datetime.now(timezone.utc)

    # 1. Claim the iks. Sorted, so two batches sharing iks wait on each other in one order.
    order = sorted(range(len(compiled)), key=lambda i: compiled[i].request.ik)
    inserted = dict(conn.execute(_INSERT_ENTRIES, {
        "l": ledger.id, "created": now,
        "iks": [compiled[i].request.ik for i in order],
        "fps": [compiled[i].fingerprint for i in order],
        "types": [compiled[i].type for i in order],
        "descs": [compiled[i].description for i in order],
        "posted": [compiled[i].request.posted or now for i in order],
        "params": [canonical_json({k: str(v) for k, v in compiled[i].request.parameters.items()})
                   for i in order],
        "tags": [canonical_json(compiled[i].tags) for i in order],
        "groups": [canonical_json(compiled[i].groups) for i in order],
    }).all())
    replays: dict[int, int] = {}
    waiting = [i for i in range(len(compiled)) if compiled[i].request.ik not in inserted]
    while waiting:
        existing = {}
        for row in conn.execute(sa.text(
                "SELECT DISTINCT ON (ik) ik, id, fingerprint, ik_version, reversed_by_id "
                "FROM entries WHERE ledger_id = :l AND ik = ANY(:iks) ORDER BY ik, ik_version DESC"),
                {"l": ledger.id, "iks": [compiled[i].request.ik for i in waiting]}):
            existing[row.ik] = row
        reposts: list[tuple[int, int]] = []
        for i in waiting:
            c = compiled[i]
            row = existing[c.request.ik]
            if row.reversed_by_id is not None:
                # The ik's latest entry was reversed: posting under it again is a correction,
                # kept as the ik's next version beside the history.
                reposts.append((i, row.ik_version + 1))
                continue
            if row.fingerprint != c.fingerprint:
                raise _located(BadRequestError(
                    "ik_conflict",
                    f"ik {c.request.ik!r} was already used for a different request in this ledger; "
                    "use a new ik for a new entry", field="ik"), i, batch)
            replays[i] = row.id
        if not reposts:
            break
        got = dict(conn.execute(_INSERT_ENTRY_VERSIONS, _entry_arrays(
            ledger, now, [compiled[i] for i, _ in reposts], [v for _, v in reposts])).all())
        inserted.update(got)
        # Another transaction reposted the same ik first: look again at what it left.
        waiting = [i for i, _ in reposts if compiled[i].request.ik not in got]
    fresh = [i for i in range(len(compiled)) if i not in replays]

    results: dict[int, PostResult] = {}
    if fresh:
        _apply(conn, ledger, schema, [compiled[i] for i in fresh],
               [inserted[compiled[i].request.ik] for i in fresh], fresh, batch, now, results)
    if replays:
        loaded = load_entries(conn, ledger, list(replays.values()))
        for i, entry_id in replays.items():
            entry = loaded[entry_id]
            results[i] = PostResult(entry, entry.lines, True)
    return [results[i] for i in range(len(compiled))]


def _apply(conn: Connection, ledger: Ledger, schema: Schema, entries: list[CompiledEntry],
           entry_ids: list[int], indexes: list[int], batch: bool, now: datetime,
           results: dict[int, PostResult]) -> None:
    account_ids = _ensure_accounts(conn, ledger, {
        line.path: line.account for e in entries for line in e.lines})
    strong = sorted({(account_ids[l.path], l.currency) for e in entries for l in e.lines
                     if l.account.own_consistency == "strong"})
    balances = _lock_balances(conn, ledger, strong)
    total_paths = sorted({c.path for e in entries for c in e.conditions if c.balance == "total"})
    paths_by_id: dict[int, str] = {v: k for k, v in account_ids.items()}
    if total_paths:
        for account_id, path, currency, own in _lock_descendants(conn, ledger, total_paths):
            balances.setdefault((account_id, currency), own)
            paths_by_id[account_id] = path

    deltas: dict[tuple[int, str], int] = {}
    eventual: dict[tuple[int, str], int] = {}
    for entry, index in zip(entries, indexes):
        try:
            _check_conditions(entry, "pre", balances, account_ids, paths_by_id)
            for line in entry.lines:
                key = (account_ids[line.path], line.currency)
                if line.account.own_consistency == "strong":
                    balances[key] += line.amount
                    deltas[key] = deltas.get(key, 0) + line.amount
                else:
                    eventual[key] = eventual.get(key, 0) + line.amount
            _check_conditions(entry, "post", balances, account_ids, paths_by_id)
        except LedgerError as exc:
            raise _located(exc, index, batch) from None

    flat = [(entry_id, e, l) for e, entry_id in zip(entries, entry_ids) for l in e.lines]
    line_ids = {(r[1], r[2]): r[0] for r in conn.execute(_INSERT_LINES, {
        "l": ledger.id, "created": now,
        "entry_ids": [f[0] for f in flat],
        "account_ids": [account_ids[f[2].path] for f in flat],
        "keys": [f[2].key for f in flat],
        "amounts": [str(f[2].amount) for f in flat],
        "currencies": [f[2].currency for f in flat],
        "posted": [f[1].request.posted or now for f in flat],
        "descs": [f[2].description for f in flat],
        "txs": [f[2].tx for f in flat],
        "strong": [f[2].account.own_consistency == "strong" for f in flat],
    })}
    touched = sorted(k for k, v in deltas.items() if v)
    if touched:
        conn.execute(sa.text(
            "UPDATE balances b SET own = b.own + d.delta FROM unnest("
            "CAST(:ids AS bigint[]), CAST(:curs AS text[]), CAST(:deltas AS numeric[])) "
            "AS d(account_id, currency, delta) "
            "WHERE b.account_id = d.account_id AND b.currency = d.currency"),
            {"ids": [k[0] for k in touched], "curs": [k[1] for k in touched],
             "deltas": [str(deltas[k]) for k in touched]})
    pending = [k for k, v in eventual.items() if v]
    if pending:
        conn.execute(sa.text(
            "INSERT INTO balance_deltas (ledger_id, account_id, currency, amount) "
            "SELECT :l, * FROM unnest(CAST(:ids AS bigint[]), CAST(:curs AS text[]), "
            "CAST(:amounts AS numeric[]))"),
            {"l": ledger.id, "ids": [k[0] for k in pending], "curs": [k[1] for k in pending],
             "amounts": [str(eventual[k]) for k in pending]})

    for e, entry_id, index in zip(entries, entry_ids, indexes):
        posted = e.request.posted or now
        lines = [Line(str(line_ids[(entry_id, l.key)]), str(entry_id), l.key, l.path, l.amount, l.currency, posted,
                      now, l.tx, l.description, l.account.type) for l in e.lines]
        entry = Entry(str(entry_id), ledger.ik, e.request.ik, e.type, e.description, posted, now,
                      e.tags, e.groups, lines)
        results[index] = PostResult(entry, lines, False)


# Whole batches travel as a few arrays: the statement text never changes, so neither
# SQLAlchemy nor psycopg re-compiles it, and the round trips do not grow with the batch.
_INSERT_ENTRIES = sa.text(
    "INSERT INTO entries (ledger_id, ik, ik_version, fingerprint, type, description, posted, "
    "created, parameters, tags, groups) "
    "SELECT :l, u.ik, 1, u.fp, u.type, u.descr, u.posted, :created, CAST(u.params AS jsonb), "
    "CAST(u.tags AS jsonb), CAST(u.groups AS jsonb) FROM unnest("
    "CAST(:iks AS text[]), CAST(:fps AS text[]), CAST(:types AS text[]), CAST(:descs AS text[]), "
    "CAST(:posted AS timestamptz[]), CAST(:params AS text[]), CAST(:tags AS text[]), "
    "CAST(:groups AS text[])) AS u(ik, fp, type, descr, posted, params, tags, groups) "
    "ORDER BY u.ik ON CONFLICT ON CONSTRAINT entries_ledger_ik_key DO NOTHING "
    "RETURNING ik, id")

def _entry_arrays(ledger: Ledger, now: datetime, entries: list[CompiledEntry],
                  versions: list[int]) -> dict:
    return {
        "l": ledger.id, "created": now, "versions": versions,
        "iks": [c.request.ik for c in entries],
        "fps": [c.fingerprint for c in entries],
        "types": [c.type for c in entries],
        "descs": [c.description for c in entries],
        "posted": [c.request.posted or now for c in entries],
        "params": [canonical_json({k: str(v) for k, v in c.request.parameters.items()})
                   for c in entries],
        "tags": [canonical_json(c.tags) for c in entries],
        "groups": [canonical_json(c.groups) for c in entries],
    }


_INSERT_ENTRY_VERSIONS = sa.text(
    "INSERT INTO entries (ledger_id, ik, ik_version, fingerprint, type, description, posted, "
    "created, parameters, tags, groups) "
    "SELECT :l, u.ik, u.version, u.fp, u.type, u.descr, u.posted, :created, "
    "CAST(u.params AS jsonb), CAST(u.tags AS jsonb), CAST(u.groups AS jsonb) FROM unnest("
    "CAST(:iks AS text[]), CAST(:versions AS integer[]), CAST(:fps AS text[]), "
    "CAST(:types AS text[]), CAST(:descs AS text[]), CAST(:posted AS timestamptz[]), "
    "CAST(:params AS text[]), CAST(:tags AS text[]), CAST(:groups AS text[])) "
    "AS u(ik, version, fp, type, descr, posted, params, tags, groups) "
    "ORDER BY u.ik ON CONFLICT ON CONSTRAINT entries_ledger_ik_key DO NOTHING "
    "RETURNING ik, id")

# Lines carry the running own balance of their (account, currency) in (posted, id) order,
# so that a balance at any time is one index probe (ledger/history.py). For strongly
# consistent accounts this statement keeps it exact: the balance rows are locked, so every
# earlier line of these keys has a smaller id than the ids drawn here, and
#   - a new line's total is the total of the last older line at or before its posted time
#     (as it was before this statement) plus the new lines of its key up to itself;
#   - older lines posted after the earliest new line (backdating) gain the new amounts
#     before them: one pass over that suffix of the key, nothing else.
# Lines of eventually consistent accounts are written without a total (NULL); the rollup
# numbers them under the balance row lock it takes anyway, so they never make a hot row.
_INSERT_LINES = sa.text(
    "WITH u AS MATERIALIZED ("
    "  SELECT nextval(pg_get_serial_sequence('lines', 'id')) AS id, u.* FROM unnest("
    "    CAST(:entry_ids AS bigint[]), CAST(:account_ids AS bigint[]), CAST(:keys AS text[]), "
    "    CAST(:amounts AS numeric[]), CAST(:currencies AS text[]), "
    "    CAST(:posted AS timestamptz[]), CAST(:descs AS text[]), CAST(:txs AS text[]), "
    "    CAST(:strong AS boolean[])) "
    "  AS u(entry_id, account_id, key, amount, currency, posted, descr, tx, strong)), "
    "ins AS ("
    "  INSERT INTO lines (id, ledger_id, entry_id, account_id, key, amount, currency, posted, "
    "    created, description, tx_external_id, balance_after) "
    "  SELECT u.id, :l, u.entry_id, u.account_id, u.key, u.amount, u.currency, u.posted, "
    "    :created, u.descr, u.tx, CASE WHEN u.strong THEN coalesce(("
    "      SELECT x.balance_after FROM lines x WHERE x.account_id = u.account_id "
    "      AND x.currency = u.currency AND (x.posted, x.id) < (u.posted, u.id) "
    "      AND x.balance_after IS NOT NULL ORDER BY x.posted DESC, x.id DESC LIMIT 1), 0) "
    "      + sum(u.amount) OVER (PARTITION BY u.account_id, u.currency "
    "                            ORDER BY u.posted, u.id) END "
    "  FROM u RETURNING id, entry_id, key), "
    "later AS ("
    "  UPDATE lines x SET balance_after = x.balance_after + s.add FROM ("
    "    SELECT z.id, sum(z.amount) OVER (PARTITION BY z.account_id, z.currency "
    "                                     ORDER BY z.posted, z.id) AS add, z.old FROM ("
    "      SELECT o.id, o.account_id, o.currency, o.posted, 0::numeric AS amount, true AS old "
    "      FROM (SELECT account_id, currency, min(posted) AS since FROM u WHERE strong "
    "            GROUP BY account_id, currency) k "
    "      JOIN lines o ON o.account_id = k.account_id AND o.currency = k.currency "
    "      AND o.posted > k.since "
    "      UNION ALL "
    "      SELECT id, account_id, currency, posted, amount, false FROM u WHERE strong) z"
    "  ) s WHERE x.id = s.id AND s.old AND x.balance_after IS NOT NULL) "
    "SELECT id, entry_id, key FROM ins")


def apply_compiled(conn: Connection, ledger: Ledger, schema: Schema,
                   entries: list[CompiledEntry], entry_ids: list[int],
                   now: datetime) -> list[PostResult]:
    """Write already compiled entries whose entry rows exist (ids given): lock, check
    conditions, insert lines, move balances. For entries the engine makes itself, such as
    reversals (ledger/history.py); everything else goes through ``post_entries``."""
    results: dict[int, PostResult] = {}
    indexes = list(range(len(entries)))
    _apply(conn, ledger, schema, entries, entry_ids, indexes, len(entries) > 1, now, results)
    return [results[i] for i in indexes]


def _ensure_accounts(conn: Connection, ledger: Ledger, wanted: dict) -> dict[str, int]:
    """Ids of the accounts at these paths, creating template instances on first use."""
    paths = sorted(wanted)
    found = dict(conn.execute(sa.text(
        "SELECT path, id FROM accounts WHERE ledger_id = :l AND path = ANY(:p)"),
        {"l": ledger.id, "p": paths}).all())
    missing = [p for p in paths if p not in found]
    if missing:
        rows = [{"ledger_id": ledger.id, "path": p, "chart_path": wanted[p].path,
                 "type": wanted[p].type, "consistency": wanted[p].own_consistency,
                 "created": datetime.now(timezone.utc)} for p in missing]
        found.update(conn.execute(
            pg_insert(t.accounts).values(rows).on_conflict_do_nothing(constraint="accounts_ledger_path_key")
            .returning(t.accounts.c.path, t.accounts.c.id)).all())
        still = [p for p in missing if p not in found]
        if still:  # created meanwhile by a concurrent transaction that has now committed
            found.update(conn.execute(sa.text(
                "SELECT path, id FROM accounts WHERE ledger_id = :l AND path = ANY(:p)"),
                {"l": ledger.id, "p": still}).all())
    return found


_LOCK_SQL = sa.text(
    "SELECT b.account_id, b.currency, b.own FROM balances b "
    "JOIN unnest(CAST(:ids AS bigint[]), CAST(:curs AS text[])) AS k(account_id, currency) "
    "ON b.account_id = k.account_id AND b.currency = k.currency "
    "ORDER BY b.account_id, b.currency FOR UPDATE OF b")


def _lock_balances(conn: Connection, ledger: Ledger, keys: list[tuple[int, str]]) -> dict:
    """Lock the strongly consistent balance rows an entry changes, in one sorted order so
    that concurrent postings never deadlock, creating the rows that do not exist yet."""
    if not keys:
        return {}
    params = {"ids": [k[0] for k in keys], "curs": [k[1] for k in keys]}
    held = {(r[0], r[1]): int(r[2]) for r in conn.execute(_LOCK_SQL, params)}
    missing = [k for k in keys if k not in held]
    if missing:
        conn.execute(sa.text(
            "INSERT INTO balances (account_id, currency, ledger_id, own) "
            "SELECT k.account_id, k.currency, :l, 0 FROM unnest(CAST(:ids AS bigint[]), "
            "CAST(:curs AS text[])) AS k(account_id, currency) ORDER BY 1, 2 "
            "ON CONFLICT DO NOTHING"),
            {"l": ledger.id, "ids": [k[0] for k in missing], "curs": [k[1] for k in missing]})
        held.update({(r[0], r[1]): int(r[2]) for r in conn.execute(
            _LOCK_SQL, {"ids": [k[0] for k in missing], "curs": [k[1] for k in missing]})})
    return held


def _lock_descendants(conn: Connection, ledger: Ledger, paths: list[str]):
    """Balance rows under accounts whose totalBalance a condition reads."""
    return [(r[0], r[1], r[2], int(r[3])) for r in conn.execute(sa.text(
        "SELECT b.account_id, a.path, b.currency, b.own FROM balances b "
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


def load_entries(conn: Connection, ledger: Ledger, ids: Iterable[int]) -> dict[int, Entry]:
    ids = list(ids)
    rows = conn.execute(sa.select(t.entries).where(t.entries.c.id.in_(ids))).mappings().all()
    line_rows = conn.execute(
        sa.select(t.lines, t.accounts.c.path, t.accounts.c.type.label("account_type"))
        .join(t.accounts, t.accounts.c.id == t.lines.c.account_id)
        .where(t.lines.c.entry_id.in_(ids)).order_by(t.lines.c.id)).mappings().all()
    by_entry: dict[int, list[Line]] = {}
    for r in line_rows:
        by_entry.setdefault(r["entry_id"], []).append(line_from_row(r))
    return {r["id"]: entry_from_row(r, ledger.ik, by_entry.get(r["id"], [])) for r in rows}


def line_from_row(r) -> Line:
    return Line(str(r["id"]), str(r["entry_id"]), r["key"], r["path"], int(r["amount"]),
                r["currency"], r["posted"], r["created"], r["tx_external_id"], r["description"],
                r.get("account_type"))


def entry_from_row(r, ledger_ik: str, lines: list[Line]) -> Entry:
    return Entry(str(r["id"]), ledger_ik, r["ik"], r["type"], r["description"], r["posted"],
                 r["created"], dict(r["tags"]), dict(r["groups"]), lines)


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
        "  ON CONFLICT (account_id, currency) DO UPDATE SET own = balances.own + EXCLUDED.own "
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
        "base AS ("
        "  SELECT f.*, coalesce((SELECT x.balance_after FROM lines x "
        "    WHERE x.account_id = f.account_id AND x.currency = f.currency "
        "    AND (x.posted, x.id) < (f.posted, f.id) AND x.balance_after IS NOT NULL "
        "    ORDER BY x.posted DESC, x.id DESC LIMIT 1), 0) AS total FROM first f), "
        "run AS ("
        "  SELECT x.id, b.total + sum(x.amount) OVER (PARTITION BY x.account_id, x.currency "
        "                                             ORDER BY x.posted, x.id) AS total "
        "  FROM base b JOIN lines x ON x.account_id = b.account_id "
        "  AND x.currency = b.currency AND (x.posted, x.id) >= (b.posted, b.id)) "
        "UPDATE lines x SET balance_after = r.total FROM run r "
        "WHERE x.id = r.id AND x.balance_after IS DISTINCT FROM r.total"),
        {"ids": list(account_ids), "curs": list(currencies)})
