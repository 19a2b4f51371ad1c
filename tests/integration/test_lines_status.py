"""``lines(status: pending | all)`` take the posted lines' arguments with their meaning:
first/after and last/before pages, filter (types, times, currency, tags), an account
path or pattern, newest first (issue 15)."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import pytest

from ledger import service
from ledger.errors import BadRequestError, NotFoundError
from ledger.service import EntryRequest
from tests.integration.helpers import new_ledger, post, seed000_schema

PAYER = "liabilities/users:payer/available"
USERS = "liabilities/users:*/available"


def _hold(db, ledger, payer, to, amount):
    return service.add_ledger_hold(db, ledger, EntryRequest(
        ik=secrets.token_hex(8), type="transfer",
        parameters={"from_id": payer, "to_id": to, "amount": str(amount)}),
        datetime.now(timezone.utc) + timedelta(hours=1))


@pytest.fixture
def books(db, unique):
    ledger = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ledger, "deposit", user_id="payer", amount="100")
    post(db, ledger, "deposit", user_id="other", amount="50")
    first = _hold(db, ledger, "payer", "shop", 30)
    post(db, ledger, "transfer", from_id="payer", to_id="x", amount="5")
    _hold(db, ledger, "payer", "shop", 20)
    _hold(db, ledger, "other", "shop", 7)
    voided = _hold(db, ledger, "payer", "shop", 3)
    service.void_ledger_entry(db, id=voided.entry.id)  # no longer pending: never listed
    return ledger, first


def lines(db, ledger, status, account=None, filters=None, **paged):
    return service.list_lines_by_status(db, ledger, account, filters, status=status, **paged)


def view(page):
    return [(line.account_path, line.amount, s) for line, s in page.nodes]


def walk_forward(db, ledger, status, account=None, filters=None, size=2):
    seen, after = [], None
    while True:
        page = lines(db, ledger, status, account, filters, first=size, after=after)
        seen += view(page)
        if not page.page_info.has_next_page:
            return seen
        after = page.page_info.end_cursor


def walk_backward(db, ledger, status, account=None, size=2):
    seen, before = [], None
    while True:
        page = lines(db, ledger, status, account, last=size, before=before)
        seen = view(page) + seen
        if not page.page_info.has_previous_page:
            return seen
        before = page.page_info.start_cursor


@pytest.mark.parametrize("status", ["pending", "all"])
def test_pages_forward_and_backward_alike(db, books, status):
    ledger, _ = books
    whole = view(lines(db, ledger, status, first=200))
    pending = [x for x in whole if x[2] == "pending"]
    assert len(pending) == 6  # both sides of the three pending holds, the voided one left out
    assert len(whole) == (6 if status == "pending" else 6 + 6)
    for size in (1, 2, 3):
        assert walk_forward(db, ledger, status, size=size) == whole
        assert walk_backward(db, ledger, status, size=size) == whole
    # A page's startCursor as `before`: exactly what came before it, in order.
    middle = lines(db, ledger, status, first=2, after=lines(
        db, ledger, status, first=2).page_info.end_cursor)
    assert middle.page_info.has_previous_page and middle.page_info.has_next_page
    assert view(middle) == whole[2:4]
    back = lines(db, ledger, status, last=3, before=middle.page_info.start_cursor)
    assert view(back) == whole[:2] and not back.page_info.has_previous_page
    assert back.page_info.has_next_page


@pytest.mark.parametrize("status", ["pending", "all"])
def test_one_account_and_a_pattern(db, books, status):
    ledger, _ = books
    whole = view(lines(db, ledger, status, first=200))
    mine = view(lines(db, ledger, status, PAYER, first=200))
    assert mine == [x for x in whole if x[0] == PAYER]
    assert [x[1] for x in mine if x[2] == "pending"] == [-20, -30]
    users = view(lines(db, ledger, status, USERS, first=200))
    assert users == [x for x in whole if x[0].startswith("liabilities/users:")]
    assert {x[0] for x in users if x[2] == "pending"} == {
        PAYER, "liabilities/users:other/available", "liabilities/users:shop/available"}
    assert walk_forward(db, ledger, status, USERS, size=2) == users
    assert walk_backward(db, ledger, status, USERS, size=2) == users
    assert view(lines(db, ledger, status, "liabilities/users:*/nothing", first=5)) == []


@pytest.mark.parametrize("status", ["pending", "all"])
def test_filters_mean_what_they_mean_for_posted_lines(db, books, status):
    ledger, first = books
    whole = view(lines(db, ledger, status, first=200))
    deposits = view(lines(db, ledger, status, filters={"type": ["deposit"]}, first=200))
    assert deposits == ([] if status == "pending" else [x for x in whole if x[2] is None and
                                                         abs(x[1]) in (50, 100)])
    transfers = view(lines(db, ledger, status, filters={"type": ["transfer"]}, first=200))
    assert [x for x in transfers if x[2] == "pending"] == [x for x in whole if x[2] == "pending"]
    # A pending line's time is its hold's creation: the first hold is left out after it.
    since = first.hold.created + timedelta(microseconds=1)
    later_ = view(lines(db, ledger, status, filters={"posted": {"start": since.isoformat()}},
                        first=200))
    assert (PAYER, -30, "pending") not in later_ and (PAYER, -20, "pending") in later_
    assert later_ == [x for x in whole if x in later_]
    assert len(view(lines(db, ledger, status, filters={"created": {"end": since.isoformat()}},
                          first=200))) == len(whole) - len(later_)
    assert view(lines(db, ledger, status, filters={"currency": "EUR"}, first=200)) == []
    assert view(lines(db, ledger, status, filters={"currency": "USD"}, first=200)) == whole
    assert walk_forward(db, ledger, status, filters={"type": ["transfer"]}, size=1) == transfers


@pytest.mark.parametrize("status", ["pending", "all"])
def test_refusals_name_the_field(db, books, status):
    ledger, _ = books
    cases = [
        (dict(first=1, last=1), "last"), (dict(first=201), "first"), (dict(last=-1), "last"),
        (dict(after="junk"), "after"), (dict(before="junk"), "before"),
        # A cursor of another status's list is no position in this one.
        (dict(after=lines(db, ledger, "posted", first=1).page_info.end_cursor), "after"),
        (dict(after=lines(db, ledger, "pending" if status == "all" else "all",
                          first=1).page_info.end_cursor), "after"),
    ]
    for paged, field in cases:
        with pytest.raises(BadRequestError) as err:
            lines(db, ledger, status, **paged)
        assert err.value.field == field, (paged, err.value)
    with pytest.raises(BadRequestError) as err:
        lines(db, ledger, status, filters={"posted": {"period": "2025-13"}}, first=1)
    assert err.value.field.startswith("filter.posted")
    with pytest.raises(NotFoundError) as err:  # as for posted lines: no such account
        lines(db, ledger, status, "liabilities/nowhere:x", first=1)
    assert err.value.field == "account"
    with pytest.raises(BadRequestError) as err:
        lines(db, ledger, "everything", first=1)
    assert err.value.field == "status"


@pytest.mark.parametrize("status", ["pending", "all"])
def test_a_period_as_the_account_lines_read_it(db, books, status):
    ledger, first = books
    whole = view(lines(db, ledger, status, PAYER, first=200))
    month = first.hold.created.strftime("%Y-%m")  # the ledger's offset is UTC
    assert view(lines(db, ledger, status, PAYER, first=200, period=month)) == whole
    assert view(lines(db, ledger, status, PAYER, first=200, period="2001-01")) == []
    with pytest.raises(BadRequestError) as err:
        lines(db, ledger, status, PAYER, first=1, period="2025-13")
    assert err.value.field == "period"
