"""The seed 000 wallet linked to Stripe, and a fake Stripe API for it."""
from __future__ import annotations

import json

import sqlalchemy as sa

from ledger import service
from ledger.settings import Settings
from tests.fakes.stripe_server import API_KEY, WEBHOOK_SECRET
from tests.integration.helpers import seed000_schema
from tests.keys import SECRET_KEY


def wallet_schema(key: str, link_id: str) -> str:
    """Seed 000 step 4: user-cash linked to the Stripe link; plus an entry type that books
    Stripe's fee to an expense account."""
    doc = json.loads("\n".join(l for l in seed000_schema(key).splitlines()
                               if not l.lstrip().startswith("//")).replace("},\n        ]", "}\n        ]"))
    doc["chartOfAccounts"]["assets"]["banks"]["user-cash"] = {"linkedAccount": link_id}
    doc["chartOfAccounts"]["expense"] = {"stripe-fees": {}}
    doc["ledgerEntries"]["types"].append({
        "type": "stripe_fee",
        "description": "Stripe fee",
        "lines": [
            {"key": "fee_leaves_balance", "account": {"path": "assets/banks/user-cash"}},
            {"key": "fee_expense", "account": {"path": "expense/stripe-fees"}},
        ]})
    return json.dumps(doc)


def stripe_config(link_id: str) -> Settings:
    """The deployment's settings for the Stripe link ``link_id`` (nothing from the
    environment: the stored key and secret count)."""
    return Settings(stripe_link_id=link_id, secret_key=SECRET_KEY)


def stripe_wallet(db, unique, *, fee_type: bool = True):
    """(ledger ik, link id): a fresh wallet ledger and a Stripe link reconciling into it."""
    link_id = unique("stripe")
    stored = service.store_schema(db, wallet_schema(unique("wallet"), link_id))
    ledger = unique("ledger")
    service.create_ledger(db, ledger, "Wallet", stored.key)
    service.configure_stripe(
        db, stripe_config(link_id), ledger_ik=ledger, charge_entry_type="deposit",
        fee_entry_type="stripe_fee" if fee_type else None,
        parameters={"user_id": "metadata.user_id"}, api_key=API_KEY,
        webhook_secret=WEBHOOK_SECRET)
    return ledger, link_id


def entry_count(db, ledger_ik: str, type_: str | None = None) -> int:
    with db.transaction() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) FROM entries e JOIN ledgers l ON l.id = e.ledger_id "
            "WHERE l.ik = :l AND (CAST(:t AS text) IS NULL OR e.type = :t)"),
            {"l": ledger_ik, "t": type_}).scalar()
