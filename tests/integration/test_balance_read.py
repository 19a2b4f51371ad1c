"""The latest balance of an account read in one statement outside a transaction
(``Database.autocommit`` and ``history.balances.latest_balances``): what it sends, that it
follows schema versions it has not seen, that it fails as the long way fails, and that the
connection goes back to the pool in transactions again."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.db import Database
from ledger.errors import BadRequestError, NotFoundError
from ledger.service import EntryRequest
from tests.integration.test_history import ALICE, history_schema


@pytest.fixture
def statements(db):
    """(first word, transaction status after it) of each statement the engine sends while
    the fixture is used: IDLE after a statement means it ran in no open transaction, so no
    BEGIN went before it and no COMMIT needs to follow."""
    seen: list[tuple[str, str]] = []

    def after(conn, cursor, statement, *args):
        status = conn.connection.driver_connection.info.transaction_status
        seen.append((statement.split()[0].upper(), status.name))

    sa.event.listen(db.engine, "after_cursor_execute", after)
    yield seen
    sa.event.remove(db.engine, "after_cursor_execute", after)


def wallet(db, unique) -> tuple[str, str]:
    key = service.store_schema(db, history_schema(unique("read"))).key
    ik = unique("ledger")
    service.create_ledger(db, ik, "Read", key)
    service.add_ledger_entry(db, ik, EntryRequest(ik=unique("e"), type="deposit",
                                                  parameters={"user": "alice", "amount": 70}))
    return ik, key


def test_a_second_read_is_one_statement_and_no_transaction(db, unique, statements):
    ik, _ = wallet(db, unique)
    first = service.account_balances(db, ik, ALICE)
    statements.clear()
    again = service.account_balances(db, ik, ALICE)
    assert again == first and again.own == {"USD": 70}
    assert statements == [("SELECT", "IDLE")]
    parent = service.account_balances(db, ik, "liabilities/users")
    assert parent.own == {"USD": 0} and parent.child == {"USD": 70}
    unknown_user = service.account_balances(db, ik, "liabilities/users:nobody/available")
    assert unknown_user.own == {"USD": 0} and unknown_user.total == {"USD": 0}


def test_reads_follow_a_schema_version_this_process_has_not_read(db, unique):
    ik, key = wallet(db, unique)
    assert service.account_balances(db, ik, ALICE).own == {"USD": 70}
    # A new version adds an account: the version this process remembers lacks it.
    schema = history_schema(key)
    schema["chartOfAccounts"]["income"]["interest"] = {}
    schema["ledgerEntries"]["types"].append({"type": "interest", "lines": [
        {"key": "in", "account": {"path": "income/interest"}, "amount": "{{amount}}"},
        {"key": "bank", "account": {"path": "assets/bank"}, "amount": "{{amount}}"}]})
    assert service.store_schema(db, schema).version == 2
    service.add_ledger_entry(db, ik, EntryRequest(ik=unique("e"), type="interest",
                                                  parameters={"amount": 5}))
    assert service.account_balances(db, ik, "income/interest").own == {"USD": 5}
    assert service.account_balances(db, ik, "assets/bank").own == {"USD": 75}


def test_bad_reads_fail_as_before_and_leave_the_pool_in_transactions(db, unique, database_url):
    ik, _ = wallet(db, unique)
    service.account_balances(db, ik, ALICE)
    with pytest.raises(NotFoundError) as missing:
        service.account_balances(db, unique("nope"), ALICE)
    assert missing.value.code == "ledger_not_found"
    with pytest.raises(NotFoundError) as unknown:
        service.account_balances(db, ik, "assets/nowhere")
    assert (unknown.value.code, unknown.value.field) == ("account_not_found", "path")
    with pytest.raises(BadRequestError) as bad:
        service.account_balances(db, ik, 42)
    assert bad.value.field == "path"
    # One connection in the pool: the one the reads used must write atomically again.
    one = Database(database_url, pool_size=1, max_overflow=0)
    try:
        service.account_balances(one, ik, ALICE)
        with one.engine.connect() as conn:
            assert conn.connection.driver_connection.autocommit is False
        with pytest.raises(RuntimeError):
            with one.transaction() as conn:
                conn.execute(sa.text("UPDATE ledgers SET name = 'changed' WHERE ik = :ik"),
                             {"ik": ik})
                raise RuntimeError("rolled back")
        assert service.get_ledger(one, ik).name == "Read"
    finally:
        one.dispose()


def test_a_connection_broken_during_a_read_is_dropped_and_the_next_read_works(
        db, unique, database_url):
    ik, _ = wallet(db, unique)
    one = Database(database_url, pool_size=1, max_overflow=0)
    try:
        service.account_balances(one, ik, ALICE)
        with one.engine.connect() as conn:
            pid = conn.connection.driver_connection.info.backend_pid
        with db.engine.connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with pytest.raises(sa.exc.DBAPIError):
            service.account_balances(one, ik, ALICE)
        assert service.account_balances(one, ik, ALICE).own == {"USD": 70}
    finally:
        one.dispose()
