"""What the SDK sends for seed 001's calls, read off a mock transport: the token request's
scope, reconcile_tx without a type, and a post that names no ledger."""
from __future__ import annotations

import json
from urllib.parse import parse_qs

import httpx
import pytest

from ledger_sdk import BadRequestError, SyncClient

RESULT = {"__typename": "AddLedgerEntryResult", "isIkReplay": False,
          "entry": {"id": "1", "ik": "ch_1", "type": "StripeChargeEntry", "description": None,
                    "posted": "2025-01-01T00:00:00+00:00", "created": "2025-01-01T00:00:00+00:00",
                    "ledger": {"ik": "l"}, "tags": [], "groups": []},
          "lines": []}


def recording_client(**options) -> tuple[SyncClient, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        field = "reconcileTx" if b"reconcileTx" in request.content else "addLedgerEntry"
        return httpx.Response(200, json={"data": {field: RESULT}})

    client = SyncClient(client_id="id", client_secret="secret", api_url="http://api.test",
                        auth_url="http://api.test/oauth2/token", auth_scope="ledger/*",
                        transport=httpx.MockTransport(handle), **options)
    return client, sent


def test_seed001_reconcile_tx_sends_no_type_and_keyword_parameters():
    client, sent = recording_client(ledger_ik="wallet")
    client.reconcile_tx(external_ref="ch_1", user_id="user_1")
    token, call = sent
    assert parse_qs(token.content.decode())["scope"] == ["ledger/*"]
    variables = json.loads(call.content)["variables"]
    assert variables == {"entry": {"ledger": {"ik": "wallet"}, "parameters": {"user_id": "user_1"}},
                         "tx": {"externalId": "ch_1"}}


def test_a_parameter_given_twice_is_refused_before_sending():
    client, sent = recording_client(ledger_ik="wallet")
    with pytest.raises(BadRequestError) as info:
        client.reconcile_tx(parameters={"user_id": "a"}, external_ref="ch_1", user_id="b")
    assert "user_id given twice" in info.value.message
    assert sent == []


def test_a_post_naming_no_ledger_leaves_the_choice_to_the_api():
    client, sent = recording_client()
    client.post_entries("DepositEntry", idemp_key="tx123", user_id="user_1", cents=1000)
    entry = json.loads(sent[-1].content)["variables"]["entry"]
    assert "ledger" not in entry
    assert entry == {"type": "DepositEntry", "parameters": {"user_id": "user_1", "cents": "1000"}}
