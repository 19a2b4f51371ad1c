"""Group commit of synchronous posts (issue 11), against the real PostgreSQL: concurrent
posts share transactions, and every caller's answer is what posting them one by one, in the
order the committer took them, answers."""
from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import service
from ledger.errors import InternalError, LedgerError, NotFoundError
from ledger.posting.engine import post_entries
from ledger.service import EntryRequest, GroupCommitter
from tests.integration.helpers import new_ledger, own, seed000_schema
from tests.integration.test_races import race

USER = "liabilities/users:{}/available"


def deposit(ik, user, amount):
    return EntryRequest(ik=ik, type="deposit", parameters={"user_id": user, "amount": str(amount)})


def transfer(ik, sender, recipient, amount):
    return EntryRequest(ik=ik, type="transfer", parameters={
        "from_id": sender, "to_id": recipient, "amount": str(amount)})


class Recorder:
    """The committer's hooks: the order batches were taken in, and an optional pause in
    the first batches' transactions so that the posts racing them queue up behind."""

    def __init__(self, pause: float = 0.0, pauses: int = 3):
        self.order: list[EntryRequest] = []
        self.pause, self.pauses = pause, pauses
        self.lock = threading.Lock()

    def on_batch(self, ledger_ik, requests):
        with self.lock:
            self.order.extend(requests)

    def before_commit(self, conn, ledger_ik, requests):
        if self.pauses > 0:
            self.pauses -= 1
            time.sleep(self.pause)


def committer_with(db, recorder: Recorder, **kw) -> GroupCommitter:
    return GroupCommitter(db, on_batch=recorder.on_batch, before_commit=recorder.before_commit,
                          **kw)


def answer(outcome):
    """What a caller can tell apart: posted or replayed (with the lines), or the error."""
    if isinstance(outcome, LedgerError):
        return ("error", outcome.typename, outcome.code, outcome.message, outcome.field,
                outcome.index)
    if isinstance(outcome, Exception):
        return ("exception", repr(outcome))
    return ("replay" if outcome.is_ik_replay else "posted", outcome.entry.ik, outcome.entry.type,
            [(line.key, line.account_path, line.amount) for line in outcome.lines])


def one_by_one(db, ledger_ik, requests):
    out = []
    for request in requests:
        try:
            out.append(service.add_ledger_entry(db, ledger_ik, request))
        except LedgerError as exc:
            out.append(exc)
    return out


def mixed_requests(n: int) -> list[EntryRequest]:
    """Deposits, transfers from a sender that can afford only some of them, replays of one
    ik, ik conflicts, and an ik whose first request is refused (so the ik stays free for a
    different one): each thread gets its own request object."""
    out = []
    for i in range(n):
        kind = i % 8
        if kind in (0, 1):
            out.append(deposit(f"dep-{i}", f"u{i % 7}", 5 + i % 3))
        elif kind in (2, 3):
            out.append(transfer(f"tr-{i}", "hot", f"u{i % 7}", 10))
        elif kind == 4:
            out.append(deposit("replayed", "r", 3))
        elif kind == 5:
            out.append(deposit("conflict", "c", 1 + (i // 8) % 4))
        elif kind == 6:
            out.append(transfer(f"tr-{i}", f"u{i % 7}", "hot", 4))
        else:
            # Refused (the sender has nothing) or, once refused, a deposit under the same ik.
            out.append(transfer(f"free-{i % 3}", "nobody", "x", 1) if (i // 8) % 2
                       else deposit(f"free-{i % 3}", "y", 2))
    return out


def fund(db, ledger_ik, **amounts):
    for user, amount in amounts.items():
        service.add_ledger_entry(db, ledger_ik, deposit(f"seed-{user}", user, amount))


def assert_same_as_one_by_one(db, unique, ledger_ik, requests, outcomes, order, users):
    """Replaying ``order`` one by one on a fresh ledger answers every caller the same and
    leaves the same balances; both books audit clean; refused iks left nothing behind."""
    assert sorted(map(id, order)) == sorted(map(id, requests)), "every request in one batch"
    fresh = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, fresh, hot=100)
    expected = dict(zip(map(id, order), one_by_one(db, fresh, order)))
    for request, outcome in zip(requests, outcomes):
        assert answer(outcome) == answer(expected[id(request)]), request
    for user in users:
        assert own(db, ledger_ik, USER.format(user)) == own(db, fresh, USER.format(user)), user
    assert service.audit(db, ledger_ik) == [] and service.audit(db, fresh) == []
    posted = {o.entry.ik: o.entry.id for o in outcomes if not isinstance(o, Exception)}
    for o in outcomes:  # replays name the entry the first post made
        if not isinstance(o, Exception):
            assert posted[o.entry.ik] == o.entry.id
    with db.transaction() as conn:
        rows = conn.execute(sa.text(
            "SELECT e.ik, count(*) AS n, (SELECT count(*) FROM lines x WHERE x.entry_id = "
            "min(e.id)) AS lines FROM entries e JOIN ledgers l ON l.id = e.ledger_id "
            "WHERE l.ik = :l AND e.ik NOT LIKE 'seed-%' GROUP BY e.ik"), {"l": ledger_ik}).all()
    assert {r.ik for r in rows} == set(posted), "an entry without a posted answer, or the reverse"
    assert all(r.n == 1 and r.lines == 2 for r in rows)
    refused = {r.ik for r, o in zip(requests, outcomes) if isinstance(o, Exception)} - set(posted)
    for ik in refused:
        with pytest.raises(NotFoundError):
            service.get_ledger_entry(db, ledger_ik=ledger_ik, ik=ik)


def race_through(committer, ledger_ik, requests):
    return race(len(requests), lambda i: committer.post(ledger_ik, requests[i]))


USERS = ["hot", "r", "c", "x", "y", "nobody", *[f"u{i}" for i in range(7)]]


def test_two_hundred_concurrent_posts_answer_as_one_by_one(db, unique):
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, ledger_ik, hot=100)
    recorder = Recorder(pause=0.05)
    committer = committer_with(db, recorder)
    requests = mixed_requests(200)
    outcomes = race_through(committer, ledger_ik, requests)

    assert committer.stats.shared > 0 and committer.stats.largest > 1, committer.stats
    assert committer.stats.batches < len(requests)
    kinds = {answer(o)[0] for o in outcomes}
    assert kinds == {"posted", "replay", "error"}
    codes = {o.code for o in outcomes if isinstance(o, LedgerError)}
    assert codes == {"condition_failed", "ik_conflict"}
    assert_same_as_one_by_one(db, unique, ledger_ik, requests, outcomes, recorder.order, USERS)


def test_a_lone_post_goes_at_once(db, unique):
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    committer = GroupCommitter(db, window_ms=0)
    first = service.add_ledger_entry(db, ledger_ik, deposit("a", "a", 5), committer)
    again = service.add_ledger_entry(db, ledger_ik, deposit("a", "a", 5), committer)
    assert (first.is_ik_replay, again.is_ik_replay, again.entry.id) == (False, True, first.entry.id)
    with pytest.raises(LedgerError) as refused:
        committer.post(ledger_ik, transfer("t", "a", "b", 6))
    assert (refused.value.code, refused.value.index) == ("condition_failed", 0)
    with pytest.raises(NotFoundError):
        committer.post("no-such-ledger-" + unique("x"), deposit("a", "a", 1))
    assert committer.stats.batches == 4 and committer.stats.shared == 0


def test_the_engine_checks_a_batch_in_order_on_running_balances(db, unique):
    """Report mode, as the committer uses it: each entry sees the ones before it."""
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, ledger_ik, a=15)
    requests = [transfer("t1", "a", "b", 10), transfer("t2", "a", "b", 10),
                deposit("d", "a", 10), transfer("t3", "a", "b", 10), transfer("t4", "b", "a", 21)]
    with db.transaction() as conn:
        results = post_entries(conn, service.load_ledger(conn, ledger_ik), requests,
                               refusals="report")
    assert [getattr(r, "code", "posted") for r in results] == [
        "posted", "condition_failed", "posted", "posted", "condition_failed"]
    assert "would be -5" in results[1].message and "would be -1" in results[4].message
    assert (own(db, ledger_ik, USER.format("a")), own(db, ledger_ik, USER.format("b"))) == (5, 20)


def test_hot_sender_is_locked_once_per_batch(db, unique):
    """Fifty transfers of 10 from a balance of 100 through the committer: exactly ten post,
    and each transaction takes the sender's row lock in one statement, not one per entry."""
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, ledger_ik, hot=100, **{f"p{i}": 1 for i in range(50)})
    locks = []

    def count(conn, cursor, statement, *args):
        # The sender's own row; the totalBalance condition also locks its (no) descendants.
        if "FOR UPDATE" in statement and "json_to_recordset" in statement:
            locks.append(statement)
    recorder = Recorder(pause=0.05)
    committer = committer_with(db, recorder)
    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        outcomes = race_through(committer, ledger_ik,
                                [transfer(f"t{i}", "hot", f"p{i}", 10) for i in range(50)])
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    assert sum(not isinstance(o, Exception) for o in outcomes) == 10
    assert {o.code for o in outcomes if isinstance(o, Exception)} == {"condition_failed"}
    assert own(db, ledger_ik, USER.format("hot")) == 0
    assert committer.stats.largest > 1
    # Every balance row exists already: one locking statement per transaction.
    assert len(locks) == committer.stats.attempts < 50
    assert service.audit(db, ledger_ik) == []


class Faults(Recorder):
    """Fails the first attempt of the first ``times`` shared batches at commit time."""

    def __init__(self, fail, times=2):
        super().__init__()
        self.fail, self.times = fail, times

    def before_commit(self, conn, ledger_ik, requests):
        with self.lock:
            go = len(requests) > 1 and self.times > 0
            self.times -= go
        if go:
            time.sleep(0.02)  # let the next batch queue up behind this one
            self.fail(conn)


def kill_backend(db):
    def fail(conn):
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        with db.engine.connect() as other:
            other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            other.commit()
        conn.execute(sa.text("SELECT 1"))
    return fail


def deadlock(conn):
    conn.execute(sa.text("DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '40P01'; "
                         "END $$"))


def serialization_failure_at_commit(conn):
    """A deferred constraint trigger that fails the COMMIT itself, which goes out in one
    pipeline with the batch's last writes: everything here is undone with the attempt."""
    conn.execute(sa.text(
        "CREATE FUNCTION pg_temp.fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'injected at commit' USING ERRCODE = '40001'; END $$"))
    conn.execute(sa.text("CREATE TEMP TABLE commit_fault (x int)"))
    conn.execute(sa.text(
        "CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON commit_fault "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pg_temp.fail_commit()"))
    conn.execute(sa.text("INSERT INTO commit_fault VALUES (1)"))


FAULTS = {"kill_backend": kill_backend, "deadlock": lambda db: deadlock,
          "at_commit": lambda db: serialization_failure_at_commit}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_transient_failure_of_a_batch_is_retried_unseen(db, unique, fault):
    assert_transient_faults_unseen(db, unique, fault, race_through)


def assert_transient_faults_unseen(db, unique, fault: str, post_all) -> None:
    """Shared batches failed once each by ``fault`` and retried: ``post_all(committer,
    ledger_ik, requests)`` (the callers' outcomes) sees no error, and the answers and books
    are those of posting one by one."""
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, ledger_ik, hot=100)
    faults = Faults(FAULTS[fault](db))
    committer = GroupCommitter(db, on_batch=faults.on_batch, before_commit=faults.before_commit)
    requests = mixed_requests(60)
    outcomes = post_all(committer, ledger_ik, requests)
    assert faults.times <= 0, "no shared batch was failed"
    assert committer.stats.attempts > committer.stats.batches
    assert not any(isinstance(o, InternalError) for o in outcomes), outcomes
    assert_same_as_one_by_one(db, unique, ledger_ik, requests, outcomes, faults.order, USERS)


def test_a_database_that_stays_unavailable_fails_each_caller_once(db, unique):
    """Transient faults retried to exhaustion: every caller gets the retryable error, no
    entry is posted, and the batch is not posted again one by one."""
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    committer = GroupCommitter(db, before_commit=lambda conn, *_: deadlock(conn))
    outcomes = race_through(committer, ledger_ik, [deposit(f"d{i}", "a", 1) for i in range(12)])
    assert all(isinstance(o, InternalError) and o.code == "database_unavailable" and o.retryable
               for o in outcomes), outcomes
    assert len({id(o) for o in outcomes}) == len(outcomes), "one error object per caller"
    assert committer.stats.fallbacks == 0
    assert own(db, ledger_ik, USER.format("a")) == 0


def test_a_batch_that_breaks_falls_back_to_each_post_alone(db, unique):
    """Not a refusal and not transient (here a bug raised for one request): the others
    still post, each caller gets its own answer, the broken one alone sees its error."""
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, ledger_ik, hot=100)
    recorder = Recorder(pause=0.05, pauses=1)

    def before_commit(conn, ledger_ik, requests):
        recorder.before_commit(conn, ledger_ik, requests)
        if any(r.ik.startswith("poison") for r in requests):
            raise RuntimeError("a bug that one request triggers")
    committer = GroupCommitter(db, on_batch=recorder.on_batch, before_commit=before_commit)
    requests = mixed_requests(60)
    for k in range(6):
        requests.insert(k * 11, deposit(f"poison-{k}", "p", 1))
    outcomes = race_through(committer, ledger_ik, requests)
    poisoned = [o for r, o in zip(requests, outcomes) if r.ik.startswith("poison")]
    assert all(isinstance(o, RuntimeError) for o in poisoned), poisoned
    assert committer.stats.fallbacks >= 1, committer.stats
    kept = [i for i, r in enumerate(requests) if not r.ik.startswith("poison")]
    assert_same_as_one_by_one(db, unique, ledger_ik, [requests[i] for i in kept],
                              [outcomes[i] for i in kept],
                              [r for r in recorder.order if not r.ik.startswith("poison")], USERS)
    for k in range(6):
        with pytest.raises(NotFoundError):
            service.get_ledger_entry(db, ledger_ik=ledger_ik, ik=f"poison-{k}")


def test_atomic_units_stay_all_or_none_among_singles(db, unique):
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, ledger_ik, hot=30)
    recorder = Recorder(pause=0.05)
    committer = committer_with(db, recorder)
    units = [[transfer(f"ok-{i}-a", "hot", "q", 1), deposit(f"ok-{i}-b", "q", 1)] if i % 3 == 0
             else [deposit(f"bad-{i}-a", "q", 1), transfer(f"bad-{i}-b", "nobody", "q", 1)]
             if i % 3 == 1 else [deposit(f"single-{i}", "s", 1)] for i in range(30)]
    outcomes = race(len(units), lambda i: service.add_ledger_entries(
        db, ledger_ik, units[i], committer))
    for unit, outcome in zip(units, outcomes):
        if unit[0].ik.startswith("bad"):
            assert isinstance(outcome, LedgerError) and outcome.code == "condition_failed"
            assert outcome.index == 1 and outcome.message.startswith("entries[1]")
            for request in unit:
                with pytest.raises(NotFoundError):
                    service.get_ledger_entry(db, ledger_ik=ledger_ik, ik=request.ik)
        else:
            assert [r.entry.ik for r in outcome] == [r.ik for r in unit]
    assert own(db, ledger_ik, USER.format("hot")) == 20
    assert own(db, ledger_ik, USER.format("q")) == 20
    assert service.audit(db, ledger_ik) == []


OPS = st.lists(st.tuples(st.sampled_from(["deposit", "transfer", "back"]),
                         st.integers(0, 3), st.integers(1, 40), st.integers(0, 11)),
               min_size=2, max_size=24)


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS)
def test_property_concurrent_posts_answer_as_one_by_one(db, unique, ops):
    """Any mix of deposits and guarded transfers, with iks that repeat (replays and
    conflicts), posted at once through the committer, answers as posting them one by one
    in the committer's order."""
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, ledger_ik, hot=100)
    requests = ops_requests(ops)
    recorder = Recorder(pause=0.02, pauses=1)
    committer = committer_with(db, recorder)
    outcomes = race_through(committer, ledger_ik, requests)
    assert_same_as_one_by_one(db, unique, ledger_ik, requests, outcomes, recorder.order,
                              ["hot", *[f"u{i}" for i in range(4)]])


def ops_requests(ops) -> list[EntryRequest]:
    """The requests an ``OPS`` draw stands for: deposits to, transfers from and transfers
    back to the hot sender."""
    return [deposit(f"k{ik}", f"u{user}", amount) if kind == "deposit"
            else transfer(f"k{ik}", "hot", f"u{user}", amount) if kind == "transfer"
            else transfer(f"k{ik}", f"u{user}", "hot", amount)
            for kind, user, amount, ik in ops]


PENDING = "liabilities/users:{}/pending"


def _with_type(document: str, name: str) -> str:
    """The wallet ``document`` with one more entry type, ``name``: a deposit to available."""
    return document.replace('"types": [', '"types": [ { "type": "' + name + '", "lines": [ '
                            '{ "key": "bank", "account": { "path": "assets/banks/user-cash" }, '
                            '"amount": "{{amount}}" }, { "key": "user", "account": { "path": '
                            '"liabilities/users:{{user_id}}/available" }, '
                            '"amount": "{{amount}}" } ] },', 1)


def _reads_of_the_ledger(statements: list[str]) -> int:
    return sum("FROM ledgers l JOIN schemas s" in s for s in statements)


def test_a_remembered_ledger_is_read_again_only_when_its_head_changed(db, unique):
    """After its first batch the committer remembers the ledger and its schema head, and
    later batches skip reading them; their locking statement reads the head instead. A
    schema version stored since, or a monitor created since, is followed by the very next
    post, whether the old version compiled its entry (the statement tells) or refused it
    (a refusal is never answered from a remembered head)."""
    key = unique("wallet")
    v1 = seed000_schema(key)
    ledger_ik = new_ledger(db, unique, v1)
    committer = GroupCommitter(db)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)
    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        committer.post(ledger_ik, deposit("d1", "a", 5))
        assert _reads_of_the_ledger(statements) == 1
        statements.clear()
        committer.post(ledger_ik, deposit("d2", "a", 5))
        assert _reads_of_the_ledger(statements) == 0

        # Version 2 credits deposits to a new account: the old version compiles the entry,
        # the locking statement says the head moved, and it is posted again on version 2.
        v2 = v1.replace('"available": {}', '"available": {}, "pending": {}').replace(
            '"path": "liabilities/users:{{user_id}}/available" },\n            "amount": '
            '"{{amount}}" },\n        ]', '"path": "liabilities/users:{{user_id}}/pending" },'
            '\n            "amount": "{{amount}}" },\n        ]', 1)
        assert v2.count("/pending") == 1
        assert service.store_schema(db, v2).version == 2
        statements.clear()
        third = committer.post(ledger_ik, deposit("d3", "a", 7))
        assert [line.account_path for line in third.lines][-1] == PENDING.format("a")
        assert _reads_of_the_ledger(statements) == 1

        # Version 3 adds an entry type: version 2 refuses it, so it is compiled again on a
        # fresh read rather than refused.
        v3 = _with_type(v2, "bonus")
        assert service.store_schema(db, v3).version == 3
        statements.clear()
        bonus = committer.post(ledger_ik, EntryRequest(ik="b1", type="bonus", parameters={
            "user_id": "a", "amount": "2"}))
        assert (bonus.is_ik_replay, bonus.entry.type) == (False, "bonus")
        assert _reads_of_the_ledger(statements) == 1

        # A type no version knows is refused as a post without the committer refuses it.
        unknown = EntryRequest(ik="u1", type="no-such-type", parameters={})
        with pytest.raises(LedgerError) as alone:
            service.add_ledger_entry(db, ledger_ik, unknown)
        with pytest.raises(LedgerError) as through:
            committer.post(ledger_ik, unknown)
        assert (through.value.code, through.value.message, through.value.field) == (
            alone.value.code, alone.value.message, alone.value.field)
        # The same for an atomic list, which the compiler refuses whole.
        committer.post(ledger_ik, deposit("d-remembered", "a", 1))  # remembered again
        v4 = _with_type(v3, "bonus2")
        assert service.store_schema(db, v4).version == 4
        pair = committer.post_atomic(ledger_ik, [
            EntryRequest(ik="b2", type="bonus2", parameters={"user_id": "a", "amount": "3"}),
            deposit("d-pair", "a", 1)])
        assert [r.entry.type for r in pair] == ["bonus2", "deposit"]
        both = [deposit("d-ok", "a", 1), unknown]
        with pytest.raises(LedgerError) as alone:
            service.add_ledger_entries(db, ledger_ik, both)
        with pytest.raises(LedgerError) as through:
            committer.post_atomic(ledger_ik, both)
        assert (through.value.code, through.value.message, through.value.index) == (
            alone.value.code, alone.value.message, alone.value.index) and alone.value.index == 1

        # A monitor created since: the next post watches it (the head counts monitors).
        committer.post(ledger_ik, deposit("d4", "m", 1))
        service.create_balance_monitor(db, ledger_ik, PENDING.format("m"), "own",
                                       {"gte": "10", "currency": "USD"})
        statements.clear()
        committer.post(ledger_ik, deposit("d5", "m", 20))
        assert _reads_of_the_ledger(statements) == 1
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    with db.transaction() as conn:
        crossed = conn.execute(sa.text(
            "SELECT count(*) FROM events e JOIN ledgers l ON l.id = e.ledger_id "
            "WHERE l.ik = :ik AND e.type = 'balance.crossed'"), {"ik": ledger_ik}).scalar()
    assert crossed == 1
    assert (own(db, ledger_ik, USER.format("a")), own(db, ledger_ik, PENDING.format("a"))) == (
        15, 9)
    assert service.audit(db, ledger_ik) == []


def _versioned(key: str, n: int) -> dict:
    """Version ``n`` of a wallet whose deposits credit the account that version added."""
    kept = {"available": {}, **{f"k{i}": {} for i in range(2, n + 1)}}
    target = "available" if n == 1 else f"k{n}"
    return {"key": key, "chartOfAccounts": {
        "assets": {"banks": {"user-cash": {}}},
        "liabilities": {"users": {"template": "user", **kept}}},
        "ledgerEntries": {"types": [{"type": "deposit", "lines": [
            {"key": "bank", "account": {"path": "assets/banks/user-cash"},
             "amount": "{{amount}}"},
            {"key": "user", "account": {"path": "liabilities/users:{{user_id}}/" + target},
             "amount": "{{amount}}"}]}]}}


def test_no_post_answers_from_a_version_older_than_its_call(db, unique):
    """Versions stored while four threads post through one committer: each post uses a
    version at least as new as the last one stored before the post was called."""
    key = unique("versions")
    ledger_ik = new_ledger(db, unique, _versioned(key, 1))
    committer = GroupCommitter(db)
    committer.post(ledger_ik, deposit("remembered", "w", 1))
    stored = [1]
    seen: list[tuple[int, str]] = []
    done = threading.Event()

    def store():
        try:
            for n in range(2, 13):
                time.sleep(0.01)
                assert service.store_schema(db, _versioned(key, n)).version == n
                stored.append(n)
        finally:
            done.set()

    def post(c):
        i = 0
        while not done.is_set():
            before = stored[-1]
            result = committer.post(ledger_ik, deposit(f"p{c}-{i}", f"u{c}", 1))
            seen.append((before, result.lines[-1].account_path))
            i += 1
    outcomes = race(5, lambda i: store() if i == 0 else post(i))
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    used = [(before, 1 if path.endswith("/available") else int(path.rsplit("/k", 1)[1]))
            for before, path in seen]
    assert [u for u in used if u[1] < u[0]] == []
    assert len({u[1] for u in used}) > 3, "the posts did not span the versions"
    assert service.audit(db, ledger_ik) == []
