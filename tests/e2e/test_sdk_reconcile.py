"""Seed 000 step 4 through the SDK: a charge synced from (fake) Stripe is reconciled with
``reconcile_tx(type="deposit", parameters={"user_id": ...}, external_ref=charge_id)``."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import asyncio

import pytest

from ledger import service
from ledger_sdk import BadRequestError, Client
from tests.fakes.stripe_server import FakeStripe
from tests.integration.helpers import own
from tests.integration.stripe_helpers import stripe_config, stripe_wallet


@pytest.fixture
def fake():
    server = FakeStripe().start()
    yield server
    server.stop()


def test_seed000_reconcile_charge(api, full_client, db, unique, fake):
    ledger, link = stripe_wallet(db, unique)
    # Only sync here: the seed's own code reconciles.
    config = stripe_config(link)
    service.configure_stripe(db, config, charge_entry_type="", fee_entry_type="")
    made = fake.add_charge(1250, metadata={"user_id": "zoe"})
    report = service.stripe_backfill(db, config, datetime.now(timezone.utc) - timedelta(days=1),
                                     client=fake.client())
    assert report.synced == 1 and report.reconciled == 0
    charge_id = made["charge"]["id"]

    async def main():
        async with Client(client_id=full_client.client_id, client_secret=full_client.client_secret,
                          api_url=api.url, auth_url=api.token_url, ledger_ik=ledger) as fragment:

            async def reconcile_charge(user_id, charge_id):
                return await fragment.reconcile_tx(
                    type="deposit",
                    parameters={"user_id": user_id},
                    external_ref=charge_id,
                )

            first = await reconcile_charge("zoe", charge_id)
            again = await reconcile_charge("zoe", charge_id)
            assert not first.is_ik_replay and again.is_ik_replay
            assert first.entry.ik == charge_id and again.entry.id == first.entry.id
            assert [l.amount for l in first.lines] == [1250, 1250]
            with pytest.raises(BadRequestError) as info:
                await fragment.reconcile_tx(type="deposit", parameters={"user_id": "zoe"},
                                            external_ref="ch_unknown")
            assert info.value.code == "tx_not_found"

    asyncio.run(main())
    assert own(db, ledger, "liabilities/users:zoe/available") == 1250
