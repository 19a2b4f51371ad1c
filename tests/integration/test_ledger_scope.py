"""Which queries filter by ledger (issue 14: a database sharded by ledger, README "A database
that outgrows one server").

A workload that goes through every path of the engine (synchronous and batch posts,
conditions on own and total balances, template and eventually consistent accounts, a
refused entry, a replay, async jobs claimed and marked, the rollup) and the main history
reads runs on a connection that records each statement with the `ledger` function that
issued it. A statement on a ledger table is *scoped* when every reference to such a table is
matched by a ``ledger_id`` predicate (or it inserts rows that carry ``ledger_id``); on a
database distributed by ``ledger_id`` only a scoped statement goes to one shard.

The engine's unscoped statements are listed in ENGINE_UNSCOPED, each with why, and the
README lists them: a new one fails this test until it is scoped or added to both.
"""
from __future__ import annotations

import re
import sys
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.db import Database
from ledger.errors import BadRequestError
from ledger.service import EntryRequest
from tests.integration.conftest import PIPELINE_SCHEMA, user_path

pytestmark = pytest.mark.slow

LEDGER_DIR = Path(service.__file__).resolve().parent
# The tables that would be distributed by ledger_id (README): every row belongs to one
# ledger. external_txs carries a ledger_id only once reconciled: it belongs to a link.
LEDGER_TABLES = ("accounts", "balances", "balance_deltas", "entries", "lines",
                 "entry_changes", "linked_accounts", "posting_jobs")
REFERENCE = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO)\s+(" + "|".join(LEDGER_TABLES) + r")\b",
                       re.IGNORECASE)
PREDICATE = re.compile(r"ledger_id\s*(?:=|\bIN\b)", re.IGNORECASE)
INSERT_WITH_LEDGER = re.compile(r"\bINSERT\s+INTO\s+(?:" + "|".join(LEDGER_TABLES)
                                + r")\s*\([^)]*\bledger_id\b", re.IGNORECASE)
# The engine: posting and the job outbox. Function -> why it does not filter by ledger.
ENGINE_UNSCOPED = {
    "ledger.posting.conditions._lock_balances":
        "locks balance rows by (account_id, currency)",
    "ledger.posting.conditions.find_and_lock":
        "filters accounts by ledger, locks their balance rows by (account_id, currency)",
    "ledger.posting.conditions._lock_descendants":
        "filters accounts by ledger, joins balances by account id",
    "ledger.posting.engine._read_balances": "reads balance rows by (account_id, currency)",
    "ledger.posting.engine._move_balances":
        "updates balance rows by (account_id, currency); recomputes lines_until by account",
    "ledger.posting.engine.post_entries": "releases refused entries' ik claims by entry id",
    # The writes made ready under the balance locks go out together from here
    # (ledger.db.Pending): _move_balances' update, by (account_id, currency).
    "ledger.posting.engine._apply": "sends _move_balances' update of balance rows",
    "ledger.posting.engine.load_entries": "reads replayed entries and their lines by id",
    "ledger.posting.rollup.rollup": "folds the pending deltas of every ledger at once",
    "ledger.posting.rollup.number_lines": "numbers lines by (account_id, currency)",
    "ledger.posting.rollup.running_balances":
        "reads lines by id, then an account's unnumbered lines by (account_id, currency)",
    "ledger.jobs.claims.work_in": "claims a partition's jobs, which span ledgers; marks by id",
    "ledger.jobs.claims.read": "the relay looks for stale partitions across ledgers",
    "ledger.jobs.outbox._jobs_by_id": "a job is read by its id alone (GET /v1/jobs/{id}, waits)",
    "ledger.jobs.outbox.delete": "the prune deletes old jobs of every ledger",
}
ENGINE = ("ledger.posting.", "ledger.jobs.")

SCOPE_SCHEMA = {
    **PIPELINE_SCHEMA,
    "ledgerEntries": {"types": [
        *PIPELINE_SCHEMA["ledgerEntries"]["types"],
        # A totalBalance condition: the descendants' balance rows are locked too.
        {"type": "pay_out",
         "lines": [
             {"key": "bank", "account": {"path": "assets/bank"}, "amount": "-{{amount}}"},
             {"key": "user", "account": {"path": "liabilities/users:{{user}}"},
              "amount": "-{{amount}}"}],
         "conditions": [{"account": {"path": "liabilities/users:{{user}}"},
                         "postcondition": {"totalBalance": {"gte": "0"}}}]},
    ]},
}


def caller() -> str:
    """The innermost function of ledger/ (outside ledger/db.py) on the stack."""
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename).resolve()
        if path.is_relative_to(LEDGER_DIR) and path.name != "db.py":
            module = ".".join(("ledger", *path.relative_to(LEDGER_DIR).with_suffix("").parts))
            return f"{module}.{frame.f_code.co_name}"
        frame = frame.f_back
    return "?"


def scope(statement: str) -> str | None:
    """None for a statement on no ledger table; else 'scoped', 'partly' (some references
    filtered, others joined by id) or 'unscoped'."""
    references = len(REFERENCE.findall(statement))
    if not references:
        return None
    scoped = len(PREDICATE.findall(statement)) + len(INSERT_WITH_LEDGER.findall(statement))
    if scoped >= references:
        return "scoped"
    return "partly" if scoped else "unscoped"


def workload(db: Database, ledger: str) -> None:
    deposit = EntryRequest(ik="d1", type="deposit", parameters={"user": "a", "amount": "500"})
    service.add_ledger_entry(db, ledger, deposit)
    service.add_ledger_entry(db, ledger, deposit)  # a replay
    with pytest.raises(BadRequestError, match="condition"):
        service.add_ledger_entry(db, ledger, EntryRequest(
            ik="w1", type="withdraw", parameters={"user": "a", "amount": "900"}))
    service.add_ledger_entries(db, ledger, [
        EntryRequest(ik=f"b{i}", type="deposit", parameters={"user": u, "amount": "10"})
        for i, u in enumerate("abcab")])
    service.add_ledger_entry(db, ledger, EntryRequest(
        ik="p1", type="pay_out", parameters={"user": "a", "amount": "5"}))
    # Jobs, one of them refused by its condition when posted (its ik claim is released).
    service.submit_entries(db, ledger, [
        {"ik": f"j{i}", "type": "deposit", "parameters": {"user": u, "amount": "3"}}
        for i, u in enumerate("abcd")] + [
        {"ik": "j-refused", "type": "withdraw", "parameters": {"user": "d", "amount": "99"}}],
        partitions=16)
    for partition in range(16):
        service.work_partition(db, partition)
    while service.rollup(db):
        pass
    service.account_balances(db, ledger, user_path("a"))
    service.account_balances(db, ledger, "liabilities/users:a", at="2999")
    service.list_lines(db, ledger, user_path("a"), first=5)
    entry = service.list_ledger_entries(db, ledger, first=5).nodes[0]
    service.get_ledger_entry(db, id=entry.id, ledger_ik=ledger)
    service.update_ledger_entry(db, entry.id, tags={"seen": "yes"}, ledger_ik=ledger)
    service.ledger_entry_changes(db, entry.id)
    service.reverse_ledger_entry(db, id=entry.id, ledger_ik=ledger)
    [job] = service.list_jobs(db, ledger, first=1).jobs
    service.get_job(db, job.id)
    service.stale_partitions(db, timedelta(seconds=0))


def test_which_queries_filter_by_ledger(db, database_url, unique):
    key = unique("scope")
    service.store_schema(db, {**SCOPE_SCHEMA, "key": key})
    ledger = unique("ledger")
    service.create_ledger(db, ledger, "Scope", key)

    recording = Database(database_url)
    seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))

    def record(conn, cursor, statement, parameters, context, executemany):
        kind = scope(statement)
        if kind is not None:
            seen[kind][caller()].add(" ".join(statement.split())[:160])

    sa.event.listen(recording.engine, "before_cursor_execute", record)
    try:
        workload(recording, ledger)
        service.prune_finished(recording, timedelta(seconds=0))
    finally:
        sa.event.remove(recording.engine, "before_cursor_execute", record)
        recording.dispose()

    report = "\n".join(f"{kind:8} {fn}\n         {sorted(statements)[0]}"
                       for kind in ("unscoped", "partly")
                       for fn, statements in sorted(seen[kind].items()))
    print(f"\nstatements on ledger tables not filtered by ledger:\n{report}")
    assert seen["scoped"], "the workload ran no scoped statement: the recorder is broken"
    engine_unscoped = {fn for kind in ("unscoped", "partly") for fn in seen[kind]
                       if fn.startswith(ENGINE)}
    new = engine_unscoped - set(ENGINE_UNSCOPED)
    assert not new, (f"engine functions whose queries do not filter by ledger: {sorted(new)}"
                     " - filter them by ledger_id, or add them to ENGINE_UNSCOPED and the "
                     "README's list (\"A database that outgrows one server\") with the reason")
    stale = set(ENGINE_UNSCOPED) - engine_unscoped
    if stale:
        print(f"listed as unscoped but not seen (now scoped? drop them here and in the "
              f"README): {sorted(stale)}")
