"""Deadlocks and serialization failures are retried inside the engine, not returned."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.db import Database, Pending, fetch, sqlstate
from ledger.errors import InternalError
from tests.integration.helpers import new_ledger, post, seed000_schema


def test_a_real_deadlock_is_retried_until_both_commit(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger, "deposit", user_id="a", amount="1")
    post(db, ledger, "deposit", user_id="b", amount="1")
    with db.transaction() as conn:
        ids = dict(conn.execute(sa.text(
            "SELECT a.path, a.id FROM accounts a JOIN ledgers l ON l.id = a.ledger_id "
            "WHERE l.ik = :l"), {"l": ledger}).all())
    first = ids["liabilities/users:a/available"]
    second = ids["liabilities/users:b/available"]
    barrier = threading.Barrier(2)
    attempts = {0: 0, 1: 0}
    errors = []

    def locker(who, order):
        def fn(conn):
            attempts[who] += 1
            conn.execute(sa.text("UPDATE balances SET own = own + 1 WHERE account_id = :a"), {"a": order[0]})
            if attempts[who] == 1:
                barrier.wait()  # both hold their first row: the second lock closes a cycle
            conn.execute(sa.text("UPDATE balances SET own = own - 1 WHERE account_id = :a"), {"a": order[1]})
        try:
            db.run(fn)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=locker, args=(0, (first, second))),
               threading.Thread(target=locker, args=(1, (second, first)))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert attempts[0] + attempts[1] == 3  # PostgreSQL broke the cycle once; that side retried
    assert service.account_balances(db, ledger, "liabilities/users:a/available").own == {"USD": 1}


def test_retries_are_bounded_and_end_in_a_retryable_internal_error(db):
    calls = []

    def always_fails(conn):
        calls.append(1)
        conn.execute(sa.text("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001'; END $$"))
    with pytest.raises(InternalError) as info:
        db.run(always_fails, attempts=3)
    assert len(calls) == 3
    assert info.value.retryable and info.value.code == "database_unavailable"


def test_other_database_errors_are_not_retried(db):
    calls = []

    def broken(conn):
        calls.append(1)
        conn.execute(sa.text("SELECT no_such_column FROM ledgers"))
    with pytest.raises(sa.exc.ProgrammingError):
        db.run(broken)
    assert len(calls) == 1


# ------------------------------------------------------------------ writes sent together

def _scratch_table(db, unique) -> str:
    name = unique("pending").replace("-", "_")
    with db.transaction() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (n int PRIMARY KEY, note text)"))
    return name


def _rows(db, table: str) -> list[tuple]:
    with db.transaction() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"SELECT n, note FROM {table} ORDER BY n"))]


def test_pending_writes_go_in_order_in_the_callers_transaction(db, unique):
    table = _scratch_table(db, unique)
    insert = sa.text(f"INSERT INTO {table} (n, note) VALUES (:n, :note)")
    update = sa.text(f"UPDATE {table} SET note = note || :more WHERE n = :n")
    with db.transaction() as conn:
        pending = Pending()
        pending.add(insert, {"n": 1, "note": "a"})
        pending.add(update, {"n": 1, "more": "b"})  # sees the insert before it
        pending.add(insert, {"n": 2, "note": "100%"})
        assert len(pending) == 3
        pending.send(conn)
        assert len(pending) == 0
        # The caller's own statements see them, in the same transaction.
        assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 2
    assert _rows(db, table) == [(1, "ab"), (2, "100%")]

    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            pending = Pending()
            pending.add(insert, {"n": 3, "note": "c"})
            pending.add(insert, {"n": 4, "note": "d"})
            pending.send(conn)
            raise RuntimeError("the caller fails after sending")
    assert _rows(db, table) == [(1, "ab"), (2, "100%")]  # rolled back with the transaction


def test_a_failed_pending_write_is_raised_as_sqlalchemy_raises_it(db, unique):
    table = _scratch_table(db, unique)
    insert = sa.text(f"INSERT INTO {table} (n, note) VALUES (:n, :note)")
    with pytest.raises(sa.exc.IntegrityError) as info:
        with db.transaction() as conn:
            pending = Pending()
            pending.add(insert, {"n": 1, "note": "a"})
            pending.add(insert, {"n": 1, "note": "again"})
            pending.send(conn)
    assert sqlstate(info.value) == "23505"
    assert "again" not in str(info.value)  # parameters stay out of errors (and logs)
    assert _rows(db, table) == []
    # The pool's connection is fine afterwards.
    with db.transaction() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1


def test_pending_writes_on_a_killed_connection_are_retried_once_whole(db, unique):
    table = _scratch_table(db, unique)
    insert = sa.text(f"INSERT INTO {table} (n, note) VALUES (:n, :note)")
    attempts = []

    def fn(conn):
        attempts.append(1)
        pending = Pending()
        pending.add(insert, {"n": 1, "note": "a"})
        pending.add(insert, {"n": 2, "note": "b"})
        if len(attempts) == 1:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            with db.engine.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        pending.send(conn)

    db.run(fn)
    assert len(attempts) == 2
    assert _rows(db, table) == [(1, "a"), (2, "b")]


def test_rows_fetched_on_the_driver_behave_as_through_sqlalchemy(db, database_url, unique):
    table = _scratch_table(db, unique)
    with db.transaction() as conn:
        conn.execute(sa.text(f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b')"))
        rows = fetch(conn, sa.text(f"SELECT n, note FROM {table} WHERE n >= :n ORDER BY n"),
                     {"n": 1})
        assert rows == [(1, "a"), (2, "b")]
        assert fetch(conn, sa.text(f"SELECT n FROM {table} WHERE n > :n"), {"n": 9}) == []
        # A write without RETURNING has no rows to give, and is done.
        assert fetch(conn, sa.text(f"INSERT INTO {table} VALUES (:n, 'c')"), {"n": 3}) == []
        assert fetch(conn, sa.text(f"SELECT count(*) FROM {table}"), {}) == [(3,)]
    with pytest.raises(sa.exc.ProgrammingError) as info:
        with db.transaction() as conn:
            fetch(conn, sa.text("SELECT no_such_column FROM " + table), {})
    assert sqlstate(info.value) == "42703"
    # A statement past the engine's timeout ends as the typed, retryable timeout.
    slow = Database(database_url, statement_timeout_seconds=0.2)
    try:
        with pytest.raises(InternalError) as timeout:
            with slow.transaction() as conn:
                fetch(conn, sa.text("SELECT pg_sleep(:s)"), {"s": 2})
        assert timeout.value.code == "timeout" and timeout.value.retryable
    finally:
        slow.dispose()


def test_cursor_listeners_see_statements_sent_on_the_driver_even_when_they_fail(db, unique):
    table = _scratch_table(db, unique)
    insert = sa.text(f"INSERT INTO {table} (n, note) VALUES (:n, :note)")
    began, ended = [], []

    def before(conn, cursor, statement, parameters, context, executemany):
        began.append((statement, id(context)))

    def after(conn, cursor, statement, parameters, context, executemany):
        ended.append((statement, id(context)))

    sa.event.listen(db.engine, "before_cursor_execute", before)
    sa.event.listen(db.engine, "after_cursor_execute", after)
    try:
        with db.transaction() as conn:
            pending = Pending()
            pending.add(insert, {"n": 1, "note": "a"})
            pending.add(insert, {"n": 2, "note": "b"})
            pending.send(conn)
            assert fetch(conn, sa.text(f"SELECT count(*) FROM {table}"), {}) == [(2,)]
        with pytest.raises(sa.exc.IntegrityError):
            with db.transaction() as conn:
                fetch(conn, insert, {"n": 1, "note": "again"})
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", before)
        sa.event.remove(db.engine, "after_cursor_execute", after)
    sent = [statement for statement, _ in began if table in statement]
    assert len(sent) == 4 and all("%(n)s" in s for s in sent[:2] + sent[3:])
    assert sorted(began) == sorted(ended)  # the failed one's listeners ended it too


def test_writes_sent_on_the_driver_commit_with_a_connection_that_had_not_begun(db, unique):
    table = _scratch_table(db, unique)
    insert = sa.text(f"INSERT INTO {table} (n, note) VALUES (:n, :note) RETURNING n")
    with db.engine.connect() as conn:
        assert fetch(conn, insert, {"n": 1, "note": "a"}) == [(1,)]
        conn.commit()  # SQLAlchemy's autobegin style: this commit must cover it
    assert _rows(db, table) == [(1, "a")]
