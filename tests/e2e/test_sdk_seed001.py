"""Seed 001 end to end through the SDK, as the guide writes it: the client made with
``client_id, client_secret, api_url, auth_url, auth_scope``; ``get_workspace()``; the
``WalletService`` of its last listing (deposit, transfer, reconcile_charge); and
``reconcile_tx(external_ref=charge_id, user_id=user_id)`` with no entry type against a
charge synced from (fake) Stripe."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import json5
import pytest

from api.app import create_app
from ledger import service
from ledger.settings import Settings
from ledger_sdk import BadRequestError, Client
from tests.fakes.stripe_server import API_KEY, WEBHOOK_SECRET, FakeStripe
from tests.integration.helpers import own
from tests.integration.stripe_helpers import stripe_config
from tests.keys import SECRET_KEY
from tests.serving import serve

SEED001 = Path(__file__).resolve().parent.parent / "fixtures" / "seed001_wallet.jsonc"
WORKSPACE_NAME = "Seed 001 wallet"
SCOPE = "https://api.example.test/*"


@pytest.fixture(scope="module")
def named_api(database_url):
    """The API of a deployment named by LEDGER_WORKSPACE_NAME."""
    settings = Settings.from_env({"DATABASE_URL": database_url,
                                  "LEDGER_WORKSPACE_NAME": WORKSPACE_NAME})
    app = create_app(replace(settings, secret_key=SECRET_KEY))
    with serve(app, "seed001-uvicorn") as url:
        yield url


@pytest.fixture
def fake():
    server = FakeStripe().start()
    yield server
    server.stop()


class TokenRecorder(httpx.AsyncBaseTransport):
    """Passes every request on; keeps the forms sent to the token endpoint."""

    def __init__(self):
        self.inner = httpx.AsyncHTTPTransport()
        self.token_forms: list[dict] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            self.token_forms.append(parse_qs(request.content.decode()))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class WalletService:
    """Seed 001's class, after FRAGMENT, verbatim."""

    def __init__(self, ledger):
        self.ledger = ledger

    async def deposit(self, user_id, cents, tx_id):
        await self.ledger.post_entries("DepositEntry",
                                       idemp_key=tx_id,
                                       user_id=user_id,
                                       cents=cents)

    async def transfer(self, from_id, to_id, cents, tx_id):
        await self.ledger.post_entries("TransferEntry",
                                       idemp_key=tx_id,
                                       from_id=from_id,
                                       to_id=to_id,
                                       cents=cents)

    async def reconcile_charge(self, charge_id, user_id):
        await self.ledger.reconcile_tx(
            external_ref=charge_id,
            user_id=user_id  # Provide all required parameters for parameterized entry types
        )


def test_seed001_flow(named_api, full_client, db, unique, fake):
    link = unique("stripe")
    ledger = unique("seed001")
    config = stripe_config(link)
    # Only sync: the seed's own code reconciles.
    service.configure_stripe(db, config, ledger_ik=ledger, charge_entry_type="",
                             fee_entry_type="", api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
    schema = json5.loads(SEED001.read_text().replace("${STRIPE_LINK_ID}", link))
    schema["key"] = unique("seed001-wallet")
    recorder = TokenRecorder()
    users = {name: unique(name) for name in ("alice", "bob")}

    async def main():
        # The appendix's client; ledger_ik only because this test database holds many
        # ledgers (with one, the API picks it).
        client = Client(client_id=full_client.client_id,
                        client_secret=full_client.client_secret,
                        api_url=named_api, auth_url=f"{named_api}/oauth2/token",
                        auth_scope=SCOPE, ledger_ik=ledger, transport=recorder)
        async with client:
            response = await client.get_workspace()
            assert response.workspace.name == WORKSPACE_NAME
            assert response.workspace.id.startswith("wks_")
            assert (await client.get_workspace()).workspace.id == response.workspace.id

            await client.store_schema(schema)
            await client.create_ledger(ledger, "Seed 001 wallet", schema["key"])
            wallet = WalletService(client)
            await wallet.deposit(users["alice"], 1000, unique("tx"))
            tx_id = unique("tx")
            await wallet.transfer(users["alice"], users["bob"], 400, tx_id)
            # Retried by the caller: the idemp_key makes it one transfer.
            await wallet.transfer(users["alice"], users["bob"], 400, tx_id)
            with pytest.raises(BadRequestError) as info:
                await wallet.transfer(users["alice"], users["bob"], 601, unique("tx"))
            assert info.value.code == "condition_failed"

            made = fake.add_charge(1250, metadata={"user_id": users["bob"]})
            report = service.stripe_backfill(db, config,
                                             datetime.now(timezone.utc) - timedelta(days=1),
                                             client=fake.client())
            assert report.synced == 1 and report.reconciled == 0
            charge_id = made["charge"]["id"]
            await wallet.reconcile_charge(charge_id, users["bob"])
            again = await client.reconcile_tx(external_ref=charge_id, user_id=users["bob"])
            assert again.is_ik_replay and again.entry.type == "StripeChargeEntry"
            assert again.entry.ik == charge_id
            assert sorted(line.amount for line in again.lines) == [1250, 1250]
            with pytest.raises(BadRequestError) as info:
                await client.reconcile_tx(external_ref=charge_id, to_id=users["bob"])
            assert info.value.code == "entry_type_not_found"
            assert "StripeChargeEntry does not take to_id" in info.value.message

    asyncio.run(main())
    path = "liability/wallets/wallet:{}"
    assert own(db, ledger, path.format(users["alice"])) == 600
    assert own(db, ledger, path.format(users["bob"])) == 400 + 1250
    assert own(db, ledger, "asset/stripe") == 1250
    assert recorder.token_forms and all(f["scope"] == [SCOPE] for f in recorder.token_forms)


def test_add_ledger_entry_without_a_type_names_the_field(api, gql):
    r = gql("""mutation($entry: LedgerEntryInput!) { addLedgerEntry(ik: "no-type", entry: $entry) {
                 __typename ... on Error { code message } } }""",
            {"entry": {"ledger": {"ik": "whatever"}, "parameters": {}}})
    result = r.json()["data"]["addLedgerEntry"]
    assert result["__typename"] == "BadRequestError"
    assert "entry.type" in result["message"]
