"""The Python SDK against the running app: seed 000's wallet in async code, and retries that
never post twice."""
from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import json5
import pytest

from ledger_sdk import (BadRequestError, Client, InternalError, PermissionDeniedError,
                        SyncClient)

WALLET = Path(__file__).resolve().parent.parent / "fixtures" / "seed000_wallet.jsonc"


def wallet_schema(key: str) -> dict:
    doc = json5.loads(WALLET.read_text())
    doc["key"] = key
    return doc


def make_client(api, creds, transport=None, **options) -> Client:
    return Client(client_id=creds.client_id, client_secret=creds.client_secret,
                  api_url=api.url, auth_url=api.token_url,
                  auth_scope="https://api.example.test/*", transport=transport,
                  backoff_base=0.01, backoff_max=0.05, **options)


class FlakyTransport(httpx.AsyncBaseTransport):
    """Spoils the first GraphQL request in one way, then behaves."""

    def __init__(self, mode: str):
        self.mode = mode
        self.inner = httpx.AsyncHTTPTransport()
        self.graphql_calls = 0
        self.iks: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/graphql":
            return await self.inner.handle_async_request(request)
        self.graphql_calls += 1
        body = json5.loads(request.content.decode())
        self.iks.append((body.get("variables") or {}).get("ik"))
        if self.graphql_calls == 1:
            if self.mode == "force-internal-error":
                request.headers["X-Fragment-Return-Error"] = "internalError"
            elif self.mode == "lose-response":
                # The API posts the entry, but its answer never reaches us.
                response = await self.inner.handle_async_request(request)
                await response.aread()
                raise httpx.ReadError("connection reset after the request was processed")
            elif self.mode == "http-503":
                return httpx.Response(503, json={"message": "overloaded"})
            elif self.mode == "http-429":
                return httpx.Response(429, headers={"Retry-After": "0"})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def wallet(api, full_client, unique):
    """Store seed 000's wallet schema and create its ledger, through the SDK."""
    key = unique("sdk-wallet")
    ledger_ik = unique("sdk-wallet-ledger")

    async def setup():
        async with make_client(api, full_client) as fragment:
            stored = await fragment.store_schema(wallet_schema(key))
            assert stored.key == key and stored.version == 1
            created = await fragment.create_ledger(ledger_ik, "SDK wallet", key)
            assert created.ledger.ik == ledger_ik and not created.is_ik_replay
            assert created.ledger.schema_key == key

    asyncio.run(setup())
    return ledger_ik


def test_seed000_wallet_async(api, full_client, wallet):
    async def main():
        async with make_client(api, full_client, ledger_ik=wallet) as fragment:

            async def deposit(user_id, amount, ik=None):
                return await fragment.add_ledger_entry(
                    ik=ik, type="deposit", parameters={"user_id": user_id, "amount": amount})

            async def transfer(from_id, to_id, amount, ik=None):
                return await fragment.add_ledger_entry(
                    ik=ik, type="transfer",
                    parameters={"from_id": from_id, "to_id": to_id, "amount": amount})

            first = await deposit("alice", "250", ik="dep-alice-1")
            assert not first.is_ik_replay
            assert first.entry.description == "Fund alice for 250"
            assert [(l.account_path, l.amount) for l in first.lines] == [
                ("assets/banks/user-cash", 250), ("liabilities/users:alice/available", 250)]
            # Step 3 of the seed: the same ik again returns the first result.
            again = await deposit("alice", "250", ik="dep-alice-1")
            assert again.is_ik_replay and again.entry.id == first.entry.id
            # Without an ik the SDK makes one (and keeps it across its own retries).
            await deposit("carol", 40)

            await transfer("alice", "bob", "100", ik="t-1")
            with pytest.raises(BadRequestError) as refused:
                await transfer("bob", "alice", "101", ik="t-2")
            assert refused.value.code == "condition_failed"
            assert refused.value.retryable is False

            # Two transfers racing to drain alice (150): at most one commits.
            outcomes = await asyncio.gather(transfer("alice", "dave", "100", ik="race-1"),
                                            transfer("alice", "erin", "100", ik="race-2"),
                                            return_exceptions=True)
            assert sum(isinstance(o, BadRequestError) for o in outcomes) == 1

            assert await fragment.get_balance("liabilities/users:alice/available") == 50
            assert await fragment.get_balance("liabilities/users:bob/available") == 100
            assert await fragment.get_balance("liabilities/users:carol/available") == 40
            users = await fragment.get_ledger_account("liabilities/users")
            assert users.child_balances == {"USD": 290} and users.own_balance() == 0
            assert await fragment.get_balance("assets/banks/user-cash") == 290

            entry = await fragment.get_ledger_entry("t-1")
            assert entry.type == "transfer"
            assert [(l.key, l.amount) for l in entry.lines] == [
                ("debit_sender", -100), ("credit_recipient", 100)]

    asyncio.run(main())


@pytest.mark.parametrize("mode", ["force-internal-error", "lose-response", "http-503", "http-429"])
def test_retried_request_posts_once(api, full_client, wallet, mode):
    user = f"retry-{mode}"

    async def main():
        transport = FlakyTransport(mode)
        async with make_client(api, full_client, transport=transport, ledger_ik=wallet) as fragment:
            result = await fragment.add_ledger_entry(
                type="deposit", parameters={"user_id": user, "amount": 70})
            assert transport.graphql_calls == 2
            # The retry carried the very same ik as the first try.
            assert transport.iks[0] == transport.iks[1] == result.entry.ik
            # When the first try was processed, the retry is its replay.
            assert result.is_ik_replay is (mode == "lose-response")
            assert await fragment.get_balance(f"liabilities/users:{user}/available") == 70

    asyncio.run(main())


def test_bad_request_is_never_retried(api, full_client, wallet):
    async def main():
        transport = FlakyTransport("none")
        async with make_client(api, full_client, transport=transport, ledger_ik=wallet) as fragment:
            with pytest.raises(BadRequestError) as info:
                await fragment.add_ledger_entry(type="deposit", parameters={"user_id": "x"})
            assert info.value.code == "missing_parameter"
            assert transport.graphql_calls == 1
            with pytest.raises(BadRequestError):
                await fragment.add_ledger_entry(type="deposit",
                                                parameters={"user_id": "x", "amount": 1.5})
            assert transport.graphql_calls == 1  # refused before sending

    asyncio.run(main())


def test_internal_errors_give_up_after_bounded_retries(api, full_client, wallet):
    async def main():
        async with make_client(api, full_client, ledger_ik=wallet, max_retries=2,
                               headers={"X-Fragment-Return-Error": "internalError"}) as fragment:
            with pytest.raises(InternalError) as info:
                await fragment.add_ledger_entry(type="deposit",
                                                parameters={"user_id": "never", "amount": "1"})
            assert info.value.retryable is True

    asyncio.run(main())
    with SyncClient(api_url=api.url, client_id=full_client.client_id,
                    client_secret=full_client.client_secret, ledger_ik=wallet) as sync:
        assert sync.get_balance("liabilities/users:never/available") == 0


def test_sync_client_and_token_refresh(api, full_client, read_client, wallet):
    with SyncClient(client_id=full_client.client_id, client_secret=full_client.client_secret,
                    api_url=f"{api.url}/graphql", ledger_ik=wallet) as client:
        result = client.post_entries("deposit", idemp_key="sync-1", user_id="sync", amount=5)
        assert result.lines[1].amount == 5
        # A token the API no longer accepts is replaced once, transparently.
        client._token = "stale-token"
        assert client.get_balance("liabilities/users:sync/available") == 5
        assert client._token != "stale-token"
        assert repr(client).count(full_client.client_secret) == 0
        data = client.query("query($l: LedgerMatchInput!) { ledger(ledger: $l) { name } }",
                            {"l": {"ik": wallet}})
        assert data == {"ledger": {"name": "SDK wallet"}}
    with SyncClient(client_id=read_client.client_id, client_secret=read_client.client_secret,
                    api_url=api.url, ledger_ik=wallet) as reader:
        assert reader.get_balance("liabilities/users:sync/available") == 5
        with pytest.raises(PermissionDeniedError):
            reader.add_ledger_entry(ik="sync-2", type="deposit",
                                    parameters={"user_id": "sync", "amount": "5"})
        assert reader.get_balance("liabilities/users:sync/available") == 5
