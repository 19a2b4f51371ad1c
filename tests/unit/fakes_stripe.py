"""A fake of the Stripe port (ledger.stripe.api.StripeApi): objects in dicts, no server."""
from __future__ import annotations

from typing import Any

from ledger.stripe.api import BalanceTxPage


class FakeStripeApi:
    """Charges and balance transactions held in memory; every call is recorded."""

    def __init__(self):
        self.charges: dict[str, dict] = {}
        self.balance_txs: dict[str, dict] = {}  # newest last
        self.calls: list[tuple[str, Any]] = []

    def add_charge(self, charge_id: str, amount: int, *, fee: int = 0, created: int = 1_700_000_000,
                   metadata: dict | None = None, status: str = "available") -> dict:
        """A charge and its balance transaction (``txn_<charge id>``, ``source`` expanded)."""
        charge = {"id": charge_id, "object": "charge", "amount": amount,
                  "balance_transaction": f"txn_{charge_id}", "metadata": metadata or {}}
        self.charges[charge_id] = charge
        bt = {"id": f"txn_{charge_id}", "object": "balance_transaction", "type": "charge",
              "amount": amount, "fee": fee, "currency": "usd", "status": status,
              "created": created, "available_on": created + 86400, "source": charge}
        self.balance_txs[bt["id"]] = bt
        return bt

    def charge(self, charge_id: str) -> dict:
        self.calls.append(("charge", charge_id))
        return self.charges[charge_id]

    def balance_transaction(self, txn_id: str) -> dict:
        self.calls.append(("balance_transaction", txn_id))
        return self.balance_txs[txn_id]

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
        return BalanceTxPage(listed[:limit], len(listed) > limit)
