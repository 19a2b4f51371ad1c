"""Ledger history on the real PostgreSQL: balances in time, periods and offsets, reversals,
ik versions, entry and line queries, tag and group updates, group balances."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.errors import BadRequestError, NotFoundError
from ledger.service import EntryRequest

USD = "USD"
ALICE = "liabilities/users:alice/available"
BOB = "liabilities/users:bob/available"


def history_schema(key: str, bank: str = "strong") -> dict:
    user = "liabilities/users:{{user}}/available"
    return {
        "key": key,
        "chartOfAccounts": {
            "assets": {"bank": {"consistencyConfig": {"ownBalanceUpdates": bank}}},
            "liabilities": {"users": {"template": True, "available": {}, "pending": {}}},
            "income": {"fees": {}},
        },
        "ledgerEntries": {"types": [
            {"type": "deposit", "description": "{{user}} deposits {{amount}}",
             "lines": [{"key": "bank", "account": {"path": "assets/bank"}, "amount": "{{amount}}"},
                       {"key": "user", "account": {"path": user}, "amount": "{{amount}}"}]},
            {"type": "transfer",
             "lines": [{"key": "from", "account": {"path": "liabilities/users:{{from}}/available"},
                        "amount": "-{{amount}}"},
                       {"key": "to", "account": {"path": "liabilities/users:{{to}}/available"},
                        "amount": "{{amount}}"}],
             "conditions": [{"account": {"path": "liabilities/users:{{from}}/available"},
                             "postcondition": {"ownBalance": {"gte": "0"}}}]},
            {"type": "withdraw_start",
             "lines": [{"key": "available", "account": {"path": user}, "amount": "-{{amount}}"},
                       {"key": "pending", "account": {"path": "liabilities/users:{{user}}/pending"},
                        "amount": "{{amount}}"}],
             "conditions": [{"account": {"path": user},
                             "postcondition": {"ownBalance": {"gte": "0"}}}],
             "groups": [{"key": "withdrawal", "value": "{{withdrawal_id}}"}]},
            {"type": "withdraw_settle",
             "lines": [{"key": "pending", "account": {"path": "liabilities/users:{{user}}/pending"},
                        "amount": "-{{amount}}"},
                       {"key": "bank", "account": {"path": "assets/bank"}, "amount": "-{{amount}}"}],
             "groups": [{"key": "withdrawal", "value": "{{withdrawal_id}}"}]},
        ]},
    }


def make_ledger(db, unique, offset="+00:00", bank="strong") -> str:
    key = service.store_schema(db, history_schema(unique("history"), bank)).key
    ik = unique("ledger")
    service.create_ledger(db, ik, "History", key, balance_utc_offset=offset)
    return ik


def day(n: int, hour: int = 12) -> datetime:
    return datetime(2025, 3, n, hour, tzinfo=timezone.utc)


def post(db, ledger, type_, posted=None, ik=None, tags=None, **parameters):
    return service.add_ledger_entry(db, ledger, EntryRequest(
        ik=ik or secrets.token_hex(8), type=type_, posted=posted, tags=tags or {},
        parameters={k: str(v) for k, v in parameters.items()}))


def own_at(db, ledger, path, at):
    return service.account_balances(db, ledger, path, at=at).own.get(USD, 0)


def assert_running_totals_exact(db, ledger_ik):
    """Every line's stored running total equals the sum of its account's lines up to it."""
    with db.transaction() as conn:
        wrong = conn.execute(sa.text(
            "SELECT count(*) FROM (SELECT l.balance_after, sum(l.amount) OVER ("
            "  PARTITION BY l.account_id, l.currency ORDER BY l.posted, l.id) AS total "
            "  FROM lines l JOIN ledgers g ON g.id = l.ledger_id WHERE g.ik = :l) q "
            "WHERE balance_after IS DISTINCT FROM total"), {"l": ledger_ik}).scalar()
    assert wrong == 0


# ------------------------------------------------------------------ balances in time

def test_backdating_end_of_day_balances_and_period_changes(db, unique):
    ledger = make_ledger(db, unique)
    for n in (1, 3, 5):
        post(db, ledger, "deposit", posted=day(n), user="alice", amount=n * 100)
    # the end of day 2 before and after the backdated entry
    assert own_at(db, ledger, ALICE, "2025-03-02") == 100
    post(db, ledger, "deposit", posted=day(2), user="alice", amount=200)

    ends = {n: own_at(db, ledger, ALICE, f"2025-03-0{n}") for n in range(1, 6)}
    assert ends == {1: 100, 2: 300, 3: 600, 4: 600, 5: 1100}
    assert own_at(db, ledger, "assets/bank", "2025-03-04") == 600
    assert own_at(db, ledger, ALICE, "2025-02") == 0
    assert own_at(db, ledger, ALICE, day(2)) == 300  # a moment counts the line posted at it
    assert own_at(db, ledger, ALICE, day(2) - timedelta(microseconds=1)) == 100
    assert own_at(db, ledger, ALICE, "2025-03-02T11:59:59Z") == 100

    changes = {n: service.balance_change(db, ledger, ALICE, f"2025-03-0{n}").own[USD]
               for n in range(1, 6)}
    assert changes == {1: 100, 2: 200, 3: 300, 4: 0, 5: 500}
    for period in ("2025", "2025-Q1", "2025-03"):
        assert service.balance_change(db, ledger, ALICE, period).own == {USD: 1100}
    assert service.balance_change(db, ledger, ALICE, "2025-Q2").own == {USD: 0}
    assert service.balance_change(db, ledger, ALICE, "2025-03-02T12").own == {USD: 200}
    assert service.balance_change(db, ledger, ALICE, "2025-03-02T11").own == {USD: 0}

    # child and total balances of parents, template nodes included, in time
    user = service.account_balances(db, ledger, "liabilities/users:alice", at="2025-03-03")
    assert (user.own, user.child, user.total) == ({USD: 0}, {USD: 600}, {USD: 600})
    users = service.balance_change(db, ledger, "liabilities/users", "2025-03-02")
    assert users.child == {USD: 200} and users.total == {USD: 200}
    liabilities = service.account_balances(db, ledger, "liabilities", at="2025-03-05")
    assert liabilities.total == {USD: 1100}

    # a future-dated entry changes only balances at or after it
    post(db, ledger, "deposit", posted=datetime(2030, 1, 1, tzinfo=timezone.utc), user="alice", amount=7)
    assert own_at(db, ledger, ALICE, "2029") == 1100
    assert own_at(db, ledger, ALICE, "2030-01-01") == 1107
    assert service.account_balances(db, ledger, ALICE).own == {USD: 1107}  # latest: all lines
    assert_running_totals_exact(db, ledger)


def test_backdating_inside_one_batch_and_between_its_lines(db, unique):
    ledger = make_ledger(db, unique)
    post(db, ledger, "deposit", posted=day(4), user="alice", amount=1000)
    service.add_ledger_entries(db, ledger, [
        EntryRequest(ik=f"b{n}", type="deposit", posted=day(n), parameters={"user": "alice", "amount": str(n)})
        for n in (6, 1, 3, 5)] + [
        EntryRequest(ik="t", type="transfer", posted=day(2), parameters={"from": "alice", "to": "bob", "amount": "1"})])
    assert [own_at(db, ledger, ALICE, f"2025-03-0{n}") for n in range(1, 7)] == [
        1, 0, 3, 1003, 1008, 1014]
    assert own_at(db, ledger, BOB, "2025-03-02") == 1
    assert_running_totals_exact(db, ledger)


def test_offsets_read_the_same_entries_as_different_days(db, unique):
    east, west = make_ledger(db, unique, "+05:00"), make_ledger(db, unique, "-08:00")
    evening = datetime(2025, 3, 1, 20, tzinfo=timezone.utc)  # east: 2 Mar 01:00, west: 1 Mar 12:00
    morning = datetime(2025, 3, 2, 6, tzinfo=timezone.utc)  # east: 2 Mar 11:00, west: 1 Mar 22:00
    for ledger in (east, west):
        post(db, ledger, "deposit", posted=evening, user="alice", amount=10)
        post(db, ledger, "deposit", posted=morning, user="alice", amount=5)

    def day_changes(ledger):
        return [service.balance_change(db, ledger, ALICE, p).own[USD]
                for p in ("2025-03-01", "2025-03-02")]
    assert day_changes(east) == [0, 15]
    assert day_changes(west) == [15, 0]
    assert own_at(db, east, ALICE, "2025-03-01") == 0
    assert own_at(db, west, ALICE, "2025-03-01") == 15
    # hours are local too: 01:00 in the east, 12:00 in the west
    assert service.balance_change(db, east, ALICE, "2025-03-02T01").own == {USD: 10}
    assert service.balance_change(db, west, ALICE, "2025-03-01T12").own == {USD: 10}
    change = service.balance_change(db, east, ALICE, "2025-03-02")
    assert change.start == datetime(2025, 3, 1, 19, tzinfo=timezone.utc)
    assert change.end == datetime(2025, 3, 2, 19, tzinfo=timezone.utc)
    # and filters by period follow the offset as well
    west_first = service.list_ledger_entries(db, west, {"posted": "2025-03-01"})
    east_first = service.list_ledger_entries(db, east, {"posted": "2025-03-01"})
    assert len(west_first.nodes) == 2 and east_first.nodes == []


@pytest.mark.parametrize("period", ["2025-13", "2025-02-30", "2025-Q5", "25", "2025-02-03T24",
                                    "2025-02-03T4", "yesterday", "", "0000"])
def test_bad_periods_name_the_field(db, unique, period):
    ledger = make_ledger(db, unique)
    with pytest.raises(BadRequestError) as info:
        service.balance_change(db, ledger, ALICE, period)
    assert info.value.code == "invalid_input" and info.value.field == "period"
    with pytest.raises(BadRequestError) as info:
        service.account_balances(db, ledger, ALICE, at=period or "not a time")
    assert info.value.code == "invalid_input" and info.value.field == "at"


def test_eventual_account_history_is_numbered_by_the_rollup(db, unique):
    ledger = make_ledger(db, unique, bank="eventual")
    for n in (5, 1, 3):
        post(db, ledger, "deposit", posted=day(n), user=f"u{n}", amount=n)
    assert own_at(db, ledger, "assets/bank", "2025-03-05") == 0  # not rolled up yet
    service.rollup(db)
    assert [own_at(db, ledger, "assets/bank", f"2025-03-0{n}") for n in range(1, 6)] == [1, 1, 4, 4, 9]
    post(db, ledger, "deposit", posted=day(2), user="late", amount=100)
    service.rollup(db)
    assert [own_at(db, ledger, "assets/bank", f"2025-03-0{n}") for n in range(1, 6)] == [1, 101, 104, 104, 109]
    assert_running_totals_exact(db, ledger)


# ------------------------------------------------------------------ reversals

def test_reversal_restores_balances_at_every_time(db, unique):
    ledger = make_ledger(db, unique)
    post(db, ledger, "deposit", posted=day(1), user="alice", amount=100)
    transfer = post(db, ledger, "transfer", ik="t-1", posted=day(2), **{"from": "alice", "to": "bob", "amount": 30})
    post(db, ledger, "deposit", posted=day(3), user="bob", amount=5)
    before = {n: (own_at(db, ledger, ALICE, f"2025-03-0{n}"), own_at(db, ledger, BOB, f"2025-03-0{n}"))
              for n in (1, 2, 3)}
    assert before == {1: (100, 0), 2: (70, 30), 3: (70, 35)}

    result = service.reverse_ledger_entry(db, id=transfer.entry.id)
    assert not result.is_ik_replay
    reversed_, reversing = result.reversed_entry, result.reversing_entry
    assert reversed_.reversed_by_id == reversing.id and reversing.reverses_id == reversed_.id
    assert reversed_.hidden and reversing.hidden and reversed_.reversed_at is not None
    assert reversing.posted == reversed_.posted == day(2)
    assert sorted((l.account_path, l.amount) for l in reversing.lines) == [(ALICE, 30), (BOB, -30)]
    after = {n: (own_at(db, ledger, ALICE, f"2025-03-0{n}"), own_at(db, ledger, BOB, f"2025-03-0{n}"))
             for n in (1, 2, 3)}
    assert after == {1: (100, 0), 2: (100, 0), 3: (100, 5)}
    assert service.balance_change(db, ledger, BOB, "2025-03-02").own == {USD: 0}

    # reversing again is a replay, not a second reversal
    again = service.reverse_ledger_entry(db, ledger_ik=ledger, ik="t-1")
    assert again.is_ik_replay and again.reversing_entry.id == reversing.id
    assert service.account_balances(db, ledger, ALICE).own == {USD: 100}

    # both are immutable
    for entry_id in (reversed_.id, reversing.id):
        with pytest.raises(BadRequestError) as info:
            service.update_ledger_entry(db, entry_id, tags={"note": "x"})
        assert info.value.code == "entry_reversed"
    with pytest.raises(BadRequestError) as info:
        service.reverse_ledger_entry(db, id=reversing.id)
    assert info.value.code == "entry_reversed"

    # hidden from lists unless asked for
    visible = service.list_ledger_entries(db, ledger)
    assert transfer.entry.id not in {e.id for e in visible.nodes} and len(visible.nodes) == 2
    pair = service.list_ledger_entries(db, ledger, {"reversed": True})
    assert {e.id for e in pair.nodes} == {reversed_.id, reversing.id}
    assert len(service.list_ledger_entries(db, ledger, {"reversed": None}).nodes) == 4
    assert len(service.list_lines(db, ledger, ALICE).nodes) == 1
    assert len(service.list_lines(db, ledger, ALICE, {"reversed": None}).nodes) == 3
    assert_running_totals_exact(db, ledger)


def test_reposting_after_a_reversal_keeps_the_versions(db, unique):
    ledger = make_ledger(db, unique)
    post(db, ledger, "deposit", posted=day(1), user="alice", amount=100)
    first = post(db, ledger, "transfer", ik="pay", posted=day(2), **{"from": "alice", "to": "bob", "amount": 30})
    with pytest.raises(BadRequestError) as info:  # a live ik still refuses another request
        post(db, ledger, "transfer", ik="pay", posted=day(2), **{"from": "alice", "to": "bob", "amount": 25})
    assert info.value.code == "ik_conflict"
    service.reverse_ledger_entry(db, id=first.entry.id)
    second = post(db, ledger, "transfer", ik="pay", posted=day(2), **{"from": "alice", "to": "bob", "amount": 25})
    assert not second.is_ik_replay and second.entry.id != first.entry.id
    replay = post(db, ledger, "transfer", ik="pay", posted=day(2), **{"from": "alice", "to": "bob", "amount": 25})
    assert replay.is_ik_replay and replay.entry.id == second.entry.id
    versions = service.ik_versions(db, ledger, "pay")
    assert [(v.ik_version, v.id, v.reversed_by_id is not None) for v in versions] == [
        (1, first.entry.id, True), (2, second.entry.id, False)]
    assert service.get_ledger_entry(db, ledger_ik=ledger, ik="pay").id == second.entry.id
    assert service.get_ledger_entry(db, ledger_ik=ledger, ik="pay", version=1).id == first.entry.id
    assert own_at(db, ledger, BOB, "2025-03-02") == 25
    with pytest.raises(NotFoundError):
        service.ik_versions(db, ledger, "never-used")


def test_reversal_that_would_overdraw_is_refused_and_changes_nothing(db, unique):
    ledger = make_ledger(db, unique)
    deposit = post(db, ledger, "deposit", posted=day(1), user="alice", amount=100)
    post(db, ledger, "transfer", posted=day(2), **{"from": "alice", "to": "bob", "amount": 80})

    def snapshot():
        with db.transaction() as conn:
            counts = conn.execute(sa.text(
                "SELECT (SELECT count(*) FROM entries), (SELECT count(*) FROM lines), "
                "(SELECT count(*) FROM balance_deltas)")).one()
        return (tuple(counts), service.account_balances(db, ledger, ALICE).own,
                service.account_balances(db, ledger, "assets/bank").own,
                own_at(db, ledger, ALICE, "2025-03-01"))
    before = snapshot()
    with pytest.raises(BadRequestError) as info:
        service.reverse_ledger_entry(db, id=deposit.entry.id)
    assert info.value.code == "condition_failed"
    assert ALICE in info.value.message and "-80" in info.value.message
    assert snapshot() == before
    entry = service.get_ledger_entry(db, id=deposit.entry.id)
    assert entry.reversed_by_id is None and not entry.hidden
    # once bob sends the money back, the deposit can be reversed
    post(db, ledger, "transfer", posted=day(3), **{"from": "bob", "to": "alice", "amount": 80})
    assert not service.reverse_ledger_entry(db, id=deposit.entry.id).is_ik_replay
    assert service.account_balances(db, ledger, ALICE).own == {USD: 0}


def test_reversal_of_an_eventual_account_line_goes_through_the_rollup(db, unique):
    ledger = make_ledger(db, unique, bank="eventual")
    deposit = post(db, ledger, "deposit", posted=day(1), user="alice", amount=40)
    service.rollup(db)
    service.reverse_ledger_entry(db, id=deposit.entry.id)
    service.rollup(db)
    assert service.account_balances(db, ledger, "assets/bank").own == {USD: 0}
    assert own_at(db, ledger, "assets/bank", "2025-03-01") == 0
    assert_running_totals_exact(db, ledger)


def test_unknown_entries(db, unique):
    ledger = make_ledger(db, unique)
    other = make_ledger(db, unique)
    entry = post(db, other, "deposit", user="a", amount=1)
    for bad in ("999999999", "abc", "-1"):
        with pytest.raises(NotFoundError) as info:
            service.reverse_ledger_entry(db, id=bad)
        assert info.value.code == "entry_not_found"
    with pytest.raises(NotFoundError):  # the entry is in another ledger
        service.reverse_ledger_entry(db, id=entry.entry.id, ledger_ik=ledger)
    with pytest.raises(NotFoundError):
        service.get_ledger_entry(db, id=entry.entry.id, ledger_ik=ledger)


# ------------------------------------------------------------------ queries

def test_entry_and_line_filters(db, unique):
    ledger = make_ledger(db, unique)
    d1 = post(db, ledger, "deposit", posted=day(1), user="alice", amount=100, tags={"channel": "ach"})
    d2 = post(db, ledger, "deposit", posted=day(2), user="bob", amount=50, tags={"channel": "card"})
    t3 = post(db, ledger, "transfer", posted=day(3), **{"from": "alice", "to": "bob", "amount": 10})
    w4 = post(db, ledger, "withdraw_start", posted=day(4), user="bob", amount=20, withdrawal_id="w1")

    def ids(page):
        return [n.id for n in page.nodes]
    assert ids(service.list_ledger_entries(db, ledger)) == [w4.entry.id, t3.entry.id, d2.entry.id, d1.entry.id]
    assert ids(service.list_ledger_entries(db, ledger, {"type": "deposit"})) == [d2.entry.id, d1.entry.id]
    assert ids(service.list_ledger_entries(db, ledger, {"type": ["transfer", "withdraw_start"]})) == [w4.entry.id, t3.entry.id]
    assert ids(service.list_ledger_entries(db, ledger, {"tags": [{"key": "channel", "value": "ach"}]})) == [d1.entry.id]
    assert ids(service.list_ledger_entries(db, ledger, {"groups": {"withdrawal": "w1"}})) == [w4.entry.id]
    assert ids(service.list_ledger_entries(db, ledger, {"posted": {"start": "2025-03-02T00:00:00Z", "end": "2025-03-04T00:00:00Z"}})) == [t3.entry.id, d2.entry.id]
    assert ids(service.list_ledger_entries(db, ledger, {"posted": "2025-03-03"})) == [t3.entry.id]
    created = service.get_ledger_entry(db, id=t3.entry.id).created
    assert ids(service.list_ledger_entries(db, ledger, {"created": {"start": created}})) == [w4.entry.id, t3.entry.id]
    assert ids(service.list_ledger_entries(db, ledger, {"currency": {"code": "EUR"}})) == []
    assert ids(service.list_ledger_entries(db, ledger, account=BOB)) == [w4.entry.id, t3.entry.id, d2.entry.id]
    assert ids(service.list_ledger_entries(db, ledger, account="assets/*")) == [d2.entry.id, d1.entry.id]
    assert len(service.list_ledger_entries(db, ledger, {"currency": "USD"}).nodes) == 4

    def lines(account=None, filters=None):
        return [(l.account_path, l.amount) for l in service.list_lines(db, ledger, account, filters).nodes]
    assert lines(BOB) == [(BOB, -20), (BOB, 10), (BOB, 50)]
    assert lines("liabilities/users:*/available") == [(BOB, -20), (BOB, 10), (ALICE, -10), (BOB, 50), (ALICE, 100)]
    assert lines("liabilities/users:bob/*") == [("liabilities/users:bob/pending", 20), (BOB, -20), (BOB, 10), (BOB, 50)]
    assert lines("liabilities/*", {"type": "deposit"}) == [(BOB, 50), (ALICE, 100)]
    assert len(lines()) == 8
    assert lines(None, {"tags": {"channel": "card"}}) == [(BOB, 50), ("assets/bank", 50)]
    assert lines("liabilities/users:carol/available") == []


@pytest.mark.parametrize("call,field", [
    (lambda db, l: service.list_lines(db, l, first=201), "first"),
    (lambda db, l: service.list_lines(db, l, first=-1), "first"),
    (lambda db, l: service.list_lines(db, l, last=True), "last"),
    (lambda db, l: service.list_lines(db, l, first=2, last=2), "last"),
    (lambda db, l: service.list_lines(db, l, after="bm90LWEtY3Vyc29y"), "after"),
    (lambda db, l: service.list_lines(db, l, before="%%%"), "before"),
    (lambda db, l: service.list_ledger_entries(db, l, {"posted": "2025-02-30"}), "filter.posted"),
    (lambda db, l: service.list_ledger_entries(db, l, {"posted": {"start": "soon"}}), "filter.posted.start"),
    (lambda db, l: service.list_ledger_entries(db, l, {"colour": "red"}), "filter.colour"),
    (lambda db, l: service.list_ledger_entries(db, l, {"reversed": "no"}), "filter.reversed"),
    (lambda db, l: service.list_ledger_entries(db, l, {"type": []}), "filter.type"),
    (lambda db, l: service.list_lines(db, l, "liabilities//*"), "account"),
])
def test_bad_queries_name_the_field(db, unique, call, field):
    ledger = make_ledger(db, unique)
    post(db, ledger, "deposit", user="a", amount=1)
    with pytest.raises(BadRequestError) as info:
        call(db, ledger)
    assert info.value.field == field, info.value


def test_reads_of_an_account_the_chart_lacks_are_not_found(db, unique):
    """A read asks for something missing (seed 002: NotFoundError); a malformed path stays
    a bad request."""
    ledger = make_ledger(db, unique)
    post(db, ledger, "deposit", user="a", amount=1)
    for call in (lambda: service.list_lines(db, ledger, "nowhere/at-all"),
                 lambda: service.list_ledger_entries(db, ledger, account="nowhere/at-all"),
                 lambda: service.account_balances(db, ledger, "nowhere/at-all"),
                 lambda: service.account_balances(db, ledger, "nowhere/at-all", at="2025"),
                 lambda: service.balance_change(db, ledger, "nowhere/at-all", "2025")):
        with pytest.raises(NotFoundError) as info:
            call()
        assert info.value.code == "account_not_found" and "nowhere" in info.value.message
    with pytest.raises(BadRequestError) as info:
        service.account_balances(db, ledger, "liabilities/users/available")
    assert info.value.code == "invalid_input"


def test_a_cursor_of_entries_is_refused_by_lines(db, unique):
    ledger = make_ledger(db, unique)
    post(db, ledger, "deposit", user="a", amount=1)
    post(db, ledger, "deposit", user="a", amount=2)
    page = service.list_ledger_entries(db, ledger, first=1)
    assert page.page_info.has_next_page and not page.page_info.has_previous_page
    with pytest.raises(BadRequestError) as info:
        service.list_lines(db, ledger, after=page.page_info.end_cursor)
    assert info.value.field == "after"
    following = service.list_ledger_entries(db, ledger, first=1, after=page.page_info.end_cursor)
    assert not following.page_info.has_next_page and following.page_info.has_previous_page


# ------------------------------------------------------------------ updates and groups

def test_update_tags_and_groups_records_the_change(db, unique):
    ledger = make_ledger(db, unique)
    entry = post(db, ledger, "deposit", user="alice", amount=5, tags={"channel": "ach", "batch": "7"}).entry
    result = service.update_ledger_entry(db, entry.id, tags={"channel": "wire", "batch": None, "note": "fixed"},
                                         groups=[{"key": "payout", "value": "p1"}])
    assert result.entry.tags == {"channel": "wire", "note": "fixed"}
    assert result.entry.groups == {"payout": "p1"}
    change = result.change
    assert change.tags_before == {"batch": "7", "channel": "ach"} and change.tags_after == result.entry.tags
    assert change.groups_before == {} and change.groups_after == {"payout": "p1"}
    same = service.update_ledger_entry(db, entry.id, tags={"channel": "wire"})
    assert same.change is None
    assert [c.id for c in service.ledger_entry_changes(db, entry.id)] == [change.id]
    assert service.get_ledger_entry(db, id=entry.id).tags == {"channel": "wire", "note": "fixed"}
    group = service.entry_group(db, ledger, "payout", "p1")
    assert [(b.account_path, b.amount) for b in group.balances] == [("assets/bank", 5), (ALICE, 5)]
    with pytest.raises(BadRequestError) as info:
        service.update_ledger_entry(db, entry.id, tags={"": "x"})
    assert info.value.field == "tags"
    with pytest.raises(BadRequestError) as info:
        service.update_ledger_entry(db, entry.id, groups={"g": 1.5})
    assert info.value.field == "groups.g"


def test_group_balances_and_entries(db, unique):
    ledger = make_ledger(db, unique)
    post(db, ledger, "deposit", posted=day(1), user="alice", amount=100)
    start = post(db, ledger, "withdraw_start", posted=day(2), user="alice", amount=60, withdrawal_id="w1")
    settle = post(db, ledger, "withdraw_settle", posted=day(3), user="alice", amount=60, withdrawal_id="w1")
    post(db, ledger, "withdraw_start", posted=day(3), user="alice", amount=15, withdrawal_id="w2")

    group = service.entry_group(db, ledger, "withdrawal", "w1")
    assert [(b.account_path, b.currency, b.amount) for b in group.balances] == [
        ("assets/bank", USD, -60), (ALICE, USD, -60), ("liabilities/users:alice/pending", USD, 0)]
    entries = service.list_group_entries(db, ledger, "withdrawal", "w1")
    assert [e.id for e in entries.nodes] == [settle.entry.id, start.entry.id]
    only_start = service.entry_group(db, ledger, "withdrawal", "w1", {"posted": "2025-03-02"})
    assert [(b.account_path, b.amount) for b in only_start.balances] == [
        (ALICE, -60), ("liabilities/users:alice/pending", 60)]
    # a reversed settlement leaves the group, and its reversal nets it out when asked for
    service.reverse_ledger_entry(db, id=settle.entry.id)
    pending = "liabilities/users:alice/pending"
    assert {b.account_path: b.amount for b in service.entry_group(db, ledger, "withdrawal", "w1").balances} == {
        ALICE: -60, pending: 60}
    everything = service.entry_group(db, ledger, "withdrawal", "w1", {"reversed": None})
    assert {b.account_path: b.amount for b in everything.balances} == {
        "assets/bank": 0, ALICE: -60, pending: 60}
    assert len(service.list_group_entries(db, ledger, "withdrawal", "w1", {"reversed": None}).nodes) == 3
    assert service.entry_group(db, ledger, "withdrawal", "nope").balances == []


def test_a_refused_reversal_inside_a_longer_transaction_leaves_nothing(db, unique):
    from ledger.history import reversals
    ledger_ik = make_ledger(db, unique)
    deposit = post(db, ledger_ik, "deposit", posted=day(1), user="alice", amount=10)
    post(db, ledger_ik, "transfer", posted=day(2), **{"from": "alice", "to": "bob", "amount": 10})
    with db.transaction() as conn:
        ledger = service.load_ledger(conn, ledger_ik)
        with pytest.raises(BadRequestError):
            reversals.reverse_entry(conn, ledger, deposit.entry.id)
        count = conn.execute(sa.text("SELECT count(*) FROM entries WHERE ledger_id = :l"),
                             {"l": ledger.id}).scalar()
    assert count == 2
    assert service.get_ledger_entry(db, id=deposit.entry.id).reversed_by_id is None
