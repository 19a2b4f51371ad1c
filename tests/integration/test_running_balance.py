"""A line's running balance (``Line.running_balance``, GraphQL ``runningBalance``): the own
balance of its account in its currency right after it, in (posted, id) order, whatever the
order lines arrived in: backdated, reversed, posted concurrently, or waiting for the rollup
of an eventually consistent account."""
from __future__ import annotations

import random
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import service
from ledger.errors import BadRequestError
from ledger.service import EntryRequest, GroupCommitter
from tests.integration.test_history import ALICE, day, make_ledger, post

USERS = ("alice", "bob", "carol")


def all_lines(db, ledger: str) -> list:
    lines, after = [], None
    while True:
        page = service.list_lines(db, ledger, None, {"reversed": None}, first=200, after=after)
        lines += page.nodes
        if not page.page_info.has_next_page:
            return lines
        after = page.page_info.end_cursor


def assert_running_balances(db, ledger: str) -> int:
    """Every line's running balance is the sum of its account's lines up to it; returns
    how many lines were checked."""
    lines = all_lines(db, ledger)
    running: dict[tuple[str, str], int] = {}
    for line in sorted(lines, key=lambda x: (x.posted, int(x.id))):
        key = (line.account_path, line.currency)
        running[key] = running.get(key, 0) + line.amount
        assert line.running_balance == running[key], (line, running[key])
    for (path, currency), total in running.items():
        if path != "assets/bank":  # eventual: its balance row waits for the rollup
            assert service.account_balances(db, ledger, path).own.get(currency, 0) == total
    return len(lines)


def random_ops(rng: random.Random, entries: int = 200) -> list[tuple]:
    """``entries`` deposits and transfers, one in five posted now (after every line so far)
    and the others at random hours of a month (most land before lines already posted),
    with a reversal or a rollup after about one in five."""
    ops: list[tuple] = []
    for _ in range(entries):
        hour = rng.randrange(30 * 24) if rng.random() < 0.8 else None
        if rng.random() < 0.5:
            ops.append(("deposit", rng.choice(USERS), rng.randint(1, 10_000), hour))
        else:
            ops.append(("transfer", *rng.sample(USERS, 2), rng.randint(1, 5_000), hour))
        if rng.random() < 0.2:
            ops.append(rng.choice([("reverse", rng.randrange(10_000)), ("rollup",)]))
    return ops


def _at(hour: int | None):
    return None if hour is None else day(1) + timedelta(hours=hour)


def _apply(db, ledger: str, op: tuple, posted: list[str], committer=None) -> None:
    """One operation; refusals (a transfer overdrawing, a reversal crossing a condition)
    write nothing and are part of the game."""
    def add(type_: str, hour: int | None, **parameters) -> None:
        r = service.add_ledger_entry(db, ledger, EntryRequest(
            ik=secrets.token_hex(8), type=type_, posted=_at(hour),
            parameters={k: str(v) for k, v in parameters.items()}), committer)
        posted.append(r.entry.id)

    try:
        if op[0] == "deposit":
            add("deposit", op[3], user=op[1], amount=op[2])
        elif op[0] == "transfer":
            add("transfer", op[4], **{"from": op[1], "to": op[2], "amount": op[3]})
        elif op[0] == "reverse" and posted:
            service.reverse_ledger_entry(db, id=posted[op[1] % len(posted)])
        elif op[0] == "rollup":
            service.rollup(db)
    except BadRequestError:
        pass


@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_running_balance_is_the_sum_up_to_the_line_under_backdating_reversal_concurrency(
        db, unique, seed):
    ops = random_ops(random.Random(seed))
    # The bank is eventually consistent: its lines wait for the rollup, and their running
    # balance must be exact before it runs as well as after.
    ledger = make_ledger(db, unique, bank="eventual")
    posted: list[str] = []
    # Four threads at once, each taking every fourth operation: the posting order differs
    # from the (posted, id) order and from one run to the next. Two of them post through
    # a group committer, so batches of several entries share one transaction.
    committer = GroupCommitter(db, window_ms=2)

    def run(part: list[tuple], group: bool) -> None:
        for op in part:
            _apply(db, ledger, op, posted, committer if group else None)

    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(run, ops[i::4], i < 2) for i in range(4)]:
            f.result()
    assert assert_running_balances(db, ledger) >= 200
    service.rollup(db)
    assert_running_balances(db, ledger)


def test_a_backdated_line_shows_the_balance_as_of_its_time_and_moves_the_later_ones(db, unique):
    ledger = make_ledger(db, unique)
    first = post(db, ledger, "deposit", posted=day(1), user="alice", amount=100)
    third = post(db, ledger, "deposit", posted=day(3), user="alice", amount=300)
    assert [line.running_balance for line in third.lines] == [400, 400]
    second = post(db, ledger, "deposit", posted=day(2), user="alice", amount=20)
    # A backdated line's total is not free at posting: it is read back, as of its time.
    assert [line.running_balance for line in second.lines] == [None, None]
    assert set(service.line_running_balances(db, [x.id for x in second.lines]).values()) == {120}
    page = service.list_lines(db, ledger, ALICE)
    assert [(line.amount, line.running_balance) for line in page.nodes] == [
        (300, 420), (20, 120), (100, 100)]
    reversal = service.reverse_ledger_entry(db, id=second.entry.id)
    assert {line.running_balance for line in reversal.reversing_entry.lines} == {100}
    page = service.list_lines(db, ledger, ALICE, {"reversed": None})
    assert [line.running_balance for line in page.nodes] == [400, 100, 120, 100]
    entry = service.get_ledger_entry(db, id=first.entry.id)
    assert [line.running_balance for line in entry.lines] == [100, 100]


def test_eventual_lines_have_a_running_balance_before_the_rollup(db, unique):
    ledger = make_ledger(db, unique, bank="eventual")
    seen = []
    for n in (1, 3, 2):
        result = service.add_ledger_entry(db, ledger, EntryRequest(
            ik=secrets.token_hex(8), type="deposit", posted=day(n),
            parameters={"user": "alice", "amount": str(n)}))
        bank = next(x for x in result.lines if x.account_path == "assets/bank")
        seen.append(service.line_running_balances(db, [bank.id])[bank.id])
    assert seen == [1, 4, 3]
    assert service.line_running_balances(db, ["0", "x", "99999999999"]) == {}
    page = service.list_lines(db, ledger, "assets/bank")
    assert [x.running_balance for x in page.nodes] == [6, 3, 1]
    service.rollup(db)
    page = service.list_lines(db, ledger, "assets/bank")
    assert [x.running_balance for x in page.nodes] == [6, 3, 1]
