"""Schemas and shortcuts shared by the integration tests."""
from __future__ import annotations

import json
from pathlib import Path

from ledger import service
from ledger.service import EntryRequest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def seed000_schema(key: str) -> str:
    text = (FIXTURES / "seed000_wallet.jsonc").read_text()
    return text.replace('"key": "wallet"', f'"key": "{key}"', 1)


def seed002_schema(key: str) -> dict:
    doc = json.loads((FIXTURES / "seed002_store_schema_variables.json").read_text())["schema"]
    doc["key"] = key
    return doc


def new_ledger(db, unique, document) -> str:
    """Store ``document`` under a fresh key and create a ledger of it; returns the ledger ik."""
    if isinstance(document, str):
        stored = service.store_schema(db, document)
    else:
        stored = service.store_schema(db, document)
    ik = unique("ledger")
    service.create_ledger(db, ik, "Test ledger", stored.key)
    return ik


def post(db, ledger_ik, type_, ik=None, **parameters):
    import secrets
    return service.add_ledger_entry(db, ledger_ik, EntryRequest(
        ik=ik or secrets.token_hex(8), type=type_, parameters=parameters))


def own(db, ledger_ik, path, currency="USD") -> int:
    return service.account_balances(db, ledger_ik, path).own.get(currency, 0)


def scoped_tokens(client, db, name: str) -> dict[str, dict[str, str]]:
    """Authorization headers of a new read client and a new write client, by scope, from
    the app behind ``client`` (a TestClient)."""
    from ledger import clients

    tokens = {}
    for scope in ("read", "write"):
        made = clients.create_client(db, f"{name} {scope}", scope)
        r = client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                        auth=(made.client_id, made.client_secret))
        tokens[scope] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return tokens
