"""The time-travel bound, measured: on a ledger of 200,000 lines a balance at a point in
time reads one line per (account, currency), whatever the size of the ledger.

The ledger is built with bulk SQL in the shape the posting engine writes (entries, lines
with their running totals, balance rows), then checked against a plain sum of the lines,
so the measurement runs on data the engine could have written. The rows each read touches
are counted by re-running its statements under EXPLAIN (ANALYZE, BUFFERS)."""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.service import EntryRequest
from tests.integration.test_history import USD, assert_running_totals_exact, make_ledger

ENTRIES = 100_000  # two lines each
USERS = 50
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def big_ledger(db, unique):
    ledger = make_ledger(db, unique)
    # Through the engine first: accounts, balance rows, and an older line in each account.
    service.add_ledger_entries(db, ledger, [EntryRequest(
        ik=f"open-{u}", type="deposit", posted=T0 - timedelta(days=1),
        parameters={"user": f"u{u}", "amount": "1000"}) for u in range(USERS)])
    with db.transaction() as conn:
        ledger_id = conn.execute(sa.text("SELECT id FROM ledgers WHERE ik = :l"), {"l": ledger}).scalar()
        ids = dict(conn.execute(sa.text("SELECT path, id FROM accounts WHERE ledger_id = :l"),
                                {"l": ledger_id}).all())
        users = [ids[f"liabilities/users:u{u}/available"] for u in range(USERS)]
        # One deposit a minute for ~70 days, to user g % USERS, of g % 97 + 1.
        conn.execute(sa.text(
            "WITH e AS ("
            "  INSERT INTO entries (ledger_id, ik, ik_version, fingerprint, type, posted, created, "
            "    parameters, tags, groups) "
            "  SELECT :l, 'bulk-' || g, 1, 'bulk', 'deposit', :t0 + g * interval '1 minute', now(), "
            "    '{}', '{}', '{}' FROM generate_series(1, :n) g RETURNING id, ik, posted), "
            "u AS MATERIALIZED ("
            "  SELECT nextval(pg_get_serial_sequence('lines', 'id')) AS id, e.id AS entry_id, "
            "    k.account_id, k.key, (substr(e.ik, 6)::int % 97 + 1)::numeric AS amount, e.posted "
            "  FROM e CROSS JOIN LATERAL (VALUES (CAST(:bank AS bigint), 'bank'), "
            "    ((CAST(:users AS bigint[]))[1 + substr(e.ik, 6)::int % :u], 'user')) k(account_id, key)) "
            "INSERT INTO lines (id, ledger_id, entry_id, account_id, key, amount, currency, posted, "
            "  created, balance_after) "
            "SELECT u.id, :l, u.entry_id, u.account_id, u.key, u.amount, 'USD', u.posted, now(), "
            "  b.own + sum(u.amount) OVER (PARTITION BY u.account_id ORDER BY u.posted, u.id) "
            "FROM u JOIN balances b ON b.account_id = u.account_id AND b.currency = 'USD'"),
            {"l": ledger_id, "t0": T0, "n": ENTRIES, "bank": ids["assets/bank"], "users": users,
             "u": USERS})
        conn.execute(sa.text(
            "UPDATE balances b SET own = s.total, lines_until = s.until FROM ("
            "SELECT account_id, sum(amount) AS total, max(posted) AS until "
            "FROM lines WHERE ledger_id = :l GROUP BY account_id) s "
            "WHERE b.account_id = s.account_id AND b.currency = 'USD'"), {"l": ledger_id})
        count = conn.execute(sa.text("SELECT count(*) FROM lines WHERE ledger_id = :l"),
                             {"l": ledger_id}).scalar()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE lines")
        conn.exec_driver_sql("ANALYZE entries")
    assert count >= 200_000
    return ledger


def truth(db, ledger, path_condition: str, at: datetime, **params) -> int:
    """The balance by brute force: the sum of every line up to ``at``."""
    with db.transaction() as conn:
        return int(conn.execute(sa.text(
            "SELECT coalesce(sum(l.amount), 0) FROM lines l JOIN accounts a ON a.id = l.account_id "
            f"JOIN ledgers g ON g.id = a.ledger_id WHERE g.ik = :ledger AND {path_condition} "
            "AND l.posted <= :at"), {"ledger": ledger, "at": at, **params}).scalar())


def measured(db, call):
    """Run ``call`` and return its result, and for the statements it ran that read lines,
    the rows produced by every plan node scanning ``lines`` and the buffers they touched."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))
    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        result = call()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    rows = buffers = 0
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        for statement, parameters in seen:
            if " lines " not in statement:
                continue
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
            plan = cur.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            top = plan[0]["Plan"]
            buffers += top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
            rows += sum(node["Actual Rows"] * node["Actual Loops"]
                        for node in _nodes(top) if node.get("Relation Name") == "lines")
        raw.rollback()
    finally:
        raw.close()
    return result, rows, buffers


def _nodes(node):
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def test_balance_at_a_time_reads_one_line_per_account_on_200k_lines(db, big_ledger):
    ledger = big_ledger
    rnd = random.Random(3)
    moments = [T0 + timedelta(minutes=rnd.randint(0, ENTRIES)) for _ in range(4)]
    moments.append(T0 + timedelta(minutes=ENTRIES + 10))
    for at in moments:
        bank, rows, buffers = measured(db, lambda: service.account_balances(db, ledger, "assets/bank", at=at))
        assert bank.own == {USD: truth(db, ledger, "a.path = 'assets/bank'", at)}
        assert rows <= 1, rows  # one index probe, one line: the last one at or before `at`
        assert buffers < 40, buffers

        user = "liabilities/users:u7/available"
        mine, rows, _ = measured(db, lambda: service.account_balances(db, ledger, user, at=at))
        assert mine.own == {USD: truth(db, ledger, "a.path = :p", at, p=user)}
        assert rows <= 1, rows

        users, rows, buffers = measured(db, lambda: service.account_balances(db, ledger, "liabilities/users", at=at))
        assert users.child == {USD: truth(db, ledger, "a.path LIKE 'liabilities/users:%'", at)}
        assert rows <= USERS, rows  # one line per descendant account
        assert buffers < 40 * USERS, buffers

    change, rows, _ = measured(db, lambda: service.balance_change(db, ledger, "assets/bank", "2024-02"))
    feb = (truth(db, ledger, "a.path = 'assets/bank'", datetime(2024, 3, 1, tzinfo=timezone.utc) - timedelta(microseconds=1))
           - truth(db, ledger, "a.path = 'assets/bank'", datetime(2024, 2, 1, tzinfo=timezone.utc) - timedelta(microseconds=1)))
    assert change.own == {USD: feb} and feb > 0
    assert rows <= 2, rows  # the last line before each end of the month

    # the brute-force read of the same balance, for scale
    _, brute, _ = measured(db, lambda: truth(db, ledger, "a.path = 'assets/bank'", moments[-1]))
    assert brute >= ENTRIES


def test_backdating_into_the_big_ledger_keeps_every_total_exact(db, big_ledger):
    ledger = big_ledger
    middle = T0 + timedelta(minutes=ENTRIES // 2, seconds=30)
    user = "liabilities/users:u7/available"
    before = service.account_balances(db, ledger, user, at=middle + timedelta(days=1)).own[USD]
    service.add_ledger_entry(db, ledger, EntryRequest(
        ik="backdated", type="deposit", posted=middle, parameters={"user": "u7", "amount": "5"}))
    assert service.account_balances(db, ledger, user, at=middle + timedelta(days=1)).own[USD] == before + 5
    assert service.account_balances(db, ledger, user, at=middle - timedelta(seconds=1)).own[USD] == \
        truth(db, ledger, "a.path = :p", middle - timedelta(seconds=1), p=user)
    assert service.account_balances(db, ledger, "assets/bank", at="2030").own == \
        service.account_balances(db, ledger, "assets/bank").own
    assert_running_totals_exact(db, ledger)


def test_a_page_of_lines_reads_one_page_of_lines_on_200k_lines(db, big_ledger):
    """Keyset pages walk an index newest first and stop: a page of 20 reads 21 lines (the
    21st says whether there is a next page), one more for has_previous_page after a cursor,
    for one account, a pattern of 50 accounts, or the whole ledger."""
    for account in ("assets/bank", "liabilities/users:u7/available", "liabilities/users:*/available", None):
        # Lines of the eventual bank account may trail the rollup: each is read once more
        # to work out its running balance; a strong account's stored one is exact.
        extra = 0 if account and account.startswith("liabilities") else 20
        page, rows, _ = measured(db, lambda: service.list_lines(db, big_ledger, account, first=20))
        assert len(page.nodes) == 20 and rows <= 21 + extra, (account, rows)
        assert all(line.running_balance is not None for line in page.nodes)
        following, rows, _ = measured(db, lambda: service.list_lines(
            db, big_ledger, account, first=20, after=page.page_info.end_cursor))
        assert len(following.nodes) == 20 and rows <= 22 + extra, (account, rows)
        older, rows, _ = measured(db, lambda: service.list_lines(db, big_ledger, account, last=20))
        assert len(older.nodes) == 20 and rows <= 21 + extra, (account, rows)
