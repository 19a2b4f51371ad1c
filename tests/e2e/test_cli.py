"""The `ledger` CLI in subprocesses: admin commands on the database, the others over HTTP
against the running app, with the exit codes scripts rely on."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

WALLET = Path(__file__).resolve().parent.parent / "fixtures" / "seed000_wallet.jsonc"


@pytest.fixture(scope="module")
def cli_env(database_url, tmp_path_factory):
    home = tmp_path_factory.mktemp("cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    # Its own state folder: a `ledger up` running on this machine is not this test's server.
    env.update({"DATABASE_URL": database_url, "LEDGER_CONFIG": str(home / "config.json"),
                "LEDGER_STATE_DIR": str(home / "state"), "NO_COLOR": "1", "COLUMNS": "200"})
    return env, home


def ledger(env, *args, check: int | None = 0):
    r = subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, capture_output=True,
                       text=True, timeout=120)
    if check is not None:
        assert r.returncode == check, (r.returncode, r.stdout, r.stderr)
    return r


@pytest.fixture(scope="module")
def logged_in(cli_env, api):
    env, home = cli_env
    created = json.loads(ledger(env, "api-client", "create", "--name", "cli test",
                                "--json").stdout)
    assert set(created) >= {"client_id", "client_secret"}
    r = ledger(env, "login", "--api-url", api.url, "--client-id", created["client_id"],
               "--client-secret", created["client_secret"])
    config = Path(env["LEDGER_CONFIG"])
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["client_id"] == created["client_id"]
    assert created["client_secret"] not in r.stdout + r.stderr
    return env, home, created


def test_store_post_balance(logged_in, unique):
    env, home, _ = logged_in
    key = unique("cli-wallet")
    ledger_ik = unique("cli-ledger")
    schema = home / "wallet.jsonc"
    text = WALLET.read_text().replace('"key": "wallet"', '"key": "${WALLET_KEY}"', 1)
    schema.write_text(text)

    missing = ledger(env, "store-schema", "--path", str(schema), check=1)
    assert "WALLET_KEY" in missing.stderr and "key" in missing.stderr

    env_with_key = dict(env, WALLET_KEY=key)
    stored = json.loads(ledger(env_with_key, "store-schema", "--path", str(schema),
                               "--json").stdout)
    assert stored["key"] == key and stored["version"] == 1
    human = ledger(env_with_key, "store-schema", "--path", str(schema))
    assert f"Stored schema {key} version 1" in human.stdout

    created = json.loads(ledger(env, "create-ledger", "--ik", ledger_ik, "--name", "CLI",
                                "--schema", key, "--json").stdout)
    assert created["ik"] == ledger_ik and created["isIkReplay"] is False

    posted = json.loads(ledger(env, "add-ledger-entry", "--ledger", ledger_ik, "--type",
                               "deposit", "--ik", "cli-dep-1", "-p", "user_id=alice",
                               "-p", "amount=250", "--tag", "source=cli", "--json").stdout)
    assert posted["isIkReplay"] is False
    assert [(l["account"], l["amount"]) for l in posted["lines"]] == [
        ("assets/banks/user-cash", "250"), ("liabilities/users:alice/available", "250")]
    assert posted["tags"] == {"source": "cli"}
    table = ledger(env, "add-ledger-entry", "--ledger", ledger_ik, "--type", "transfer",
                   "--ik", "cli-t-1", "--parameters",
                   '{"from_id": "alice", "to_id": "bob", "amount": "100"}')
    assert "debit_sender" in table.stdout and "-100" in table.stdout

    overdraft = ledger(env, "add-ledger-entry", "--ledger", ledger_ik, "--type", "transfer",
                       "--ik", "cli-t-2", "-p", "from_id=bob", "-p", "to_id=alice",
                       "-p", "amount=101", check=1)
    assert "condition_failed" in overdraft.stderr

    balance = json.loads(ledger(env, "balance", "liabilities/users:alice/available",
                                "--ledger", ledger_ik, "--json").stdout)
    assert balance["balances"] == [{"currency": "USD", "own": "150", "child": "0",
                                    "balance": "150"}]
    users = ledger(env, "balance", "liabilities/users", "--ledger", ledger_ik)
    assert "250" in users.stdout and "USD" in users.stdout

    entry = json.loads(ledger(env, "entries", "--ledger", ledger_ik, "--ik", "cli-t-1",
                              "--json").stdout)
    assert entry[0]["type"] == "transfer" and len(entry[0]["lines"]) == 2

    unknown = ledger(env, "balance", "assets", "--ledger", "no-such-ledger", check=1)
    assert "ledger_not_found" in unknown.stderr


def test_verify_schema_prints_paths(cli_env, tmp_path):
    env, _ = cli_env
    good = ledger(env, "verify-schema", "--path", str(WALLET))
    assert "valid" in good.stdout
    broken = tmp_path / "broken.jsonc"
    broken.write_text("""// an entry that posts to an account the chart does not have
    {
      "key": "broken",
      "chartOfAccounts": {"accounts": [{"key": "assets", "type": "asset"},
                                       {"key": "liabilities", "type": "liability"}]},
      "ledgerEntries": {"types": [{"type": "t", "lines": [
        {"key": "a", "account": {"path": "assets"}, "amount": "{{x}}"},
        {"key": "b", "account": {"path": "liabilities/nope"}, "amount": "{{x}}"},
      ]}]},
    }""")
    r = ledger(env, "verify-schema", "--path", str(broken), check=1)
    assert "ledgerEntries.types[0].lines[1].account.path" in r.stdout
    assert "liabilities/nope" in r.stdout
    as_json = json.loads(ledger(env, "verify-schema", "--path", str(broken), "--json",
                                check=1).stdout)
    assert as_json["valid"] is False
    assert as_json["issues"][0]["path"] == "ledgerEntries.types[0].lines[1].account.path"
    not_json = tmp_path / "not.json"
    not_json.write_text("{ nope")
    assert "not valid JSON" in ledger(env, "verify-schema", "--path", str(not_json),
                                      check=1).stderr


def test_api_clients_and_tokens(logged_in, api):
    env, _, _ = logged_in
    made = json.loads(ledger(env, "api-client", "create", "--name", "short-lived",
                             "--scope", "read", "--json").stdout)
    listed = json.loads(ledger(env, "api-client", "list", "--json").stdout)
    mine = [c for c in listed if c["client_id"] == made["client_id"]]
    assert mine and mine[0]["scope"] == "read" and mine[0]["revoked"] is None
    assert "client_secret" not in mine[0] and made["client_secret"] not in json.dumps(listed)

    as_reader = dict(env, LEDGER_API_URL=api.url, LEDGER_CLIENT_ID=made["client_id"],
                     LEDGER_CLIENT_SECRET=made["client_secret"],
                     LEDGER_CONFIG=env["LEDGER_CONFIG"] + ".none")
    token = ledger(as_reader, "token").stdout.strip()
    assert token.count(".") == 2
    denied = ledger(as_reader, "create-ledger", "--ik", "nope", "--name", "n", "--schema", "s",
                    check=4)
    assert "insufficient_scope" in denied.stderr

    ledger(env, "api-client", "revoke", made["client_id"])
    assert ledger(as_reader, "token", check=4).returncode == 4
    assert ledger(env, "api-client", "revoke", "no-such-client", check=1).returncode == 1


def test_usage_errors(cli_env):
    env, home = cli_env
    no_login = dict(env, LEDGER_CONFIG=str(home / "absent.json"))
    r = ledger(no_login, "balance", "assets", "--ledger", "x", check=2)
    assert "ledger login" in r.stderr
    assert ledger(env, "store-schema", "--path", str(home / "missing.json"), check=2)
    unreachable = dict(no_login, LEDGER_API_URL="http://127.0.0.1:9", LEDGER_CLIENT_ID="a",
                       LEDGER_CLIENT_SECRET="b")
    assert ledger(unreachable, "token", check=3).returncode == 3


def test_audit(cli_env, db, unique):
    import sqlalchemy as sa

    from ledger import service
    from ledger.service import EntryRequest
    from tests.integration.helpers import new_ledger, seed000_schema

    env, _ = cli_env
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("cli-audit")))
    service.add_ledger_entries(db, ledger_ik, [
        EntryRequest(ik=f"fund-{u}", type="deposit",
                     parameters={"user_id": u, "amount": "500"}) for u in ("a", "b")])
    ok = ledger(env, "audit", "--ledger", ledger_ik)
    assert f"The books of {ledger_ik} hold." in ok.stdout
    assert json.loads(ledger(env, "audit", "--ledger", ledger_ik, "--json").stdout) == {
        "ledger": ledger_ik, "ok": True, "problems": []}

    with db.transaction() as conn:  # a balance edited behind the engine's back
        conn.execute(sa.text(
            "UPDATE balances SET own = own + 1 WHERE ledger_id = "
            "(SELECT id FROM ledgers WHERE ik = :l) AND own <> 0"), {"l": ledger_ik})
    bad = ledger(env, "audit", "--ledger", ledger_ik, check=1)
    assert "balance_not_sum_of_lines: account" in bad.stderr
    found = json.loads(ledger(env, "audit", "--ledger", ledger_ik, "--json", check=1).stdout)
    assert found["ok"] is False
    assert {p["check"] for p in found["problems"]} == {"balance_not_sum_of_lines"}

    missing = ledger(env, "audit", "--ledger", unique("no-such-ledger"), check=1)
    assert "ledger_not_found" in missing.stderr


def test_stripe_says_what_it_lacks_before_anything_else(cli_env, unique):
    env = {k: v for k, v in cli_env[0].items() if not k.startswith("STRIPE_")}
    link = unique("unconfigured")
    problems = ledger(env, "stripe", "problems", "--link-id", link, check=2)
    assert f"Stripe link {link} is not configured" in problems.stderr
    assert "STRIPE_API_KEY" in problems.stderr and "No problems" not in problems.stdout
    backfill = ledger(env, "stripe", "backfill", "--since", "2025-01-01", "--link-id", link,
                      check=2)
    # The message, and no progress bar drawn before it.
    assert backfill.stderr.startswith(f"error: Stripe link {link} is not configured")
    assert "Stripe backfill" not in backfill.stderr and "%" not in backfill.stderr
    assert "Redis" not in backfill.stderr + problems.stderr
