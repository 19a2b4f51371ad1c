"""``ledger codegen``: a typed client per seed schema, deterministic, accepted by mypy
--strict (and wrong calls refused by it), and posting through the running API."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import json5
import pytest

from ledger import service
from ledger_sdk import BadRequestError
from ledger_sdk.codegen import generate, read_entry_types, snake_case
from tests.fakes.stripe_server import API_KEY, WEBHOOK_SECRET, FakeStripe
from tests.integration.helpers import own
from tests.integration.stripe_helpers import stripe_config
from tests.integration.test_reconcile_infer import bank_schema

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def seed_schemas() -> dict[str, dict]:
    """Every seed schema the fixtures hold, by module name."""
    return {
        "seed000_client": json5.loads((FIXTURES / "seed000_wallet.jsonc").read_text()),
        "seed001_client": json5.loads((FIXTURES / "seed001_wallet.jsonc").read_text()),
        "seed002_client": json.loads(
            (FIXTURES / "seed002_store_schema_variables.json").read_text())["schema"],
        "seed003_client": json5.loads((FIXTURES / "seed003_linked.jsonc").read_text()),
    }


def mypy(folder: Path, *files: str) -> subprocess.CompletedProcess:
    # MYPYPATH: the SDK of this checkout, whatever copy is installed; silent: only the
    # generated modules and the calls to them are judged.
    env = dict(os.environ, MYPYPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                           "--no-error-summary", "--cache-dir", str(folder / ".mypy_cache"),
                           *files], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_names_and_signatures_follow_the_schema():
    assert [snake_case(n) for n in ("DepositEntry", "user_funds_account", "reconciliation-type",
                                    "LoanDisbursementEntry", "HTTPRefund")] == [
        "deposit_entry", "user_funds_account", "reconciliation_type",
        "loan_disbursement_entry", "http_refund"]
    types = {et.type: et for et in read_entry_types(seed_schemas()["seed003_client"])}
    via_link = types["user_funds_account_via_link"]
    assert via_link.reconciled and via_link.tx_params == ["bank_transaction_id"]
    assert [(p.arg, p.annotation) for p in via_link.params] == [
        ("user_id", "str"), ("funding_amount", "str"), ("bank_transaction_id", "str | None")]
    # Names a Python keyword argument cannot be, and the base client's own methods.
    odd = read_entry_types({"key": "k", "chartOfAccounts": {}, "ledgerEntries": {"types": [
        {"type": "query", "description": "{{class}} {{ledger}} {{a.b}} {{a_b}}",
         "parameters": {"limit": {"min": "1", "max": "10"}}}]}})[0]
    assert odd.method == "query_entry" and odd.runtime
    # An attribute the client's constructor sets would hide a method of that name.
    clashes = read_entry_types({"key": "k", "ledgerEntries": {"types": [
        {"type": "timeout"}, {"type": "Timeout"}, {"type": "api_url"}]}})
    assert [et.method for et in clashes] == ["timeout_entry", "timeout_entry2", "api_url_entry"]
    assert [(p.name, p.arg) for p in odd.params] == [
        ("class", "class_"), ("ledger", "ledger_"), ("a.b", "a_b"), ("a_b", "a_b_"),
        ("limit", "limit")]
    assert odd.params[-1].amount and ">= 1, <= 10" in generate(
        {"key": "k", "ledgerEntries": {"types": [
            {"type": "query", "parameters": {"limit": {"min": "1", "max": "10"}}}]}})


def test_every_seed_schema_gives_a_deterministic_client_mypy_accepts(tmp_path):
    for name, document in seed_schemas().items():
        source = generate(document)
        assert source == generate(json.loads(json.dumps(document)))
        (tmp_path / f"{name}.py").write_text(source)
    (tmp_path / "good_calls.py").write_text('''
from seed001_client import Client, SyncClient
from seed003_client import Client as LinkedClient


async def wallet(client: Client, linked: LinkedClient) -> int:
    result = await client.deposit_entry(idemp_key="tx123", user_id="user_1", cents=1000)
    await client.transfer_entry(idemp_key="t1", from_id="a", to_id="b", cents=5)
    await client.stripe_charge_entry(external_ref="ch_1", user_id="user_1")
    await linked.user_funds_account_via_link(external_ref="tx_1", user_id="u",
                                             funding_amount="200")
    return result.lines[0].amount


def blocking(client: SyncClient) -> bool:
    return client.deposit_entry(idemp_key="tx123", user_id="user_1", cents=1000).is_ik_replay
''')
    good = mypy(tmp_path, *sorted(p.name for p in tmp_path.glob("*.py")))
    assert good.returncode == 0, good.stdout + good.stderr

    (tmp_path / "bad_calls.py").write_text('''
from seed001_client import Client


async def wallet(client: Client) -> None:
    await client.deposit_entry(idemp_key="tx123", user_id="user_1", cents="1000")
    await client.deposit_entry(idemp_key="tx124", cents=1000)
    await client.deposit_entry(idemp_key="tx125", user_id="u", cents=1, amount=1)
''')
    bad = mypy(tmp_path, "bad_calls.py")
    assert bad.returncode == 1
    errors = [line for line in bad.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 3, bad.stdout
    assert "bad_calls.py:6:" in errors[0] and 'Argument "cents" to "deposit_entry"' in errors[0]
    assert "bad_calls.py:7:" in errors[1] and '"user_id"' in errors[1]
    assert "bad_calls.py:8:" in errors[2] and '"amount"' in errors[2]


def test_cli_writes_the_module_and_refuses_an_invalid_schema(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["STRIPE_LINK_ID"] = "stripe-test"
    out = tmp_path / "wallet_client.py"
    r = subprocess.run([sys.executable, "-m", "api.cli", "codegen", "--schema",
                        str(FIXTURES / "seed001_wallet.jsonc"), "--out", str(out)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "3 entry type method(s)" in r.stdout
    document = json5.loads((FIXTURES / "seed001_wallet.jsonc").read_text()
                           .replace("${STRIPE_LINK_ID}", "stripe-test"))
    assert out.read_text() == generate(document)

    broken = tmp_path / "broken.jsonc"
    broken.write_text(json.dumps({**document, "ledgerEntries": {"types": [
        {"type": "t", "lines": [{"key": "a", "account": {"path": "asset/nowhere"},
                                 "amount": "{{x}}"}]}]}}))
    r = subprocess.run([sys.executable, "-m", "api.cli", "codegen", "--schema", str(broken),
                        "--out", str(tmp_path / "broken_client.py")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "ledgerEntries.types[0]" in r.stderr and "no client written" in r.stderr
    assert not (tmp_path / "broken_client.py").exists()


def test_posting_through_generated_clients(api, full_client, db, unique, tmp_path):
    schemas = seed_schemas()
    link = unique("stripe")
    config = stripe_config(link)
    fake = FakeStripe().start()
    try:
        _post_seed001(api, full_client, db, unique, tmp_path, schemas["seed001_client"],
                      link, config, fake)
    finally:
        fake.stop()
    _post_seed002(api, full_client, db, unique, tmp_path, schemas["seed002_client"])
    _post_custom_link(api, full_client, db, unique, tmp_path)


def _client_options(api, creds, ledger):
    return dict(client_id=creds.client_id, client_secret=creds.client_secret,
                api_url=api.url, auth_url=api.token_url, ledger_ik=ledger)


def _post_seed001(api, creds, db, unique, tmp_path, document, link, config, fake):
    ledger = unique("codegen-001")
    service.configure_stripe(db, config, ledger_ik=ledger, charge_entry_type="",
                             fee_entry_type="", api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
    document = json.loads(json.dumps(document).replace("${STRIPE_LINK_ID}", link))
    document["key"] = unique("codegen-001")
    path = tmp_path / "seed001_client.py"
    path.write_text(generate(document))
    generated = load(path)

    async def main():
        async with generated.Client(**_client_options(api, creds, ledger)) as client:
            await client.store_schema(document)
            await client.create_ledger(ledger, "codegen 001", document["key"])
            first = await client.deposit_entry(idemp_key="d1", user_id="ann", cents=1000)
            assert first.entry.type == "DepositEntry" and not first.is_ik_replay
            await client.transfer_entry(idemp_key="t1", from_id="ann", to_id="ben", cents=300)
            with pytest.raises(BadRequestError) as info:
                await client.transfer_entry(idemp_key="t2", from_id="ann", to_id="ben",
                                            cents=701)
            assert info.value.code == "condition_failed"
            made = fake.add_charge(999, metadata={"user_id": "ben"})
            service.stripe_backfill(db, config, datetime.now(timezone.utc) - timedelta(days=1),
                                    client=fake.client())
            charge = await client.stripe_charge_entry(external_ref=made["charge"]["id"],
                                                      user_id="ben")
            assert charge.entry.type == "StripeChargeEntry"
            assert sorted(line.amount for line in charge.lines) == [999, 999]

    asyncio.run(main())
    with generated.SyncClient(**_client_options(api, creds, ledger)) as client:
        again = client.deposit_entry(idemp_key="d1", user_id="ann", cents=1000)
        assert again.is_ik_replay
    wallet = "liability/wallets/wallet:{}"
    assert own(db, ledger, wallet.format("ann")) == 700
    assert own(db, ledger, wallet.format("ben")) == 300 + 999


def _post_seed002(api, creds, db, unique, tmp_path, document):
    ledger = unique("codegen-002")
    document = dict(document, key=unique("codegen-002"))
    path = tmp_path / "seed002_client.py"
    path.write_text(generate(document))
    generated = load(path)
    with generated.SyncClient(**_client_options(api, creds, ledger)) as client:
        client.store_schema(document)
        client.create_ledger(ledger, "codegen 002", document["key"])
        funded = client.user_funds_account(idemp_key="f1", user_id="testing-user",
                                           funding_amount=200)
        assert funded.entry.description == "Funding testing-user for 200."
        client.p2p_transfer(idemp_key="p1", from_user_id="testing-user", to_user_id="other",
                            transfer_amount=50)
    assert own(db, ledger, "liabilities/users:other/available") == 50


def _post_custom_link(api, creds, db, unique, tmp_path):
    """Reconciling types of a custom link: the line's tx parameter defaults to
    external_ref, the amount comes from the tx."""
    link, ledger = unique("link"), unique("codegen-link")
    service.create_custom_link(db, link, "Test bank")
    service.sync_custom_accounts(db, {"id": link}, [{"externalId": "acct-op"},
                                                    {"externalId": "acct-hold"}])
    service.sync_custom_txs(db, {"id": link}, [
        {"account": {"linkId": link, "externalId": account}, "externalId": ext,
         "amount": str(amount), "posted": "2025-03-01T10:00:00Z"}
        for account, ext, amount in (("acct-op", "op-1", 400), ("acct-hold", "hold-1", 250))])
    document = bank_schema(unique("codegen-link"), link)
    path = tmp_path / "custom_link_client.py"
    path.write_text(generate(document))
    generated = load(path)
    with generated.SyncClient(**_client_options(api, creds, ledger)) as client:
        client.store_schema(document)
        client.create_ledger(ledger, "codegen link", document["key"])
        funded = client.fund(external_ref="op-1", user_id="cy")
        assert funded.entry.ik == "op-1" and sorted(l.amount for l in funded.lines) == [400, 400]
        via_link = client.fund_via_link(external_ref="hold-1", user_id="cy")
        assert via_link.entry.type == "fund_via_link"
        assert client.fund(external_ref="op-1", user_id="cy").is_ik_replay
    assert own(db, ledger, "liabilities/users:cy/available") == 650
