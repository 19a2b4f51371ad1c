"""Holds (issue 15): reservations against available balances under concurrency, commit /
void / expiry rules and their typed refusals, history at a past time, and a Hypothesis state
machine of commit, void and expiry interleavings checked against a model and the audit."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
import time
from datetime import datetime, timedelta, timezone

import json5
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger import service
from ledger.errors import BadRequestError, NotFoundError
from ledger.service import EntryRequest, LineInput
from tests.integration.helpers import new_ledger, own, post, seed000_schema
from tests.integration.test_races import race

PAYER = "liabilities/users:payer/available"


def later(seconds: float = 3600) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def hold(db, ledger, amount, ik=None, expires_at=None, to="shop", payer="payer"):
    return service.add_ledger_hold(db, ledger, EntryRequest(
        ik=ik or secrets.token_hex(8), type="transfer",
        parameters={"from_id": payer, "to_id": to, "amount": str(amount)}),
        expires_at or later())


@dataclass
class Raised:
    type: str
    payload: dict


def hold_events(db, ledger):
    """The hold events of a ledger as written, in order. Read from the table: the feed
    (service.list_events) holds back events behind any transaction running on the server,
    which other test runs sharing it keep open; what these tests check is what was raised."""
    with db.transaction() as conn:
        return [Raised(r.type, r.payload) for r in conn.execute(sa.text(
            "SELECT e.type, e.payload FROM events e JOIN ledgers l ON l.id = e.ledger_id "
            "WHERE l.ik = :l AND e.type LIKE 'hold.%' ORDER BY e.id"), {"l": ledger})]


def balances(db, ledger, path=PAYER, at=None):
    b = service.hold_balances(db, ledger, path, at)
    return b.own_pending.get("USD", 0), b.own_available.get("USD", 0)


def test_fifty_concurrent_holds_against_one_thousand(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger, "deposit", user_id="payer", amount="1000")
    outcomes = race(50, lambda i: hold(db, ledger, 30, ik=f"h{i}", to=f"shop{i}"))
    ok = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(ok) == 33  # 33 * 30 = 990 fit under gte 0; the 34th would need 1,020
    assert all(isinstance(e, BadRequestError) and e.code == "condition_failed" for e in refused)
    assert all(o.hold.status == "pending" and o.entry.lines == [] for o in ok)
    assert own(db, ledger, PAYER) == 1000  # nothing posted
    assert balances(db, ledger) == (10, 10)
    # The reservation binds ordinary posts too: 20 no longer fits, 10 does.
    with pytest.raises(BadRequestError) as err:
        post(db, ledger, "transfer", from_id="payer", to_id="x", amount="20")
    assert err.value.code == "condition_failed"
    post(db, ledger, "transfer", from_id="payer", to_id="x", amount="10")
    shop = service.hold_balances(db, ledger, "liabilities/users")
    assert shop.child_pending == {"USD": 1000} and shop.child_available == {"USD": 10}
    assert service.audit(db, ledger) == []


def test_commit_void_and_their_refusals(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger, "deposit", user_id="payer", amount="500")
    expiry = later()
    first = hold(db, ledger, 100, ik="card-1", expires_at=expiry)
    assert hold(db, ledger, 100, ik="card-1", expires_at=expiry.isoformat()).is_ik_replay
    with pytest.raises(BadRequestError) as err:  # same ik, another expiry
        hold(db, ledger, 100, ik="card-1", expires_at=later(60))
    assert err.value.code == "ik_conflict"
    with pytest.raises(BadRequestError) as err:
        service.commit_ledger_entry(db, id=first.entry.id, amount="101")
    assert err.value.code == "hold_exceeded"
    done = service.commit_ledger_entry(db, ledger_ik=ledger, ik="card-1", amount="40")
    assert not done.is_ik_replay and done.hold.status == "committed"
    assert sorted(l.amount for l in done.entry.lines) == [-40, 40]
    assert own(db, ledger, PAYER) == 460 and own(db, ledger, "liabilities/users:shop/available") == 40
    assert balances(db, ledger) == (460, 460)
    assert service.commit_ledger_entry(db, id=first.entry.id, amount="40").is_ik_replay
    for call, code in ((lambda: service.commit_ledger_entry(db, id=first.entry.id), "hold_committed"),
                       (lambda: service.void_ledger_entry(db, id=first.entry.id), "hold_committed")):
        with pytest.raises(BadRequestError) as err:
            call()
        assert err.value.code == code
    second = hold(db, ledger, 300)
    assert balances(db, ledger) == (160, 160)
    assert service.void_ledger_entry(db, id=second.entry.id).hold.status == "voided"
    assert service.void_ledger_entry(db, id=second.entry.id).is_ik_replay
    with pytest.raises(BadRequestError) as err:
        service.commit_ledger_entry(db, id=second.entry.id)
    assert err.value.code == "hold_voided"
    assert balances(db, ledger) == (460, 460)
    with pytest.raises(BadRequestError) as err:
        service.reverse_ledger_entry(db, id=second.entry.id)
    assert err.value.code == "hold_not_committed"
    reversal = service.reverse_ledger_entry(db, id=first.entry.id)  # a committed hold posted
    assert sorted(l.amount for l in reversal.reversing_entry.lines) == [-40, 40]
    assert balances(db, ledger) == (500, 500)
    with pytest.raises(NotFoundError) as err:
        service.commit_ledger_entry(db, id=post(db, ledger, "deposit", user_id="z", amount="1").entry.id)
    assert err.value.code == "hold_not_found"
    assert service.audit(db, ledger) == []
    # One event per change, none for replays or refusals, in the order they happened.
    events = hold_events(db, ledger)
    assert [(e.type, e.payload["entry"]["id"]) for e in events] == [
        ("hold.created", first.entry.id), ("hold.committed", first.entry.id),
        ("hold.created", second.entry.id), ("hold.voided", second.entry.id)]
    assert sorted(x["amount"] for x in events[1].payload["lines"]) == ["-40", "40"]
    assert events[0].payload["expiresAt"] == expiry.isoformat()


def test_expiry_refuses_a_commit_before_the_beat_and_history_keeps_what_was_pending(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger, "deposit", user_id="payer", amount="500")
    short = hold(db, ledger, 200, expires_at=later(1.0))
    while_pending = datetime.now(timezone.utc)
    assert balances(db, ledger) == (300, 300)
    time.sleep(1.1)
    with pytest.raises(BadRequestError) as err:  # the beat has not run
        service.commit_ledger_entry(db, id=short.entry.id)
    assert err.value.code == "hold_expired"
    assert service.get_ledger_hold(db, short.entry.id).status == "pending"
    assert service.expire_holds(db) >= 1
    assert service.get_ledger_hold(db, short.entry.id).status == "expired"
    assert [e.type for e in hold_events(db, ledger)] == ["hold.created", "hold.expired"]
    with pytest.raises(BadRequestError) as err:
        service.void_ledger_entry(db, id=short.entry.id)
    assert err.value.code == "hold_expired"
    assert balances(db, ledger) == (500, 500)
    assert balances(db, ledger, at=while_pending) == (300, 300)
    shop = service.hold_balances(db, ledger, "liabilities/users:shop/available", while_pending)
    assert shop.own_pending == {"USD": 200} and shop.own_available == {"USD": 0}
    assert service.audit(db, ledger) == []


def test_partial_capture_of_runtime_lines_and_with_parameters(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger, "deposit", user_id="payer", amount="500")
    h = hold(db, ledger, 100)
    with pytest.raises(BadRequestError) as err:
        service.commit_ledger_entry(db, id=h.entry.id, parameters={"amount": "150"})
    assert err.value.code == "hold_exceeded"
    with pytest.raises(BadRequestError) as err:  # moves the money elsewhere
        service.commit_ledger_entry(db, id=h.entry.id, parameters={"to_id": "other"})
    assert err.value.code == "hold_exceeded"
    done = service.commit_ledger_entry(db, id=h.entry.id, parameters={"amount": "70"})
    assert own(db, ledger, PAYER) == 430
    assert done.hold.lines and sorted(l.amount for l in done.hold.lines) == [-100, 100]
    assert service.audit(db, ledger) == []


def race_the_sweep(db, holds, act):
    """Just before the last of ``holds`` expires, ten sweeps in a row in one thread race
    ``act(db, id=...)`` on each hold in its own; the outcomes of ``act``, in order."""
    time.sleep(max(0.0, (holds[-1].hold.expires_at - datetime.now(timezone.utc)).total_seconds() - 0.15))

    def go(i):
        if i == 0:
            return [service.expire_holds(db) for _ in range(10)]
        return act(db, id=holds[i - 1].entry.id)
    return race(len(holds) + 1, go)[1:]


def test_commit_racing_expiry_ends_one_way_only(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger, "deposit", user_id="payer", amount="10000")
    holds = [hold(db, ledger, 10, expires_at=later(0.6)) for _ in range(20)]
    outcomes = race_the_sweep(db, holds, service.commit_ledger_entry)
    service.expire_holds(db)
    committed = expired = 0
    for h, outcome in zip(holds, outcomes):
        status = service.get_ledger_hold(db, h.entry.id).status
        if isinstance(outcome, Exception):
            assert isinstance(outcome, BadRequestError) and outcome.code == "hold_expired"
            assert status == "expired"
            expired += 1
        else:
            assert status == "committed" and outcome.hold.status == "committed"
            committed += 1
    assert committed + expired == 20
    tally = [e.type for e in hold_events(db, ledger)]
    assert (tally.count("hold.committed"), tally.count("hold.expired")) == (committed, expired)
    assert own(db, ledger, PAYER) == 10000 - 10 * committed
    assert balances(db, ledger) == (10000 - 10 * committed,) * 2
    assert service.audit(db, ledger) == []


def test_void_racing_expiry_ends_one_way_only(db, unique):
    """Without a bound in the way a void can win: each hold ends voided or expired, never
    both, with one event, and its reservation is given back once whichever won."""
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger, "deposit", user_id="payer", amount="1000")
    holds = [hold(db, ledger, 10, expires_at=later(0.6)) for _ in range(20)]
    outcomes = race_the_sweep(db, holds, service.void_ledger_entry)
    service.expire_holds(db)
    ends = []
    for h, outcome in zip(holds, outcomes):
        status = service.get_ledger_hold(db, h.entry.id).status
        if isinstance(outcome, Exception):
            assert isinstance(outcome, BadRequestError) and outcome.code == "hold_expired"
            assert status == "expired"
        else:
            assert status == "voided" == outcome.hold.status
        ends.append(status)
    tally = [e.type for e in hold_events(db, ledger)]
    assert (tally.count("hold.voided"), tally.count("hold.expired")) == (
        ends.count("voided"), ends.count("expired"))
    assert balances(db, ledger) == (1000, 1000) and own(db, ledger, PAYER) == 1000
    assert service.audit(db, ledger) == []


START = 1000


class HoldMachine(RuleBasedStateMachine):
    """Holds of one payer, committed (whole or in part), voided or expired in any order;
    posted, pending and available balances follow a model and the audit stays clean."""

    db = None
    unique = None

    @initialize()
    def start(self):
        self.ledger = new_ledger(self.db, self.unique, seed000_schema(self.unique("hm")))
        post(self.db, self.ledger, "deposit", user_id="payer", amount=str(START))
        self.posted = START
        self.pending: dict[str, int] = {}
        self.resolved: dict[str, str] = {}

    @rule(amount=st.integers(min_value=1, max_value=400))
    def create(self, amount):
        fits = self.posted - sum(self.pending.values()) >= amount
        try:
            h = hold(self.db, self.ledger, amount)
        except BadRequestError as exc:
            assert not fits and exc.code == "condition_failed"
            return
        assert fits
        self.pending[h.entry.id] = amount

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def commit(self, data):
        entry_id = data.draw(st.sampled_from(list(self.pending)))
        amount = data.draw(st.integers(min_value=1, max_value=self.pending[entry_id]))
        service.commit_ledger_entry(self.db, id=entry_id, amount=str(amount))
        assert service.commit_ledger_entry(self.db, id=entry_id, amount=str(amount)).is_ik_replay
        self.posted -= amount
        del self.pending[entry_id]
        self.resolved[entry_id] = "committed"

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def void(self, data):
        entry_id = data.draw(st.sampled_from(list(self.pending)))
        service.void_ledger_entry(self.db, id=entry_id)
        del self.pending[entry_id]
        self.resolved[entry_id] = "voided"

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def expire(self, data):
        entry_id = data.draw(st.sampled_from(list(self.pending)))
        with self.db.transaction() as conn:  # its time has come
            conn.execute(sa.text("UPDATE holds SET expires_at = now() - interval '1 second' "
                                 "WHERE entry_id = :e"), {"e": int(entry_id)})
        assert service.expire_holds(self.db) >= 1
        del self.pending[entry_id]
        self.resolved[entry_id] = "expired"

    @precondition(lambda self: self.resolved)
    @rule(data=st.data())
    def resolved_again(self, data):
        entry_id = data.draw(st.sampled_from(list(self.resolved)))
        status = self.resolved[entry_id]
        with pytest.raises(BadRequestError) as err:
            service.commit_ledger_entry(self.db, id=entry_id, amount="1000000")
        assert err.value.code == f"hold_{status}"

    @invariant()
    def books(self):
        if not hasattr(self, "ledger"):
            return
        held = sum(self.pending.values())
        assert own(self.db, self.ledger, PAYER) == self.posted
        assert balances(self.db, self.ledger) == (self.posted - held,) * 2
        shop = service.hold_balances(self.db, self.ledger, "liabilities/users:shop/available")
        assert shop.own_pending.get("USD", 0) == START - self.posted + held
        assert service.audit(self.db, self.ledger) == []
        events = [(e.type, e.payload["entry"]["id"]) for e in hold_events(self.db, self.ledger)]
        assert sorted(events) == sorted(
            [("hold.created", i) for i in [*self.pending, *self.resolved]]
            + [(f"hold.{status}", i) for i, status in self.resolved.items()])


def test_hold_state_machine(db, unique):
    HoldMachine.db, HoldMachine.unique = db, staticmethod(unique)
    machine = HoldMachine.TestCase
    machine.settings = settings(max_examples=12, stateful_step_count=12, deadline=None,
                                suppress_health_check=list(HealthCheck))
    machine().runTest()


def test_runtime_lines_held_and_captured_in_part(db, unique):
    doc = json5.loads(seed000_schema(unique("wallet")))
    doc["ledgerEntries"]["types"].append({"type": "manual"})  # lines come with the post
    ledger = new_ledger(db, unique, doc)
    post(db, ledger, "deposit", user_id="payer", amount="500")
    lines = [LineInput("user", PAYER, -80), LineInput("bank", "assets/banks/user-cash", -80)]
    h = service.add_ledger_hold(db, ledger, EntryRequest(ik="m1", type="manual", lines=tuple(lines)),
                                later())
    assert balances(db, ledger) == (420, 420)
    with pytest.raises(BadRequestError) as err:
        service.commit_ledger_entry(db, id=h.entry.id, parameters={"amount": "1"})
    assert err.value.code == "invalid_input"
    done = service.commit_ledger_entry(db, id=h.entry.id, amount=30)
    assert sorted((l.key, l.amount) for l in done.entry.lines) == [("bank", -30), ("user", -30)]
    assert own(db, ledger, PAYER) == 470 and balances(db, ledger) == (470, 470)
    uneven = service.add_ledger_hold(db, ledger, EntryRequest(ik="m2", type="manual", lines=(
        LineInput("user", PAYER, -10), LineInput("shop", "liabilities/users:shop/available", 4),
        LineInput("bank", "assets/banks/user-cash", -6))), later())
    with pytest.raises(BadRequestError) as err:
        service.commit_ledger_entry(db, id=uneven.entry.id, amount=5)
    assert err.value.code == "invalid_input" and "differ in size" in err.value.message
    assert service.commit_ledger_entry(db, id=uneven.entry.id).hold.status == "committed"
    assert service.audit(db, ledger) == []


def _capped_ledger(db, unique):
    """A wallet whose deposits and spends keep the user's available balance <= 1,000."""
    doc = json5.loads(seed000_schema(unique("wallet")))
    capped = {"account": {"path": "liabilities/users:{{user_id}}/available"},
              "postcondition": {"ownBalance": {"lte": "1000"}}}
    types = doc["ledgerEntries"]["types"]
    types[0]["conditions"] = [capped]
    types.append({"type": "spend", "lines": [
        {"key": "bank", "account": {"path": "assets/banks/user-cash"}, "amount": "-{{amount}}"},
        {"key": "user", "account": {"path": "liabilities/users:{{user_id}}/available"},
         "amount": "-{{amount}}"}], "conditions": [capped]})
    return new_ledger(db, unique, doc)


def test_release_must_not_carry_available_past_an_upper_bound(db, unique):
    """Available = posted + pending decreases: a void or a partial capture raises it, so
    the type's ``lte`` postcondition is checked on release as on posting."""
    ledger = _capped_ledger(db, unique)
    post(db, ledger, "deposit", user_id="payer", amount="900")
    held = service.add_ledger_hold(db, ledger, EntryRequest(
        ik="s1", type="spend", parameters={"user_id": "payer", "amount": "200"}), later())
    post(db, ledger, "deposit", user_id="payer", amount="250")  # available 950: fits
    assert balances(db, ledger) == (950, 950) and own(db, ledger, PAYER) == 1150
    with pytest.raises(BadRequestError) as err:
        service.void_ledger_entry(db, id=held.entry.id)
    assert err.value.code == "condition_failed" and "stays pending" in err.value.message
    with pytest.raises(BadRequestError) as err:  # captures 50, gives back 150: 1,100
        service.commit_ledger_entry(db, id=held.entry.id, amount=50)
    assert err.value.code == "condition_failed"
    assert balances(db, ledger) == (950, 950)  # nothing moved
    assert service.get_ledger_hold(db, held.entry.id).status == "pending"
    done = service.commit_ledger_entry(db, id=held.entry.id, amount=150)  # 1,000: at the bound
    assert done.hold.status == "committed" and balances(db, ledger) == (1000, 1000)
    other = service.add_ledger_hold(db, ledger, EntryRequest(
        ik="s2", type="spend", parameters={"user_id": "payer", "amount": "100"}), later())
    assert service.void_ledger_entry(db, id=other.entry.id).hold.status == "voided"
    assert service.audit(db, ledger) == []


def _spend(db, ledger, amount, expires_at=None):
    return service.add_ledger_hold(db, ledger, EntryRequest(
        ik=secrets.token_hex(8), type="spend",
        parameters={"user_id": "payer", "amount": str(amount)}), expires_at or later())


def _expire_now(db, entry_ids):
    with db.transaction() as conn:
        conn.execute(sa.text("UPDATE holds SET expires_at = now() - interval '1 second' "
                             "WHERE entry_id = ANY(:ids)"), {"ids": [int(i) for i in entry_ids]})


def test_expiry_past_an_upper_bound_releases_and_reports_the_crossing(db, unique):
    """A void that would carry available past ``lte`` is refused; the same hold's expiry is
    not (a reservation ends at its deadline), and says what it broke: the event's
    ``conditionsBroken`` and the audit, until a posting brings the balance back within."""
    ledger = _capped_ledger(db, unique)
    post(db, ledger, "deposit", user_id="payer", amount="900")
    fits = _spend(db, ledger, 10)
    held = _spend(db, ledger, 200)
    post(db, ledger, "deposit", user_id="payer", amount="250")  # available 940
    with pytest.raises(BadRequestError) as err:
        service.void_ledger_entry(db, id=held.entry.id)
    assert err.value.code == "condition_failed" and err.value.field == "conditions"
    assert balances(db, ledger) == (940, 940)
    _expire_now(db, [fits.entry.id, held.entry.id])
    assert service.expire_holds(db) >= 2
    assert service.get_ledger_hold(db, held.entry.id).status == "expired"
    assert balances(db, ledger) == (1150, 1150) and own(db, ledger, PAYER) == 1150
    expired = {e.payload["entry"]["id"]: e.payload for e in hold_events(db, ledger)
               if e.type == "hold.expired"}
    assert set(expired) == {fits.entry.id, held.entry.id}
    # Checked after the whole sweep's release: both holds' bound is broken by then.
    for payload in expired.values():
        [message] = payload["conditionsBroken"]
        assert "ownBalance would be 1150 USD" in message and "<= 1000" in message
    problems = service.audit(db, ledger)
    assert [p.check for p in problems] == ["condition_broken"] and "1150" in problems[0].detail
    with pytest.raises(BadRequestError) as err:  # still above the bound: refused
        post(db, ledger, "deposit", user_id="payer", amount="1")
    assert err.value.code == "condition_failed"
    post(db, ledger, "spend", user_id="payer", amount="150")  # back to 1,000
    assert service.audit(db, ledger) == []
    clean = _spend(db, ledger, 10)  # a release within the bound reports nothing
    _expire_now(db, [clean.entry.id])
    assert service.expire_holds(db) >= 1
    last = [e for e in hold_events(db, ledger) if e.type == "hold.expired"][-1]
    assert last.payload["entry"]["id"] == clean.entry.id and last.payload["conditionsBroken"] == []


def test_void_racing_expiry_past_an_upper_bound_ends_one_way_only(db, unique):
    """Voids and sweeps race on holds whose release crosses the bound: a void is refused
    (condition_failed before the deadline, hold_expired after), every hold expires exactly
    once, its reservation is given back once, and nothing is voided."""
    ledger = _capped_ledger(db, unique)
    post(db, ledger, "deposit", user_id="payer", amount="900")
    holds = [_spend(db, ledger, 20, expires_at=later(0.6)) for _ in range(10)]
    post(db, ledger, "deposit", user_id="payer", amount="295")  # available 995
    outcomes = race_the_sweep(db, holds, service.void_ledger_entry)
    # The race may end before the holds are due (every void refused by the condition):
    # the sweeps that expire them come once they are.
    time.sleep(max(0.0, (holds[-1].hold.expires_at
                         - datetime.now(timezone.utc)).total_seconds() + 0.05))
    while service.expire_holds(db):
        pass
    for h, outcome in zip(holds, outcomes):
        assert isinstance(outcome, BadRequestError), outcome
        assert outcome.code in ("condition_failed", "hold_expired")
        assert service.get_ledger_hold(db, h.entry.id).status == "expired"
    tally = [(e.type, e.payload["entry"]["id"]) for e in hold_events(db, ledger)]
    assert sorted(x for t, x in tally if t == "hold.expired") == sorted(h.entry.id for h in holds)
    assert not any(t == "hold.voided" for t, _ in tally)
    assert balances(db, ledger) == (1195, 1195) and own(db, ledger, PAYER) == 1195
    assert [p.check for p in service.audit(db, ledger)] == ["condition_broken"]


def _transfer_job(ik, amount, **extra):
    return {"ik": ik, "type": "transfer",
            "parameters": {"from_id": "payer", "to_id": "shop", "amount": str(amount)}, **extra}


def test_async_jobs_post_holds_in_order(db, unique):
    """REST /entries jobs carry ``hold``: the worker creates holds through ledger/holds in
    submission order between entries posted outright; one that does not fit fails alone."""
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger, "deposit", user_id="payer", amount="500")
    expiry = {"expiresAt": later().isoformat()}
    accepted = service.submit_entries(db, ledger, [
        _transfer_job("a1", 100, hold=expiry), _transfer_job("a2", 350),
        _transfer_job("a3", 100, hold=expiry), _transfer_job("a4", 50, hold=expiry)],
        partitions=1)
    for p in accepted.pending_partitions:
        service.work_partition(db, p)
    jobs = {j.ik: service.get_job(db, j.id) for j in accepted.jobs}
    assert {ik: j.status for ik, j in jobs.items()} == {
        "a1": service.POSTED, "a2": service.POSTED, "a3": service.FAILED, "a4": service.POSTED}
    assert jobs["a3"].error["code"] == "condition_failed"  # 500 - 100 held - 350 = 50 left
    assert service.get_ledger_hold(db, jobs["a1"].entry_id).status == "pending"
    assert service.get_ledger_hold(db, jobs["a2"].entry_id) is None  # posted outright
    assert balances(db, ledger) == (0, 0) and own(db, ledger, PAYER) == 150
    assert service.commit_ledger_entry(db, ledger_ik=ledger, ik="a4").hold.status == "committed"
    post(db, ledger, "deposit", user_id="payer", amount="100")  # available: 100

    batch = service.submit_entries(db, ledger, [_transfer_job("b1", 10),
                                                _transfer_job("b2", 20, hold=None)],
                                   partitions=1, hold=expiry)
    for p in batch.pending_partitions:
        service.work_partition(db, p)
    assert all(service.get_ledger_hold(db, service.get_job(db, j.id).entry_id) is not None
               for j in batch.jobs)
    assert balances(db, ledger) == (70, 70)
    with pytest.raises(BadRequestError) as err:  # the same ik, now without a hold
        service.submit_entries(db, ledger, [_transfer_job("b1", 10)], partitions=1)
    assert err.value.code == "ik_conflict"
    with pytest.raises(BadRequestError) as err:
        service.submit_entries(db, ledger, [_transfer_job("c1", 1, hold={
            "expiresAt": "2001-01-01T00:00:00Z"})], partitions=1)
    assert err.value.field == "entries[0].hold.expiresAt"
    with pytest.raises(BadRequestError) as err:
        service.submit_entries(db, ledger, [_transfer_job("c2", 1)], partitions=1,
                               hold={"expires": "soon"})
    assert err.value.code == "invalid_input" and "hold" in err.value.field
    assert service.audit(db, ledger) == []


def test_all_lines_merge_both_streams_and_refuse_foreign_cursors(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger, "deposit", user_id="payer", amount="100")
    hold(db, ledger, 30)
    post(db, ledger, "transfer", from_id="payer", to_id="x", amount="5")
    hold(db, ledger, 20)
    seen, after = [], None
    while True:
        page = service.list_all_lines(db, ledger, PAYER, first=1, after=after)
        seen += [(l.amount, s) for l, s in page.nodes]
        if not page.page_info.has_next_page:
            break
        after = page.page_info.end_cursor
    assert seen == [(-20, "pending"), (-5, None), (-30, "pending"), (100, None)]
    whole = service.list_all_lines(db, ledger, None, first=200)
    assert len(whole.nodes) == 8 and not whole.page_info.has_next_page
    hold_cursor = service.list_hold_lines(db, ledger, PAYER, first=1).page_info.end_cursor
    for bad in ("junk", hold_cursor, "all.bm9wZQ"):
        with pytest.raises(BadRequestError) as err:
            service.list_all_lines(db, ledger, PAYER, after=bad)
        assert err.value.field == "after"
    with pytest.raises(BadRequestError) as err:
        service.list_all_lines(db, ledger, PAYER, first=201)
    assert err.value.field == "first"
