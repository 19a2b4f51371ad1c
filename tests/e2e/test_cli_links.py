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


def test_link_commands(env, tmp_path, unique):
    link = env["BANK_LINK_ID"]
    ledger_ik = unique("cli-ledger")
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    ledger(env, "store-schema", "--path", str(tmp_path / "schema.json"))
    ledger(env, "create-ledger", "--ik", ledger_ik, "--name", "Bank", "--schema", env["SCHEMA_KEY"])
    made = json.loads(ledger(env, "link", "create", "--ik", link, "--name", "Bank", "--json").stdout)
    assert made["id"] == link and made["isIkReplay"] is False
    (tmp_path / "accounts.json").write_text(json.dumps([{"externalId": "${BANK_ACCOUNT_ID}", "name": "Operating"}]))
    ledger(env, "link", "sync-accounts", "--link", link, "--file", str(tmp_path / "accounts.json"))
    txs = {"txs": [{"account": {"linkId": link, "externalId": "bank-account-1"},
                    "externalId": f"tx-{i}", "description": f"ACH {i}", "amount": str(100 * (i + 1)),
                    "posted": "2025-01-0%dT12:00:00Z" % (i + 1)} for i in range(3)]}
    (tmp_path / "txs.json").write_text(json.dumps(txs))
    synced = json.loads(ledger(env, "link", "sync-txs", "--link", link, "--file",
                               str(tmp_path / "txs.json"), "--json").stdout)
    assert [t["externalId"] for t in synced["txs"]] == ["tx-0", "tx-1", "tx-2"]

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
