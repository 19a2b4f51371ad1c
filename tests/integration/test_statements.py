"""Posting is built for batches: the number of statements does not grow with the batch."""
from __future__ import annotations

import sqlalchemy as sa

from ledger import service
from ledger.service import EntryRequest
from tests.integration.helpers import new_ledger, seed000_schema


def statements_for(db, ledger, n, prefix):
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)
    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        results = service.add_ledger_entries(db, ledger, [EntryRequest(
            ik=f"{prefix}-{i}", type="deposit", parameters={"user_id": f"{prefix}{i}", "amount": "5"})
            for i in range(n)])
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    assert len(results) == n
    return seen


def test_batch_of_1000_takes_as_many_statements_as_a_batch_of_10(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    statements_for(db, ledger, 1, "warm")  # the schema is parsed once per process
    small = statements_for(db, ledger, 10, "a")
    big = statements_for(db, ledger, 1000, "b")  # 1,000 new users: accounts created too
    assert len(big) == len(small) <= 15, big
    # and once the accounts exist, fewer still
    warm = statements_for(db, ledger, 1000, "b2")
    assert len(warm) <= len(big)
