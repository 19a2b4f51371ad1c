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
from typing import Any, Iterable, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import fastjson
from ledger import tables as t
from ledger.errors import BadRequestError, LedgerError, NotFoundError
from ledger.model import Entry, EntryRequest, Ledger, Line, Posted, PostResult
from ledger.schema import (CompiledEntry, CompiledLine, Schema, canonical_json, check_condition,
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
        # The wire form the lines came in before they were typed (LineInput.to_json), so
        # stored fingerprints still match.
        "lines": [line.to_json() for line in request.lines] if request.lines is not None else None,
    }
    # Stored fingerprints hash canonical_json's text. fastjson.canonical writes the same
    # text faster for everything but floats (tests/unit/test_fastjson.py); a float can hide
    # only in tags and groups handed to EntryRequest directly, bypassing build. Those keep
    # the standard library.
    plain = all(type(v) is str for kv in (request.tags, request.groups) for v in kv.values())
    text = fastjson.canonical(body) if plain else canonical_json(body)
    return hashlib.sha256(text.encode()).hexdigest()


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
                 txs=None, *, refusals: str = "raise", detail: bool = True) -> list:
    """Post entries atomically in the caller's transaction; replays return the original.

    ``refusals="raise"`` (the sync API): the first entry the engine refuses raises its
    LedgerError (with ``.index``) and the caller's transaction must be rolled back.
    ``refusals="report"`` (the async workers): a refused entry is returned in its place as
    its LedgerError and leaves no trace, while the others post in the same statements, so
    one bad job never costs its batch a rollback.

    ``detail=False`` answers each posted or replayed entry with a ``Posted`` (its id and
    whether it was a replay) instead of a ``PostResult``, for callers that record only the
    reference: neither the entries' objects are built nor replayed entries read back."""
    if not requests:
        return []
    report = refusals == "report"
    schema = load_schema(conn, ledger.id)
    refused: dict[int, LedgerError] = {}
    if report:
        compiled_by: dict[int, CompiledEntry] = {}
        seen: set[str] = set()
        for i, req in enumerate(requests):
            try:
                if req.ik in seen:
                    raise BadRequestError("invalid_input", f"ik {req.ik!r} appears twice in the batch", field="ik")
                seen.add(req.ik)
                entry = compile_entry(schema, req, txs)
                entry.fingerprint = fingerprint(req)
                compiled_by[i] = entry
            except LedgerError as exc:
                exc.index = i
                refused[i] = exc
    else:
        # txs: the locked external txs reconcile_tx resolved (see schema.compile_entry).
        compiled_by = dict(enumerate(compile_all(schema, requests, txs)))
    batch = len(requests) > 1
    now = datetime.now(timezone.utc)

    # 1. Claim the iks. Sorted, so two batches sharing iks wait on each other in one order.
    order = sorted(compiled_by, key=lambda i: compiled_by[i].request.ik)
    inserted = dict(conn.execute(_INSERT_ENTRIES, _entry_rows(
        ledger, now, [compiled_by[i] for i in order], [1] * len(order))).all()) if order else {}
    replays: dict[int, int] = {}
    waiting = [i for i in compiled_by if compiled_by[i].request.ik not in inserted]
    while waiting:
        existing = {}
        for row in conn.execute(sa.text(
                "SELECT DISTINCT ON (ik) ik, id, fingerprint, ik_version, reversed_by_id "
                "FROM entries WHERE ledger_id = :l AND ik = ANY(:iks) ORDER BY ik, ik_version DESC"),
                {"l": ledger.id, "iks": [compiled_by[i].request.ik for i in waiting]}):
            existing[row.ik] = row
        reposts: list[tuple[int, int]] = []
        for i in waiting:
            c = compiled_by[i]
            row = existing[c.request.ik]
            if row.reversed_by_id is not None:
                # The ik's latest entry was reversed: posting under it again is a correction,
                # kept as the ik's next version beside the history.
                reposts.append((i, row.ik_version + 1))
                continue
            if row.fingerprint != c.fingerprint:
                exc = _located(BadRequestError(
                    "ik_conflict",
                    f"ik {c.request.ik!r} was already used for a different request in this ledger; "
                    "use a new ik for a new entry", field="ik"), i, batch and not report)
                if not report:
                    raise exc
                refused[i] = exc
                continue
            replays[i] = row.id
        if not reposts:
            break
        got = dict(conn.execute(_INSERT_ENTRIES, _entry_rows(
            ledger, now, [compiled_by[i] for i, _ in reposts], [v for _, v in reposts])).all())
        inserted.update(got)
        # Another transaction reposted the same ik first: look again at what it left.
        waiting = [i for i, _ in reposts if compiled_by[i].request.ik not in got]
    fresh = [i for i in sorted(compiled_by) if i not in replays and i not in refused]

    results: dict[int, Any] = dict(refused)
    if fresh:
        _apply(conn, ledger, schema, [compiled_by[i] for i in fresh],
               [inserted[compiled_by[i].request.ik] for i in fresh], fresh, batch, now, results,
               report=report, detail=detail)
        gone = [inserted[compiled_by[i].request.ik] for i in fresh
                if isinstance(results[i], LedgerError)]
        if gone:  # refused under the lock: release their ik claims
            conn.execute(sa.text("DELETE FROM entries WHERE id = ANY(:ids)"), {"ids": gone})
    if replays and not detail:
        results.update((i, Posted(str(entry_id), True)) for i, entry_id in replays.items())
    elif replays:
        loaded = load_entries(conn, ledger, list(replays.values()))
        for i, entry_id in replays.items():
            entry = loaded[entry_id]
            results[i] = PostResult(entry, entry.lines, True)
    return [results[i] for i in range(len(requests))]


def _apply(conn: Connection, ledger: Ledger, schema: Schema, entries: list[CompiledEntry],
           entry_ids: list[int], indexes: list[int], batch: bool, now: datetime,
           results: dict, *, report: bool = False, detail: bool = True) -> None:
    account_ids = _ensure_accounts(conn, ledger, {
        line.path: line.account for e in entries for line in e.lines})
    strong = sorted({(account_ids[l.path], l.currency) for e in entries for l in e.lines
                     if l.account.own_consistency == "strong"})
    balances, lines_until = _lock_balances(conn, ledger, strong)
    before = dict(balances)
    total_paths = sorted({c.path for e in entries for c in e.conditions if c.balance == "total"})
    paths_by_id: dict[int, str] = {v: k for k, v in account_ids.items()}
    if total_paths:
        for account_id, path, currency, own in _lock_descendants(conn, ledger, total_paths):
            balances.setdefault((account_id, currency), own)
            paths_by_id[account_id] = path

    deltas: dict[tuple[int, str], int] = {}
    eventual: dict[tuple[int, str], int] = {}
    accepted: list[tuple[CompiledEntry, int, int]] = []
    for entry, entry_id, index in zip(entries, entry_ids, indexes):
        moves = [((account_ids[l.path], l.currency), l.amount,
                  l.account.own_consistency == "strong") for l in entry.lines]
        try:
            _check_conditions(entry, "pre", balances, account_ids, paths_by_id)
            for key, amount, is_strong in moves:
                if is_strong:
                    balances[key] += amount
            _check_conditions(entry, "post", balances, account_ids, paths_by_id)
        except LedgerError as exc:
            for key, amount, is_strong in moves:
                if is_strong:
                    balances[key] -= amount
            if not report:
                raise _located(exc, index, batch) from None
            exc.index = index
            results[index] = exc
            continue
        for key, amount, is_strong in moves:
            target = deltas if is_strong else eventual
            target[key] = target.get(key, 0) + amount
        accepted.append((entry, entry_id, index))
    if not accepted:
        return

    flat = [_NewLine(entry_id, l, (account_ids[l.path], l.currency), e.request.posted or now)
            for e, entry_id, _ in accepted for l in e.lines]
    # Lines posted "now" (most) send no time of their own: the statement's :created is it.
    iso = {now: None}
    # Ids drawn up front, in order: the running totals below follow (posted, id) order.
    ids = sorted(conn.execute(_NEXT_LINE_IDS, {"n": len(flat)}).scalars().all())
    totals, slow, until = _running_totals(flat, ids, before, lines_until)
    conn.execute(_INSERT_LINES, {"l": ledger.id, "created": now, "rows": fastjson.dumps([{
        "i": line_id, "e": f.entry_id, "a": f.balance[0], "k": f.line.key, "m": f.line.amount,
        "c": f.line.currency,
        "p": iso[f.posted] if f.posted in iso else iso.setdefault(f.posted, f.posted.isoformat()),
        "d": f.line.description, "x": f.line.tx, "t": total}
        for f, line_id, total in zip(flat, ids, totals)])})
    if slow:
        number_lines(conn, [k[0] for k in slow], [k[1] for k in slow])
    touched = sorted(until)
    conn.execute(sa.text(
        "UPDATE balances b SET own = b.own + d.delta, lines_until = CASE "
        "  WHEN b.lines_until IS NULL THEN (SELECT max(x.posted) FROM lines x "
        "    WHERE x.account_id = b.account_id AND x.currency = b.currency) "
        "  ELSE greatest(b.lines_until, d.until) END "
        "FROM json_to_recordset(CAST(:rows AS json)) "
        "AS d(account_id bigint, currency text, delta numeric, until timestamptz) "
        "WHERE b.account_id = d.account_id AND b.currency = d.currency"),
        {"rows": fastjson.dumps([{"account_id": k[0], "currency": k[1], "delta": deltas.get(k, 0),
                              "until": until[k].isoformat()} for k in touched])}) if touched else None
    pending = [k for k, v in eventual.items() if v]
    if pending:
        conn.execute(sa.text(
            "INSERT INTO balance_deltas (ledger_id, account_id, currency, amount) "
            "SELECT :l, d.account_id, d.currency, d.amount FROM json_to_recordset("
            "CAST(:rows AS json)) AS d(account_id bigint, currency text, amount numeric)"),
            {"l": ledger.id, "rows": fastjson.dumps([
                {"account_id": k[0], "currency": k[1], "amount": eventual[k]} for k in pending])})

    if not detail:
        for _, entry_id, index in accepted:
            results[index] = Posted(str(entry_id), False)
        return
    # ``flat`` lists the accepted entries' lines in order, and ``ids`` is aligned with it.
    line_ids = iter(ids)
    for e, entry_id, index in accepted:
        posted = e.request.posted or now
        eid = str(entry_id)
        lines = [Line(str(next(line_ids)), eid, l.key, l.path, l.amount, l.currency, posted,
                      now, l.tx, l.description, l.account.type) for l in e.lines]
        entry = Entry(eid, ledger.ik, e.request.ik, e.type, e.description, posted, now,
                      e.tags, e.groups, lines)
        results[index] = PostResult(entry, lines, False)


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


# Whole batches travel as one JSON document each, unpacked by json_to_recordset: the
# statement text never changes (nothing to re-compile), the round trips do not grow with
# the batch, and encoding is one C-speed call (ledger.fastjson) instead of a Python loop per
# value. json, not jsonb: PostgreSQL then reads each row's fields straight from the text
# instead of first building a binary document of the whole batch, and the big documents
# use one-letter keys; both cut the server's time for the lines insert by a quarter.
_INSERT_ENTRIES = sa.text(
    "INSERT INTO entries (ledger_id, ik, ik_version, fingerprint, type, description, posted, "
    "created, parameters, tags, groups) "
    "SELECT :l, u.k, u.v, u.f, u.t, u.d, coalesce(u.p, :created), :created, u.a, u.g, u.r "
    "FROM json_to_recordset(CAST(:rows AS json)) AS u(k text, v integer, f text, t text, "
    "d text, p timestamptz, a jsonb, g jsonb, r jsonb) "
    "ORDER BY u.k ON CONFLICT ON CONSTRAINT entries_ledger_ik_key DO NOTHING "
    "RETURNING ik, id")


def _entry_rows(ledger: Ledger, now: datetime, entries: list[CompiledEntry],
                versions: list[int]) -> dict:
    return {"l": ledger.id, "created": now, "rows": fastjson.dumps([{
        "k": c.request.ik, "v": v, "f": c.fingerprint, "t": c.type, "d": c.description,
        "p": c.request.posted.isoformat() if c.request.posted else None,
        "a": {k: str(x) for k, x in c.request.parameters.items()},
        "g": c.tags, "r": c.groups} for c, v in zip(entries, versions)])}


# Lines carry the running own balance of their (account, currency) in (posted, id) order
# (``balance_after``), so that a balance at any time is one index probe (ledger/history.py).
# Strongly consistent accounts get it here, computed under the balance row lock (see
# ``_running_totals``); lines of eventually consistent accounts are written without one and
# the rollup numbers them under the balance row lock it takes anyway, so no hot row forms.
# The sequence by name, a constant: looking it up with pg_get_serial_sequence() in the
# statement ran that catalog lookup once per id, and the statement took four times as long.
# (lines.id is an identity column since 0001_core; PostgreSQL names its sequence so.)
_NEXT_LINE_IDS = sa.text("SELECT nextval('lines_id_seq') FROM generate_series(1, :n)")

_INSERT_LINES = sa.text(
    "INSERT INTO lines (id, ledger_id, entry_id, account_id, key, amount, currency, posted, "
    "  created, description, tx_external_id, balance_after) "
    "SELECT u.i, :l, u.e, u.a, u.k, u.m, u.c, coalesce(u.p, :created), :created, u.d, u.x, "
    "  u.t FROM json_to_recordset(CAST(:rows AS json)) "
    "AS u(i bigint, e bigint, a bigint, k text, m numeric, c text, p timestamptz, d text, "
    "x text, t numeric)")


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


_FIND_ACCOUNTS = sa.text(
    "SELECT a.path, a.id FROM accounts a "
    "JOIN json_array_elements_text(CAST(:p AS json)) AS q(path) ON a.path = q.path "
    "WHERE a.ledger_id = :l")


def _keys(keys: list[tuple[int, str]]) -> dict:
    return {"keys": fastjson.dumps([{"a": k[0], "c": k[1]} for k in keys])}


def _ensure_accounts(conn: Connection, ledger: Ledger, wanted: dict) -> dict[str, int]:
    """Ids of the accounts at these paths, creating template instances on first use."""
    paths = sorted(wanted)
    found = dict(conn.execute(_FIND_ACCOUNTS, {"l": ledger.id, "p": fastjson.dumps(paths)}).all())
    missing = [p for p in paths if p not in found]
    if missing:
        found.update(conn.execute(sa.text(
            "INSERT INTO accounts (ledger_id, path, chart_path, type, consistency, created) "
            "SELECT :l, u.path, u.chart_path, u.type, u.consistency, :created "
            "FROM json_to_recordset(CAST(:rows AS json)) "
            "AS u(path text, chart_path text, type text, consistency text) "
            "ON CONFLICT ON CONSTRAINT accounts_ledger_path_key DO NOTHING RETURNING path, id"),
            {"l": ledger.id, "created": datetime.now(timezone.utc), "rows": fastjson.dumps([
                {"path": p, "chart_path": wanted[p].path, "type": wanted[p].type,
                 "consistency": wanted[p].own_consistency} for p in missing])}).all())
        still = [p for p in missing if p not in found]
        if still:  # created meanwhile by a concurrent transaction that has now committed
            found.update(conn.execute(_FIND_ACCOUNTS, {"l": ledger.id, "p": fastjson.dumps(still)}).all())
    return found


_LOCK_SQL = sa.text(
    "SELECT b.account_id, b.currency, b.own, b.lines_until FROM balances b "
    "JOIN json_to_recordset(CAST(:keys AS json)) AS k(a bigint, c text) "
    "ON b.account_id = k.a AND b.currency = k.c "
    "ORDER BY b.account_id, b.currency FOR UPDATE OF b")


def _lock_balances(conn: Connection, ledger: Ledger, keys: list[tuple[int, str]]):
    """Lock the strongly consistent balance rows an entry changes, in one sorted order so
    that concurrent postings never deadlock, creating the rows that do not exist yet.
    Returns their balances and their ``lines_until`` (every line of the key is posted at or
    before it; None when unknown)."""
    if not keys:
        return {}, {}
    rows = conn.execute(_LOCK_SQL, _keys(keys)).all()
    held = {(r[0], r[1]) for r in rows}
    missing = [k for k in keys if k not in held]
    if missing:
        # A new row has no lines yet, so every line to come is posted after its bound.
        conn.execute(sa.text(
            "INSERT INTO balances (account_id, currency, ledger_id, own, lines_until) "
            "SELECT k.a, k.c, :l, 0, TIMESTAMPTZ '0001-01-01 00:00:00+00' "
            "FROM json_to_recordset(CAST(:keys AS json)) AS k(a bigint, c text) "
            "ORDER BY 1, 2 ON CONFLICT DO NOTHING"), {"l": ledger.id, **_keys(missing)})
        rows += conn.execute(_LOCK_SQL, _keys(missing)).all()
    return ({(r[0], r[1]): int(r[2]) for r in rows}, {(r[0], r[1]): r[3] for r in rows})


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
