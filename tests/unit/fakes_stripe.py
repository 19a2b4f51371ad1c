"""A fake of the Stripe port (ledger.stripe.api.StripeApi), no server. It hands back what
the real ``stripe`` package does, ``stripe.StripeObject`` (not a dict: no ``.get``), so a
unit test fails where production would."""
from __future__ import annotations

import copy
from typing import Any

import stripe

from ledger.stripe.api import BalanceTxPage


def stripe_object(values: dict) -> stripe.StripeObject:
    """``values`` as the stripe package builds an API answer."""
    return stripe.StripeObject.construct_from(copy.deepcopy(values), "rk_test_fake")


class FakeStripeApi:
    """Charges, payment intents and balance transactions held in memory; every call is
    recorded."""

    def __init__(self):
        self.charges: dict[str, dict] = {}
        self.payment_intents: dict[str, dict] = {}
        self.balance_txs: dict[str, dict] = {}  # newest last
        self.calls: list[tuple[str, Any]] = []

    def add_charge(self, charge_id: str, amount: int, *, fee: int = 0, created: int = 1_700_000_000,
                   metadata: dict | None = None, status: str = "available"
                   ) -> stripe.StripeObject:
        """A charge and its balance transaction (``txn_<charge id>``, ``source`` expanded)."""
        charge = {"id": charge_id, "object": "charge", "amount": amount, "status": "succeeded",
                  "balance_transaction": f"txn_{charge_id}", "metadata": metadata or {}}
        self.charges[charge_id] = charge
        bt = {"id": f"txn_{charge_id}", "object": "balance_transaction", "type": "charge",
              "amount": amount, "fee": fee, "currency": "usd", "status": status,
              "created": created, "available_on": created + 86400, "source": charge}
        self.balance_txs[bt["id"]] = bt
        return stripe_object(bt)

    def add_payment_intent(self, pi_id: str, charge_id: str | None, *,
                           status: str = "succeeded") -> stripe.StripeObject:
        intent = {"id": pi_id, "object": "payment_intent", "status": status,
                  "latest_charge": charge_id}
        self.payment_intents[pi_id] = intent
        return stripe_object(intent)

    def charge(self, charge_id: str) -> stripe.StripeObject:
        self.calls.append(("charge", charge_id))
        return stripe_object(self.charges[charge_id])

    def payment_intent(self, pi_id: str) -> stripe.StripeObject:
        self.calls.append(("payment_intent", pi_id))
        return stripe_object(self.payment_intents[pi_id])

    def balance_transaction(self, txn_id: str) -> stripe.StripeObject:
        self.calls.append(("balance_transaction", txn_id))
        return stripe_object(self.balance_txs[txn_id])

    def balance_transactions(self, params: dict[str, Any]) -> BalanceTxPage:
        """Newest first, ``created`` filtered, ``limit`` a page, after ``starting_after``."""
        self.calls.append(("balance_transactions", params))
        created = params.get("created") or {}
        listed = [bt for bt in reversed(list(self.balance_txs.values()))
                  if created.get("gte", 0) <= bt["created"] < created.get("lt", 2**63)]
        after = params.get("starting_after")
        if after is not None:
            listed = listed[[bt["id"] for bt in listed].index(after) + 1:]
        limit = params.get("limit", 10)
        return BalanceTxPage([stripe_object(bt) for bt in listed[:limit]], len(listed) > limit)
