"""The SDK's history calls against the running app, async and sync: balances at a moment
and over a period, reversals (a forced InternalError retried reverses once), updates, pages
of lines, entries and accounts, group balances."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from ledger_sdk import BadRequestError, HistoryEntry, PermissionDeniedError, SyncClient
from tests.e2e.test_sdk import FlakyTransport, make_client, wallet_schema


@pytest.fixture(scope="module")
def ledger_ik(api, full_client, unique):
    key = unique("sdk-history")
    ik = unique("sdk-history-ledger")

    async def setup():
        async with make_client(api, full_client) as fragment:
            await fragment.store_schema(wallet_schema(key))
            await fragment.create_ledger(ik, "SDK history", key)

    asyncio.run(setup())
    return ik


ALICE = "liabilities/users:alice/available"


def test_history_async(api, full_client, ledger_ik):
    async def main():
        async with make_client(api, full_client, ledger_ik=ledger_ik) as fragment:
            async def deposit(ik, user, amount, posted, **extra):
                return await fragment.add_ledger_entry(
                    ik=ik, type="deposit", parameters={"user_id": user, "amount": amount},
                    posted=posted, **extra)

            first = await deposit("d-1", "alice", 100, "2025-01-01T10:00:00Z",
                                  tags={"channel": "card"}, groups={"statement": "jan"})
            await deposit("d-3", "alice", 50, "2025-01-03T10:00:00Z", groups={"statement": "jan"})
            await deposit("d-2", "alice", 20, datetime(2025, 1, 2, 10, tzinfo=timezone.utc))

            assert await fragment.get_balance(ALICE, at="2025-01-01") == 100
            assert await fragment.get_balance(ALICE, at="2025-01-02") == 120
            assert await fragment.get_balance(
                ALICE, at=datetime(2025, 1, 3, 9, tzinfo=timezone.utc)) == 120
            assert await fragment.get_balance(ALICE) == 170
            users = await fragment.get_ledger_account("liabilities/users", at="2025-01-01")
            assert users.child_balances == {"USD": 100}
            change = await fragment.get_balance_change(ALICE, "2025-01-02")
            assert change.own == {"USD": 20} and change.total == {"USD": 20}
            assert (await fragment.get_balance_change(ALICE, "2025-Q1")).own == {"USD": 170}

            moved = await fragment.add_ledger_entry(
                ik="t-1", type="transfer",
                parameters={"from_id": "alice", "to_id": "bob", "amount": 160})
            # Taking back the first deposit would leave alice below zero: refused.
            with pytest.raises(BadRequestError) as refused:
                await fragment.reverse_ledger_entry(first.entry.id)
            assert refused.value.code == "condition_failed"
            assert await fragment.get_balance(ALICE) == 10

            reversal = await fragment.reverse_ledger_entry(moved.entry.id)
            assert reversal.is_ik_replay is False
            assert isinstance(reversal.reversing_entry, HistoryEntry)
            assert reversal.reversed_entry.reversed_by_id == reversal.reversing_entry.id
            assert reversal.reversing_entry.reverses_id == moved.entry.id
            assert [l.amount for l in reversal.reversing_entry.lines] == [160, -160]
            again = await fragment.reverse_ledger_entry(ik="t-1")
            assert again.is_ik_replay is True
            assert again.reversing_entry.id == reversal.reversing_entry.id
            assert await fragment.get_balance(ALICE) == 170

            updated = await fragment.update_ledger_entry(first.entry.id,
                                                         tags={"channel": None, "note": "ok"})
            assert updated.changed is True and updated.entry.tags == {"note": "ok"}

            # Lines of alice, the reversed transfer's included, three a page, both ways.
            every = {"reversed": None}
            assert len((await fragment.list_lines(ALICE)).nodes) == 3
            pages, after = [], None
            while True:
                page = await fragment.list_lines(ALICE, filter=every, first=3, after=after)
                pages.append(page.nodes)
                if not page.page_info.has_next_page:
                    break
                after = page.page_info.end_cursor
            forward = [l for p in pages for l in p]
            assert len(pages) == 2 and len({l.id for l in forward}) == 5
            posted = [l.posted for l in forward]
            assert posted == sorted(posted, reverse=True)
            back = await fragment.list_lines(ALICE, filter=every, last=3)
            assert [l.id for l in back.nodes] == [l.id for l in forward[-3:]]
            assert back.page_info.has_previous_page is True

            jan = await fragment.list_ledger_entries(filter={"groups": {"statement": "jan"}})
            assert [e.ik for e in jan.nodes] == ["d-3", "d-1"]
            hidden = await fragment.list_ledger_entries(filter={"reversed": True})
            assert {e.ik for e in hidden.nodes} == {"t-1"} and len(hidden.nodes) == 2
            assert all(e.hidden for e in hidden.nodes)
            in_q1 = await fragment.list_ledger_entries(filter={"posted": "2025-Q1"},
                                                       account=ALICE)
            assert [e.ik for e in in_q1.nodes] == ["d-3", "d-2", "d-1"]

            group = await fragment.get_ledger_entry_group("statement", "jan")
            assert {(b.account_path, b.amount) for b in group.balances} == {
                ("assets/banks/user-cash", 150), (ALICE, 150)}
            assert [e.ik for e in group.entries.nodes] == ["d-3", "d-1"]

    asyncio.run(main())


def test_reversal_retried_after_forced_internal_error_reverses_once(api, full_client, ledger_ik):
    async def main():
        async with make_client(api, full_client, ledger_ik=ledger_ik) as plain:
            posted = await plain.add_ledger_entry(
                ik="flaky-rev", type="deposit", parameters={"user_id": "flo", "amount": 33})
        transport = FlakyTransport("force-internal-error")
        async with make_client(api, full_client, transport=transport,
                               ledger_ik=ledger_ik) as fragment:
            result = await fragment.reverse_ledger_entry(posted.entry.id)
            assert transport.graphql_calls == 2
            assert result.is_ik_replay is False
            assert await fragment.get_balance("liabilities/users:flo/available") == 0
            versions = await fragment.list_ledger_entries(
                filter={"reversed": True}, account="liabilities/users:flo/available")
            assert len(versions.nodes) == 2  # the entry and one reversal, not two

    asyncio.run(main())


def test_history_sync(api, full_client, read_client, ledger_ik):
    with SyncClient(client_id=full_client.client_id, client_secret=full_client.client_secret,
                    api_url=api.url, ledger_ik=ledger_ik) as client:
        posted = client.add_ledger_entry(ik="s-1", type="deposit",
                                         parameters={"user_id": "sam", "amount": 12},
                                         posted="2025-06-30T23:00:00Z")
        assert client.get_balance("liabilities/users:sam/available", at="2025-06-30") == 12
        assert client.get_balance("liabilities/users:sam/available", at="2025-06-29") == 0
        assert client.get_balance_change("liabilities/users:sam/available",
                                          "2025-06").own == {"USD": 12}
        accounts = client.list_ledger_accounts(first=200)
        paths = [a.path for a in accounts.nodes]
        assert "liabilities/users:sam/available" in paths and paths == sorted(paths)
        types = {a.path: a.type for a in accounts.nodes}
        assert types["assets/banks/user-cash"] == "asset"
        lines = client.list_lines("liabilities/users:*/available", first=1)
        assert len(lines.nodes) == 1 and lines.page_info.has_next_page

        with SyncClient(client_id=read_client.client_id, client_secret=read_client.client_secret,
                        api_url=api.url, ledger_ik=ledger_ik) as reader:
            with pytest.raises(PermissionDeniedError):
                reader.reverse_ledger_entry(posted.entry.id)
            with pytest.raises(PermissionDeniedError):
                reader.update_ledger_entry(posted.entry.id, tags={"a": "b"})
            assert reader.get_balance("liabilities/users:sam/available") == 12

        reversed_ = client.reverse_ledger_entry(ik="s-1")
        assert reversed_.reversed_entry.id == posted.entry.id
        assert client.get_balance("liabilities/users:sam/available") == 0
        with pytest.raises(BadRequestError) as frozen:
            client.update_ledger_entry(ik="s-1", tags={"a": "b"})
        assert frozen.value.code == "entry_reversed"
