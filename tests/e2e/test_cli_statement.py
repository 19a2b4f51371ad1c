"""`ledger statement` in a subprocess against the running app: an account's lines oldest
first with description, amount and resulting balance, as a table, JSON and CSV, for a
period, with a backdated and a reversed entry among them."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import json5

from ledger import service
from tests.e2e.test_cli import WALLET, cli_env, ledger, logged_in  # noqa: F401 (fixtures)
from tests.integration.test_history import post


def test_statement_table_json_csv_and_period(logged_in, db, unique):
    env, _, _ = logged_in
    # The books are made directly; what runs through the CLI is the statement.
    schema = json5.loads(WALLET.read_text())
    schema["key"] = unique("cli-statement")
    service.store_schema(db, schema)
    ledger_ik = unique("cli-statement-ledger")
    service.create_ledger(db, ledger_ik, "Statement", schema["key"])

    def at(text):
        return datetime.fromisoformat(text)

    post(db, ledger_ik, "deposit", at("2025-02-01T09:00:00+00:00"), user_id="ana", amount=1000)
    post(db, ledger_ik, "transfer", at("2025-02-10T12:30:00+00:00"),
         from_id="ana", to_id="bo", amount=250)
    post(db, ledger_ik, "deposit", at("2025-03-01T08:00:00+00:00"), user_id="ana", amount=40)
    post(db, ledger_ik, "deposit", at("2025-02-05T10:00:00+00:00"), user_id="ana", amount=5)
    wrong = post(db, ledger_ik, "deposit", at("2025-02-20T10:00:00+00:00"), user_id="ana",
                 amount=7)
    service.reverse_ledger_entry(db, id=wrong.entry.id)
    path = "liabilities/users:ana/available"

    every = json.loads(ledger(env, "statement", path, "--ledger", ledger_ik, "--json").stdout)
    got = [(x["posted"][:10], x["description"], x["amount"], x["balance"])
           for x in every["lines"]]
    assert got == [
        ("2025-02-01", "Fund ana for 1000", "1000", "1000"),
        ("2025-02-05", "Fund ana for 5", "5", "1005"),
        ("2025-02-10", "ana sends 250 to bo", "-250", "755"),
        ("2025-02-20", "Fund ana for 7", "7", "762"),
        ("2025-02-20", "Reversal of: Fund ana for 7", "-7", "755"),
        ("2025-03-01", "Fund ana for 40", "40", "795"),
    ]
    assert every["opening"] == {"USD": "0"} and every["closing"] == {"USD": "795"}

    february = json.loads(ledger(env, "statement", path, "--ledger", ledger_ik,
                                 "--period", "2025-02", "--json").stdout)
    assert [x["balance"] for x in february["lines"]] == ["1000", "1005", "755", "762", "755"]
    march = json.loads(ledger(env, "statement", path, "--ledger", ledger_ik, "--period",
                              "2025-03", "--json").stdout)
    assert march["opening"] == {"USD": "755"} and march["closing"] == {"USD": "795"}

    table = ledger(env, "statement", path, "--ledger", ledger_ik, "--period", "2025-02").stdout
    assert "ana sends 250 to bo" in table and "1005" in table
    assert "USD: opening 0, closing 755" in table

    rows = list(csv.DictReader(io.StringIO(ledger(env, "statement", path, "--ledger", ledger_ik,
                                                  "--csv").stdout)))
    assert [(r["amount"], r["balance"]) for r in rows] == [
        ("1000", "1000"), ("5", "1005"), ("-250", "755"), ("7", "762"), ("-7", "755"),
        ("40", "795")]
    assert rows[0]["posted"] == "2025-02-01T09:00:00+00:00"

    # Cut to the newest lines: the opening balance is the one before the first line shown.
    newest = ledger(env, "statement", path, "--ledger", ledger_ik, "--max-lines", "2", "--json")
    cut = json.loads(newest.stdout)
    assert [x["amount"] for x in cut["lines"]] == ["-7", "40"] and cut["truncated"]
    assert cut["opening"] == {"USD": "762"} and cut["closing"] == {"USD": "795"}
    assert "only the newest 2 lines" in newest.stderr
    assert json.loads(ledger(env, "statement", path, "--ledger", ledger_ik,
                             "--json").stdout)["truncated"] is False

    bad = ledger(env, "statement", path, "--ledger", ledger_ik, "--period", "Feb", check=1)
    assert "period" in bad.stderr
    empty = ledger(env, "statement", "liabilities/users:zed/available", "--ledger", ledger_ik)
    assert "no lines" in empty.stdout
