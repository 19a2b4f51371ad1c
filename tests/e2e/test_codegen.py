"""``ledger codegen``: a typed client for every schema of the seed files (extracted from
the files themselves, tests/seed_schemas.py), deterministic, accepted by mypy --strict (and
wrong calls refused by it), and posting through the running API: every entry type of every
seed schema, the linked ones (seed 002/003's ``user_funds_account_via_link``, seed 000's
Stripe-linked deposit) through reconcileTx."""
from __future__ import annotations

import asyncio
import copy
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
from ledger_sdk.codegen import EntryType, generate, read_entry_types, snake_case
from tests.fakes.stripe_server import API_KEY, WEBHOOK_SECRET, FakeStripe
from tests.integration.helpers import own
from tests.integration.stripe_helpers import stripe_config
from tests.integration.test_reconcile_infer import bank_schema
from tests.seed_blocks import all_blocks
from tests.seed_schemas import BLOCKS, LINK, SNIPPET_CHARTS, every_seed_schema

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def stripe_wallet() -> dict:
    """Seed 001's wallet with the "external account link (e.g., Stripe)" the guide adds
    for ``reconcile_tx`` but does not show (tests/fixtures/seed001_wallet.jsonc)."""
    return json5.loads((FIXTURES / "seed001_wallet.jsonc").read_text())


# Seed 001 calls ``client.loan_disbursement_entry(idemp_key=tx_id, borrower_id=borrower_id,
# amount=amount, currency="USD")`` of a schema it does not show: one it fits.
LOAN = {"key": "seed001-loans", "chartOfAccounts": {"defaultCurrencyMode": "multi", "accounts": [
    {"key": "assets", "type": "asset", "children": [
        {"key": "cash"}, {"key": "loans", "children": [{"key": "borrower", "template": True}]}]}]},
    "ledgerEntries": {"types": [{
        "type": "LoanDisbursementEntry", "description": "Lend {{amount}} to {{borrower_id}}",
        "lines": [{"key": "cash_out", "account": {"path": "assets/cash"}, "amount": "-{{amount}}",
                   "currency": {"code": "{{currency}}"}},
                  {"key": "loan", "account": {"path": "assets/loans/borrower:{{borrower_id}}"},
                   "amount": "{{amount}}", "currency": {"code": "{{currency}}"}}]}]}}


def all_schemas() -> dict[str, dict]:
    """Module name -> schema: every seed schema, the Stripe wallet and the loan schema of
    seed 001."""
    schemas = {f"{name}_client": doc for name, doc in every_seed_schema().items()}
    schemas["seed001_stripe_client"] = stripe_wallet()
    schemas["seed001_loan_client"] = LOAN
    return schemas


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
    types = {et.type: et for et in read_entry_types(every_seed_schema()["seed003_block3"])}
    via_link = types["user_funds_account_via_link"]
    assert via_link.reconciled and via_link.tx_params == ["bank_transaction_id"]
    assert [(p.arg, p.annotation) for p in via_link.params] == [
        ("user_id", "str"), ("funding_amount", "str"), ("bank_transaction_id", "str | None")]
    # Names a Python keyword argument cannot be, and the base client's own methods.
    loan = read_entry_types(LOAN)[0]
    assert loan.method == "loan_disbursement_entry"
    assert [(p.arg, p.annotation) for p in loan.params] == [
        ("amount", "int"), ("borrower_id", "str"), ("currency", "str")]
    assert "currency: str, a currency code (USD)" in generate(LOAN)
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


def test_every_schema_block_of_the_seeds_is_covered():
    """A schema, a chart or an entry type in a seed file that no client is generated for
    fails here: the list grows with the seeds."""
    def schema_like(v) -> bool:
        if not isinstance(v, dict):
            return False
        if isinstance(v.get("schema"), dict):  # storeSchema variables
            return "chartOfAccounts" in v["schema"]
        return bool({"chartOfAccounts", "ledgerEntries", "type"} & set(v)
                    or "linkedAccount" in json.dumps(v))

    found = {(b.seed, b.index) for b in all_blocks() if b.kind == "json" and schema_like(b.value)}
    steps = {("000", 0), ("000", 1), ("000", 4), ("000", 6), ("001", 0), ("001", 1), ("002", 1)}
    assert found == steps | set(SNIPPET_CHARTS)
    assert len(every_seed_schema()) == 3 + 1 + 1 + len(SNIPPET_CHARTS)


def test_every_seed_schema_gives_a_deterministic_client_mypy_accepts(tmp_path):
    for name, document in all_schemas().items():
        source = generate(document)
        assert source == generate(json.loads(json.dumps(document)))
        (tmp_path / f"{name}.py").write_text(source)
    (tmp_path / "good_calls.py").write_text('''
from typing import Any

from seed001_wallet_client import Client, SyncClient
from seed001_stripe_client import Client as StripeClient
from seed000_wallet_v3_client import Client as ProcessorClient
from seed002_block13_client import SyncClient as ReconcilingClient
from seed002_block19_client import Client as RuntimeClient
from seed003_block3_client import Client as LinkedClient
from seed003_block2_client import Client as ChartOnlyClient
from seed001_loan_client import Client as LoanClient


async def wallet(client: Client, stripe: StripeClient, linked: LinkedClient,
                 processor: ProcessorClient, runtime: RuntimeClient,
                 chart_only: ChartOnlyClient, loans: LoanClient,
                 lines: list[dict[str, Any]]) -> int:
    result = await client.deposit_entry(idemp_key="tx123", user_id="user_1", cents=1000)
    await client.transfer_entry(idemp_key="t1", from_id="a", to_id="b", cents=5)
    await stripe.stripe_charge_entry(external_ref="ch_1", user_id="user_1")
    await linked.user_funds_account_via_link(external_ref="tx_1", user_id="u",
                                             funding_amount="200")
    await processor.deposit(external_ref="ch_2", user_id="u")
    await processor.transfer(idemp_key="t2", from_id="a", to_id="b", amount=5)
    await runtime.runtime_entry(idemp_key="r1", lines=lines)
    await chart_only.store_schema({"key": "k"})
    await loans.loan_disbursement_entry(idemp_key="tx_9", borrower_id="b", amount=5000,
                                        currency="USD")
    return result.lines[0].amount


def blocking(client: SyncClient, reconciling: ReconcilingClient) -> bool:
    reconciling.reconciliation_type(external_ref="tx_1234")
    return client.deposit_entry(idemp_key="tx123", user_id="user_1", cents=1000).is_ik_replay
''')
    good = mypy(tmp_path, *sorted(p.name for p in tmp_path.glob("*.py")))
    assert good.returncode == 0, good.stdout + good.stderr

    (tmp_path / "bad_calls.py").write_text('''
from seed001_wallet_client import Client
from seed002_block27_client import Client as LinkedClient


async def wallet(client: Client, linked: LinkedClient) -> None:
    await client.deposit_entry(idemp_key="tx123", user_id="user_1", cents="1000")
    await client.deposit_entry(idemp_key="tx124", cents=1000)
    await client.deposit_entry(idemp_key="tx125", user_id="u", cents=1, amount=1)
    await linked.user_funds_account_via_link(external_ref="tx_1", funding_amount="200")
''')
    bad = mypy(tmp_path, "bad_calls.py")
    assert bad.returncode == 1
    errors = [line for line in bad.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 4, bad.stdout
    assert "bad_calls.py:7:" in errors[0] and 'Argument "cents" to "deposit_entry"' in errors[0]
    assert "bad_calls.py:8:" in errors[1] and '"user_id"' in errors[1]
    assert "bad_calls.py:9:" in errors[2] and '"amount"' in errors[2]
    assert "bad_calls.py:10:" in errors[3] and '"user_id"' in errors[3]


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


# What the generic calls below send: a parameter the schema uses as an amount is 100, a
# name is "ann" except the receiving side of a transfer; a value only shown in the
# description, and a currency, are the texts below.
RECEIVERS = {"to_id": "ben", "to_user_id": "ben"}
TEXTS = {"funding_amount": "100", "currency": "USD"}

# The txs each reconciling schema needs, per external account (a tx of seed 002/003's
# "multiple Txs" type arrives in the operating account and leaves the holding one).
TXS = {
    "seed002_block13": [("bank-account-2", 100)],
    "seed002_block27": [("bank-account-1", 100)],
    "seed002_block30": [("bank-account-1", 100), ("bank-account-2", -100)],
    "seed003_block3": [("bank-account-1", 100)],
    "seed003_block6": [("bank-account-1", 100), ("bank-account-2", -100)],
}

# Refused by the schema's own rules, as they should be: withdrawing from an account nothing
# funded (seed 002 "Ledger Entry Template with conditions" is stored on its own).
REFUSED = {("seed002_block17", "user_withdraws_funds"): "condition_failed"}

# Balances after each schema's types were posted once, in the schema's order.
BALANCES = {
    "seed000_wallet_v1": {"liabilities/users:ann/available": 100},
    "seed000_wallet_v2": {"liabilities/users:ann/available": 0,
                          "liabilities/users:ben/available": 100},
    "seed000_wallet_v3": {"liabilities/users:ann/available": 899,
                          "liabilities/users:ben/available": 100},
    "seed001_wallet": {"liability/wallets/wallet:ann": 0, "liability/wallets/wallet:ben": 100},
    "seed002_quickstart": {"liabilities/users:ann/available": 0,
                           "liabilities/users:ben/available": 100},
    "seed002_block10": {"liabilities/users:ann/available": 0, "income/funding-fees": 100},
    "seed002_block13": {"bank": 100, "income": 100},
    "seed002_block18": {"liabilities/users:ann/available": -100,
                        "liabilities/users:ann/pending": 100},
    "seed002_block19": {"liabilities/users:test-user/available": 100},
    "seed002_block27": {"assets/operating": 100, "liabilities/users:ann/available": 100},
    "seed002_block30": {"assets/operating-bank-account": 100,
                        "assets/holding-bank-account": -100},
    "seed003_block3": {"assets/operating": 100, "liabilities/users:ann/available": 100},
    "seed001_loan": {"assets/loans/borrower:ann": 100, "assets/cash": -100},
}


def test_posting_through_generated_clients(api, full_client, db, unique, tmp_path):
    """Every entry type of every seed schema, once through the generated blocking client
    (and again: a replay), the linked ones through reconcileTx."""
    fake = FakeStripe().start()
    try:
        for name, document in [*every_seed_schema().items(), ("seed001_loan", LOAN)]:
            _post_every_type(api, full_client, db, unique, tmp_path, name, document, fake)
        link = unique("stripe")
        _post_seed001(api, full_client, db, unique, tmp_path, stripe_wallet(), link,
                      stripe_config(link), fake)
    finally:
        fake.stop()
    _post_custom_link(api, full_client, db, unique, tmp_path)


def _arguments(et: EntryType, tx: str | None) -> dict:
    kwargs: dict = {"external_ref": tx} if et.reconciled else {"idemp_key": f"{et.method}-1"}
    for p in et.params:
        if p.from_tx:
            continue
        if p.amount:
            kwargs[p.arg] = 100
        else:
            kwargs[p.arg] = TEXTS.get(p.name) or RECEIVERS.get(p.name, "ann")
    if et.runtime:  # seed 002's AddRuntimeLedgerEntry variables give the lines
        kwargs["lines"] = copy.deepcopy(BLOCKS[("002", 21)].value["entry"]["lines"])
    return kwargs


def _linked_to(db, unique, fake, name: str, document: dict, ledger: str) -> tuple[dict, str]:
    """The document with its links made this run's own, and the tx each reconciling entry
    type takes: a charge of the fake Stripe for a Stripe-linked account, else a tx of a
    custom link in the accounts ``TXS`` names."""
    text = json.dumps(document)
    if '"linkedAccount": "stripe"' in text:
        link = unique("stripe")
        config = stripe_config(link)
        service.configure_stripe(db, config, ledger_ik=ledger, charge_entry_type="",
                                 fee_entry_type="", api_key=API_KEY,
                                 webhook_secret=WEBHOOK_SECRET)
        charge = fake.add_charge(999, metadata={"user_id": "ann"})
        service.stripe_backfill(db, config, datetime.now(timezone.utc) - timedelta(days=1),
                                client=fake.client())
        return json.loads(text.replace('"linkedAccount": "stripe"',
                                       f'"linkedAccount": "{link}"')), charge["charge"]["id"]
    link, tx = unique("link"), unique("tx")
    if name in TXS:
        _custom_bank(db, link, [(account, tx, amount) for account, amount in TXS[name]])
    return json.loads(text.replace(json.dumps(LINK), json.dumps(link))), tx


def _custom_bank(db, link: str, txs: list[tuple[str, str, int]]) -> None:
    """A custom link whose external accounts hold ``txs``: (account, tx id, amount)."""
    service.create_custom_link(db, link, "Test bank")
    service.sync_custom_accounts(db, {"id": link}, [{"externalId": account} for account
                                                    in sorted({t[0] for t in txs})])
    service.sync_custom_txs(db, {"id": link}, [
        {"account": {"linkId": link, "externalId": account}, "externalId": ext,
         "amount": str(amount), "posted": "2025-03-01T10:00:00Z"}
        for account, ext, amount in txs])


def _post_every_type(api, creds, db, unique, tmp_path, name, document, fake):
    ledger = unique(name.replace("_", "-"))
    document, tx = _linked_to(db, unique, fake, name, document, ledger)
    document["key"] = unique(name.replace("_", "-"))
    path = tmp_path / f"{name}_client.py"
    path.write_text(generate(document))
    generated = load(path)
    types = read_entry_types(document)
    assert list(generated.ENTRY_TYPES) == [et.type for et in types]
    running: dict[str, int | None] = {}  # account -> runningBalance of its latest line
    with generated.SyncClient(**_client_options(api, creds, ledger)) as client:
        client.store_schema(document)
        client.create_ledger(ledger, name, document["key"])
        for et in types:
            method = getattr(client, et.method)
            kwargs = _arguments(et, tx)
            refused = REFUSED.get((name, et.type))
            if refused:
                with pytest.raises(BadRequestError) as info:
                    method(**kwargs)
                assert info.value.code == refused, (name, et.type)
                continue
            posted = method(**kwargs)
            assert (posted.entry.type, posted.is_ik_replay) == (et.type, False), name
            assert "{{" not in (posted.entry.description or ""), (name, posted.entry)
            if et.reconciled:
                assert posted.entry.ik == tx, name
            running.update({line.account_path: line.running_balance for line in posted.lines})
            assert method(**kwargs).is_ik_replay, (name, et.type)
    for path, balance in BALANCES.get(name, {}).items():
        assert own(db, ledger, path) == balance, (name, path)
        # Each entry posts after the one before: the latest line's running balance is the
        # balance (the SDK's line of an addLedgerEntry / reconcileTx result).
        assert running[path] == balance, (name, path, running)


def _client_options(api, creds, ledger):
    return dict(client_id=creds.client_id, client_secret=creds.client_secret,
                api_url=api.url, auth_url=api.token_url, ledger_ik=ledger)


def _post_seed001(api, creds, db, unique, tmp_path, document, link, config, fake):
    ledger = unique("codegen-001")
    service.configure_stripe(db, config, ledger_ik=ledger, charge_entry_type="",
                             fee_entry_type="", api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
    document = json.loads(json.dumps(document).replace("${STRIPE_LINK_ID}", link))
    document["key"] = unique("codegen-001")
    path = tmp_path / "seed001_stripe_client.py"
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


def _post_custom_link(api, creds, db, unique, tmp_path):
    """Reconciling types of a custom link: the line's tx parameter defaults to
    external_ref, the amount comes from the tx."""
    link, ledger = unique("link"), unique("codegen-link")
    _custom_bank(db, link, [("acct-op", "op-1", 400), ("acct-hold", "hold-1", 250)])
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
