"""``ledger hold create|commit|void|show`` through the running API (the SDK): JSON and
table output, replays, typed refusals as a non-zero exit naming the code, usage errors."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.e2e.test_cli import cli_env, ledger, logged_in  # noqa: F401 (fixtures)
from tests.integration.helpers import new_ledger, post, seed000_schema

PAYER = "liabilities/users:payer/available"


@pytest.fixture
def wallet(db, unique):
    ik = new_ledger(db, unique, seed000_schema(unique("hold-cli")))
    post(db, ik, "deposit", ik="dep1", user_id="payer", amount="500")
    return ik


def test_hold_cli(logged_in, wallet):
    env, _, _ = logged_in
    expires = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()

    def create(ik, amount, check=0):
        return ledger(env, "hold", "create", "--ledger", wallet, "--type", "transfer",
                      "--ik", ik, "-p", "from_id=payer", "-p", "to_id=shop", "-p",
                      f"amount={amount}", "--expires-at", expires, "--json", check=check)

    made = json.loads(create("c1", 120).stdout)
    assert made["status"] == "pending" and made["entry"]["lines"] == []
    assert sorted(x["amount"] for x in made["heldLines"]) == ["-120", "120"]
    assert json.loads(create("c1", 120).stdout)["entry"]["isIkReplay"] is True
    too_big = create("c2", 400, check=None)
    assert too_big.returncode != 0 and "condition_failed" in too_big.stderr

    shown = ledger(env, "hold", "show", "--ik", "c1", "--ledger", wallet).stdout
    assert "pending" in shown and PAYER in shown and "-120" in shown
    done = json.loads(ledger(env, "hold", "commit", "--id", made["entry"]["id"],
                             "--amount", "70", "--json").stdout)
    assert done["status"] == "committed"
    assert sorted(x["amount"] for x in done["entry"]["lines"]) == ["-70", "70"]
    refused = ledger(env, "hold", "void", "--id", made["entry"]["id"], check=None)
    assert refused.returncode != 0 and "hold_committed" in refused.stderr

    other = json.loads(create("c3", 50).stdout)
    voided = ledger(env, "hold", "void", "--ik", "c3", "--ledger", wallet).stdout
    assert f"Voided hold {other['entry']['id']}" in voided and "voided" in voided
    assert json.loads(ledger(env, "hold", "show", "--id", other["entry"]["id"],
                             "--json").stdout)["status"] == "voided"
    usage = ledger(env, "hold", "void", "--ik", "c3", check=2)
    assert "--ik needs --ledger" in usage.stderr
    missing = ledger(env, "hold", "show", "--ik", "nope", "--ledger", wallet, check=None)
    assert missing.returncode != 0 and "entry_not_found" in missing.stderr
    outright = ledger(env, "hold", "show", "--ik", "dep1", "--ledger", wallet, check=None)
    assert outright.returncode != 0 and "hold_not_found" in outright.stderr
