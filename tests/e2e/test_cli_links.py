"""`ledger link ...` and `ledger store-schema` with a linkedAccount in the seeds' ${ENV_VAR}
form, in subprocesses against the running app."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCHEMA = {
    "key": "${SCHEMA_KEY}",
    "chartOfAccounts": {"accounts": [
        {"key": "assets-root", "name": "Assets", "type": "asset", "children": [{
            "key": "operating", "name": "Operating Bank",
            "linkedAccount": {"linkId": "${BANK_LINK_ID}", "externalId": "${BANK_ACCOUNT_ID}"}}]},
        {"key": "liabilities", "type": "liability", "children": [
            {"key": "users", "template": True}]}]},
    "ledgerEntries": {"types": [{
        "type": "user_funds_account_via_link",
        "lines": [
            {"account": {"path": "assets-root/operating"}, "key": "funds_arrive_in_bank",
             "tx": {"externalId": "{{bank_transaction_id}}"}},
            {"account": {"path": "liabilities/users:{{user_id}}"}, "key": "increase_user_balance"}]}]},
}


@pytest.fixture
def env(api, full_client, tmp_path, unique):
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    base.update({"LEDGER_API_URL": api.url, "LEDGER_CLIENT_ID": full_client.client_id,
                 "LEDGER_CLIENT_SECRET": full_client.client_secret,
                 "LEDGER_CONFIG": str(tmp_path / "config.json"), "NO_COLOR": "1",
                 "COLUMNS": "200", "SCHEMA_KEY": unique("cli-bank"),
                 "BANK_LINK_ID": unique("cli-link"), "BANK_ACCOUNT_ID": "bank-account-1"})
    return base


def ledger(env, *args, check: int | None = 0):
    r = subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, capture_output=True,
                       text=True, timeout=120)
    if check is not None:
        assert r.returncode == check, (r.returncode, r.stdout, r.stderr)
    return r


def _bank(env, tmp_path, unique, schema: dict, txs: int) -> str:
    """A ledger of ``schema`` whose operating account mirrors a synced bank account holding
    ``txs`` txs tx-0, tx-1, ...; returns the ledger's ik."""
    link = env["BANK_LINK_ID"]
    ledger_ik = unique("cli-ledger")
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    ledger(env, "store-schema", "--path", str(tmp_path / "schema.json"))
    ledger(env, "create-ledger", "--ik", ledger_ik, "--name", "Bank", "--schema", env["SCHEMA_KEY"])
    made = json.loads(ledger(env, "link", "create", "--ik", link, "--name", "Bank", "--json").stdout)
    assert made["id"] == link and made["isIkReplay"] is False
    (tmp_path / "accounts.json").write_text(json.dumps([{"externalId": "${BANK_ACCOUNT_ID}", "name": "Operating"}]))
    ledger(env, "link", "sync-accounts", "--link", link, "--file", str(tmp_path / "accounts.json"))
    synced = {"txs": [{"account": {"linkId": link, "externalId": "bank-account-1"},
                       "externalId": f"tx-{i}", "description": f"ACH {i}", "amount": str(100 * (i + 1)),
                       "posted": "2025-01-0%dT12:00:00Z" % (i + 1)} for i in range(txs)]}
    (tmp_path / "txs.json").write_text(json.dumps(synced))
    listed = json.loads(ledger(env, "link", "sync-txs", "--link", link, "--file",
                               str(tmp_path / "txs.json"), "--json").stdout)
    assert [t["externalId"] for t in listed["txs"]] == [f"tx-{i}" for i in range(txs)]
    return ledger_ik


def test_link_commands(env, tmp_path, unique):
    link = env["BANK_LINK_ID"]
    ledger_ik = _bank(env, tmp_path, unique, SCHEMA, 3)

    def unreconciled():
        return [t["externalId"] for t in json.loads(ledger(
            env, "link", "unreconciled", "--ledger", ledger_ik, "--path", "assets-root/operating",
            "--json").stdout)["txs"]]

    assert unreconciled() == ["tx-0", "tx-1", "tx-2"]
    args = ["link", "reconcile-tx", "--ledger", ledger_ik, "--type", "user_funds_account_via_link",
            "-p", "bank_transaction_id=tx-1", "-p", "user_id=amy", "--json"]
    first = json.loads(ledger(env, *args).stdout)
    assert first["ik"] == "tx-1" and first["isIkReplay"] is False
    assert json.loads(ledger(env, *args).stdout)["isIkReplay"] is True
    assert unreconciled() == ["tx-0", "tx-2"]

    (tmp_path / "delete.json").write_text(json.dumps([
        {"account": {"linkId": link, "externalId": "bank-account-1"}, "externalId": "tx-2"}]))
    ledger(env, "link", "delete-txs", "--link", link, "--file", str(tmp_path / "delete.json"))
    refused = ledger(env, "link", "reconcile-tx", "--ledger", ledger_ik, "--type",
                     "user_funds_account_via_link", "-p", "bank_transaction_id=tx-2",
                     "-p", "user_id=amy", check=1)
    assert "tx_deleted" in refused.stderr
    assert unreconciled() == ["tx-0"]


def test_reconcile_tx_without_type_lets_the_server_choose(env, tmp_path, unique):
    """``--type`` is optional, as in the API: the server picks the one entry type whose
    linked line can take the tx and the parameters given; otherwise the error names them."""
    schema = json.loads(json.dumps(SCHEMA))
    via_link = schema["ledgerEntries"]["types"][0]
    # The same lines, told apart only by a parameter their descriptions show.
    for name in ("user_refund_via_link", "user_gift_via_link"):
        schema["ledgerEntries"]["types"].append(
            dict(via_link, type=name, description=name + " {{user_id}}: {{reason}}"))
    ledger_ik = _bank(env, tmp_path, unique, schema, 3)
    base = ["link", "reconcile-tx", "--ledger", ledger_ik, "--json"]

    chosen = json.loads(ledger(env, *base, "--tx", "tx-0", "-p", "user_id=amy").stdout)
    assert (chosen["type"], chosen["ik"], chosen["isIkReplay"]) == (
        "user_funds_account_via_link", "tx-0", False)
    assert [line["amount"] for line in chosen["lines"]] == ["100", "100"]

    several = ledger(env, *base, "--tx", "tx-1", "-p", "user_id=amy", "-p", "reason=gift",
                     check=1)
    assert "entry_type_ambiguous" in several.stderr
    assert "user_gift_via_link, user_refund_via_link" in several.stderr
    none = ledger(env, *base, "--tx", "tx-1", "-p", "user_id=amy", "-p", "memo=x", check=1)
    assert "entry_type_not_found" in none.stderr
    for name in ("user_funds_account_via_link", "user_gift_via_link", "user_refund_via_link"):
        assert f"{name} does not take memo" in none.stderr
    untold = ledger(env, *base, "-p", "user_id=amy", check=1)
    assert "entry.type" in untold.stderr and "tx.externalId" in untold.stderr

    assert json.loads(ledger(env, *base, "--tx", "tx-0", "-p", "user_id=amy").stdout)[
        "isIkReplay"] is True
    unreconciled = json.loads(ledger(env, "link", "unreconciled", "--ledger", ledger_ik, "--path",
                                     "assets-root/operating", "--json").stdout)["txs"]
    assert [t["externalId"] for t in unreconciled] == ["tx-1", "tx-2"]
