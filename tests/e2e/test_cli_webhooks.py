"""`ledger webhooks ...` in subprocesses: create (the secret printed once), list,
deliveries, redeliver, enable, delete, and refusals with their exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ledger import service
from ledger.service import EntryRequest
from ledger.settings import Settings
from tests.integration.helpers import new_ledger, seed000_schema
from tests.integration.webhook_receiver import Receiver, start_receiver
from tests.keys import SECRET_KEY


@pytest.fixture
def env(database_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update({"DATABASE_URL": database_url, "LEDGER_SECRET_KEY": SECRET_KEY.reveal(),
                "LEDGER_WEBHOOK_ALLOW_PRIVATE": "true", "LEDGER_STATE_DIR": str(tmp_path),
                "NO_COLOR": "1", "COLUMNS": "200"})
    return env


def ledger(env, *args, check: int | None = 0):
    r = subprocess.run([sys.executable, "-m", "api.cli", "webhooks", *args], env=env,
                       capture_output=True, text=True, timeout=120)
    if check is not None:
        assert r.returncode == check, (r.returncode, r.stdout, r.stderr)
    return r


def test_webhooks_commands(env, db, database_url, unique):
    receiver = Receiver()
    server = start_receiver(receiver)
    try:
        wallet = new_ledger(db, unique, seed000_schema(unique("cliwh")))
        made = json.loads(ledger(env, "create", "--url", receiver.url, "--event",
                                 "entry.posted", "--description", "cli", "--ledger", wallet,
                                 "--json").stdout)
        assert made["ledger_ik"] == wallet
        assert made["secret"].startswith("whsec_") and made["id"].startswith("we_")
        receiver.secret = made["secret"]
        plain = ledger(env, "create", "--url", receiver.url, "--event", "*")
        assert "secret: whsec_" in plain.stdout and "cannot be shown again" in plain.stderr
        other = plain.stdout.split("id:")[1].split()[0]

        listed = ledger(env, "list").stdout
        assert wallet in listed and made["id"] in listed and other in listed and made["secret"] not in listed

        service.add_ledger_entry(db, wallet, EntryRequest(
            ik="c1", type="deposit", parameters={"user_id": "cy", "amount": "3"}))
        config = Settings(database_url=database_url, secret_key=SECRET_KEY,
                          webhook_allow_private=True)
        deadline = time.monotonic() + 20
        while not receiver.delivered() and time.monotonic() < deadline:
            service.deliver_webhook_endpoint(db, config, made["id"])
            time.sleep(0.05)
        (got,) = receiver.delivered()
        assert got.verified

        log = ledger(env, "deliveries", made["id"]).stdout
        assert got.webhook_id in log and "attempt 1" in log and "200" in log
        again = ledger(env, "redeliver", made["id"], got.webhook_id).stdout
        assert "ok" in again and got.webhook_id in again
        assert [r.webhook_id for r in receiver.delivered()] == [got.webhook_id] * 2
        manual = json.loads(ledger(env, "deliveries", made["id"], "--json").stdout)
        assert [d["manual"] for d in manual] == [True, False]

        assert made["id"] in ledger(env, "enable", made["id"]).stdout
        assert "Deleted" in ledger(env, "delete", made["id"]).stdout
        ledger(env, "delete", other)
        assert made["id"] not in ledger(env, "list").stdout

        refused = ledger(env, "create", "--url", "ftp://example.com", "--event",
                         "entry.posted", check=1)
        assert "url" in refused.stderr and "http" in refused.stderr
        unknown = ledger(env, "create", "--url", receiver.url, "--event", "entry.nope",
                         check=1)
        assert "events" in unknown.stderr
        assert "no webhook endpoint" in ledger(env, "delete", "we_999999999", check=1).stderr
    finally:
        server.shutdown()
