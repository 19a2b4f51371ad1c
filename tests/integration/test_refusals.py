"""``refusals="report"``: the workers' mode, where a refused entry fails alone and the rest
of its batch posts in the same transaction."""
from __future__ import annotations

import sqlalchemy as sa

from ledger import service
from ledger.posting.engine import post_entries
from ledger.posting.model import Posted
from ledger.errors import BadRequestError
from ledger.service import EntryRequest
from tests.integration.helpers import new_ledger, own, post, seed000_schema


def test_refused_entries_fail_alone_and_leave_no_trace(db, unique):
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger_ik, "deposit", ik="used", user_id="a", amount="10")
    ledger = service.get_ledger(db, ledger_ik)
    reqs = [
        EntryRequest(ik="ok-1", type="deposit", parameters={"user_id": "b", "amount": "5"}),
        EntryRequest(ik="overdraw", type="transfer", parameters={"from_id": "b", "to_id": "c", "amount": "6"}),
        EntryRequest(ik="ok-2", type="transfer", parameters={"from_id": "b", "to_id": "c", "amount": "5"}),
        EntryRequest(ik="used", type="deposit", parameters={"user_id": "a", "amount": "11"}),
        EntryRequest(ik="bad", type="deposit", parameters={"user_id": "a", "amount": "1.5"}),
        EntryRequest(ik="used", type="deposit", parameters={"user_id": "a", "amount": "10"}),
    ]
    with db.transaction() as conn:
        out = post_entries(conn, ledger, reqs, refusals="report")
    codes = [o.code if isinstance(o, BadRequestError) else ("replay" if o.is_ik_replay else "posted")
             for o in out]
    assert codes == ["posted", "condition_failed", "posted", "ik_conflict", "invalid_amount",
                     "invalid_input"]
    assert [o.index for o in out if isinstance(o, BadRequestError)] == [1, 3, 4, 5]
    # in submission order: the 6 that overdrew was checked before the 5 that fit
    assert own(db, ledger_ik, "liabilities/users:b/available") == 0
    assert own(db, ledger_ik, "liabilities/users:c/available") == 5
    with db.transaction() as conn:
        iks = conn.execute(sa.text("SELECT ik FROM entries WHERE ledger_id = :l ORDER BY ik"),
                           {"l": ledger.id}).scalars().all()
    assert iks == ["ok-1", "ok-2", "used"]
    # a refused ik was never claimed: it can be used for a request that fits
    assert not post(db, ledger_ik, "transfer", ik="overdraw", from_id="c", to_id="b", amount="5").is_ik_replay


def test_replays_and_conflicts_create_no_accounts(db, unique):
    """The batch's first statement looks up every compiled entry's accounts, but only the
    entries that post create theirs: an ik conflict naming a new user, and a replay,
    leave no account behind."""
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger_ik, "deposit", ik="used", user_id="a", amount="10")
    ledger = service.get_ledger(db, ledger_ik)
    reqs = [EntryRequest(ik="used", type="deposit", parameters={"user_id": "new", "amount": "1"}),
            EntryRequest(ik="used", type="deposit", parameters={"user_id": "a", "amount": "10"}),
            EntryRequest(ik="fresh", type="deposit", parameters={"user_id": "b", "amount": "2"})]
    for batch in ([reqs[0], reqs[2]], [reqs[1]]):
        with db.transaction() as conn:
            out = post_entries(conn, ledger, batch, refusals="report")
        assert not isinstance(out[-1], Exception), out
    assert isinstance(out[0], Posted) or out[0].is_ik_replay
    with db.transaction() as conn:
        paths = conn.execute(sa.text("SELECT path FROM accounts WHERE ledger_id = :l "
                                     "AND path LIKE 'liabilities/users:%' ORDER BY path"),
                             {"l": ledger.id}).scalars().all()
    assert paths == ["liabilities/users:a/available", "liabilities/users:b/available"]


def test_raise_mode_still_rolls_back_the_whole_batch(db, unique):
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    ledger = service.get_ledger(db, ledger_ik)
    reqs = [EntryRequest(ik="x1", type="deposit", parameters={"user_id": "b", "amount": "5"}),
            EntryRequest(ik="x2", type="transfer", parameters={"from_id": "b", "to_id": "c", "amount": "6"})]
    try:
        with db.transaction() as conn:
            post_entries(conn, ledger, reqs)
    except BadRequestError as exc:
        assert exc.code == "condition_failed" and exc.index == 1
    else:
        raise AssertionError("the batch posted")
    assert own(db, ledger_ik, "liabilities/users:b/available") == 0


def test_without_detail_the_answer_is_each_entry_id(db, unique):
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    first = post(db, ledger_ik, "deposit", ik="used", user_id="a", amount="10")
    ledger = service.get_ledger(db, ledger_ik)
    reqs = [EntryRequest(ik="new", type="deposit", parameters={"user_id": "b", "amount": "5"}),
            EntryRequest(ik="used", type="deposit", parameters={"user_id": "a", "amount": "10"}),
            EntryRequest(ik="over", type="transfer", parameters={"from_id": "b", "to_id": "c",
                                                                 "amount": "6"})]
    with db.transaction() as conn:
        out = post_entries(conn, ledger, reqs, refusals="report", detail=False)
    with db.transaction() as conn:
        stored = dict(conn.execute(sa.text("SELECT ik, id FROM entries WHERE ledger_id = :l"),
                                   {"l": ledger.id}).all())
    assert out[0] == Posted(str(stored["new"]), False)
    assert out[1] == Posted(first.entry.id, True)
    assert isinstance(out[2], BadRequestError) and out[2].code == "condition_failed"
    assert own(db, ledger_ik, "liabilities/users:b/available") == 5
