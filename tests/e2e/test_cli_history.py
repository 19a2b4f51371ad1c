"""History commands of the `ledger` CLI in subprocesses against the running app:
reverse-ledger-entry (and its replay), balance --at, entries with filters and pages."""
from __future__ import annotations

import json

from tests.e2e.test_cli import WALLET, cli_env, ledger, logged_in  # noqa: F401 (fixtures)


def test_reverse_balance_at_and_entries(logged_in, unique):
    env, home, _ = logged_in
    key = unique("cli-history")
    ledger_ik = unique("cli-history-ledger")
    schema = home / "history-wallet.jsonc"
    schema.write_text(WALLET.read_text().replace('"key": "wallet"', f'"key": "{key}"', 1))
    ledger(env, "store-schema", "--path", str(schema))
    ledger(env, "create-ledger", "--ik", ledger_ik, "--name", "CLI history", "--schema", key)

    def post(ik, amount, posted):
        return json.loads(ledger(env, "add-ledger-entry", "--ledger", ledger_ik, "--type",
                                 "deposit", "--ik", ik, "-p", "user_id=ana", "-p",
                                 f"amount={amount}", "--posted", posted, "--tag", "src=cli",
                                 "--json").stdout)

    first = post("h-1", 100, "2025-03-01T09:00:00Z")
    post("h-2", 40, "2025-03-02T09:00:00Z")
    path = "liabilities/users:ana/available"

    def balance(*extra):
        return json.loads(ledger(env, "balance", path, "--ledger", ledger_ik, "--json",
                                 *extra).stdout)

    at_day1 = balance("--at", "2025-03-01")
    assert at_day1["at"] == "2025-03-01"
    assert at_day1["balances"] == [{"currency": "USD", "own": "100", "child": "0",
                                    "balance": "100"}]
    assert balance("--at", "2025-03-02T09:00:00Z")["balances"][0]["own"] == "140"
    assert balance("--at", "2025-02")["balances"][0]["own"] == "0"
    human = ledger(env, "balance", path, "--ledger", ledger_ik, "--at", "2025-03-01")
    assert "at 2025-03-01" in human.stdout and "100" in human.stdout
    bad = ledger(env, "balance", path, "--ledger", ledger_ik, "--at", "March", check=1)
    assert "invalid_input" in bad.stderr

    reversed_ = json.loads(ledger(env, "reverse-ledger-entry", "--id", first["id"],
                                  "--json").stdout)
    assert reversed_["isIkReplay"] is False
    assert reversed_["reversedLedgerEntry"]["reversedBy"] == reversed_["reversingLedgerEntry"]["id"]
    assert [l["amount"] for l in reversed_["reversingLedgerEntry"]["lines"]] == ["-100", "-100"]
    replay = ledger(env, "reverse-ledger-entry", "--ik", "h-1", "--ledger", ledger_ik)
    assert "replay: already reversed" in replay.stdout
    assert balance()["balances"][0]["own"] == "40"
    assert balance("--at", "2025-03-01")["balances"][0]["own"] == "0"
    assert "entry_not_found" in ledger(env, "reverse-ledger-entry", "--id", "999999999",
                                       check=1).stderr
    assert ledger(env, "reverse-ledger-entry", "--ik", "h-1", check=2).returncode == 2

    listed = json.loads(ledger(env, "entries", "--ledger", ledger_ik, "--json").stdout)
    assert [e["ik"] for e in listed] == ["h-2"]
    everything = json.loads(ledger(env, "entries", "--ledger", ledger_ik, "--reversed", "all",
                                   "--json").stdout)
    assert sorted(e["ik"] for e in everything) == ["h-1", "h-1", "h-2"]
    assert sum(1 for e in everything if e["reverses"]) == 1
    post("h-3", 5, "2025-03-03T09:00:00Z")
    paged = ledger(env, "entries", "--ledger", ledger_ik, "--first", "1", "--tag", "src=cli")
    assert "h-3" in paged.stdout and "more: --after" in paged.stdout
    cursor = paged.stdout.split("more: --after", 1)[1].split()[0]
    nxt = json.loads(ledger(env, "entries", "--ledger", ledger_ik, "--first", "1", "--after",
                            cursor, "--json").stdout)
    assert [e["ik"] for e in nxt] == ["h-2"]
    walked = json.loads(ledger(env, "entries", "--ledger", ledger_ik, "--first", "1", "--all",
                               "--posted", "2025-03", "--json").stdout)
    assert [e["ik"] for e in walked] == ["h-3", "h-2"]
