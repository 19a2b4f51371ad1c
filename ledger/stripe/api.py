"""The part of Stripe's API the link uses, as a small port: the real ``stripe.StripeClient``
behind it in production, a fake in unit tests (tests/unit/fakes_stripe.py).

The port hands back what the ``stripe`` package does: ``stripe.StripeObject``, which is not
a dict (no ``.get``). The link's code reads them through ``model.plain``, so a fake that
returns the same type tests what production runs."""
from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import stripe

from ledger.errors import InternalError
from ledger.stripe.model import StripeSettings


class BalanceTxPage(NamedTuple):
    """One page of balance transactions (``source`` expanded), newest first."""

    data: list[stripe.StripeObject]
    has_more: bool


class StripeApi(Protocol):
    def charge(self, charge_id: str) -> stripe.StripeObject:
        """The charge ``charge_id``."""

    def payment_intent(self, intent_id: str) -> stripe.StripeObject:
        """The payment intent ``intent_id``."""

    def balance_transaction(self, txn_id: str) -> stripe.StripeObject:
        """The balance transaction ``txn_id``, its ``source`` expanded."""

    def balance_transactions(self, params: dict[str, Any]) -> BalanceTxPage:
        """A page of the balance transactions list (``params`` as Stripe takes them)."""


class StripeClientApi:
    """``StripeApi`` on the real client."""

    def __init__(self, client: stripe.StripeClient):
        self.client = client

    def charge(self, charge_id: str) -> stripe.StripeObject:
        return self.client.v1.charges.retrieve(charge_id)

    def payment_intent(self, intent_id: str) -> stripe.StripeObject:
        return self.client.v1.payment_intents.retrieve(intent_id)

    def balance_transaction(self, txn_id: str) -> stripe.StripeObject:
        return self.client.v1.balance_transactions.retrieve(txn_id, params={"expand": ["source"]})

    def balance_transactions(self, params: dict[str, Any]) -> BalanceTxPage:
        page = self.client.v1.balance_transactions.list(params=params)
        return BalanceTxPage(list(page.data), bool(page.has_more))


def client_for(settings: StripeSettings, api_base: str | None = None) -> stripe.StripeClient:
    if not settings.api_key:
        raise InternalError("stripe_not_configured", "no Stripe API key: set STRIPE_API_KEY or run `ledger stripe configure --api-key`", retryable=False)
    base = api_base or settings.api_base
    return stripe.StripeClient(settings.api_key.reveal(), max_network_retries=2,
                               **({"base_addresses": {"api": base}} if base else {}))


def stripe_api(settings: StripeSettings, client: Any = None) -> StripeApi:
    """The port for ``client``: a ``StripeApi`` as is, a ``stripe.StripeClient`` wrapped, or
    (None) a real client made from the settings' API key."""
    if client is None:
        client = client_for(settings)
    if isinstance(client, stripe.StripeClient):
        return StripeClientApi(client)
    return client
