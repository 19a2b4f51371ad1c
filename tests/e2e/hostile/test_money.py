"""Issue 12, "Money the schema did not mean to move": each hole, tried through the GraphQL
API as a client with an ordinary write token would, must be refused with nothing written."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.errors import SchemaError
from ledger.posting.engine import post_entries
from ledger.service import MAX_AMOUNT, EntryRequest
from tests.e2e.test_cli import cli_env, ledger as run_cli  # noqa: F401 (cli_env: a fixture)
from tests.integration.helpers import FIXTURES

ADD = """mutation($ik: SafeString, $entry: LedgerEntryInput!) {
  addLedgerEntry(ik: $ik, entry: $entry) {
    __typename
    ... on AddLedgerEntryResult { entry { id } lines { key amount } }
    ... on Error { code message }
  } }"""

ADD_MANY = """mutation($entries: [AddLedgerEntryInput!]!) {
  addLedgerEntries(entries: $entries) {
    __typename
    ... on AddLedgerEntriesResult { results { entry { ik } } }
    ... on Error { code message }
  } }"""

BALANCE = """query($a: LedgerAccountMatchInput!) {
  ledgerAccount(ledgerAccount: $a) { ownBalance } }"""


def wallet_document(key: str) -> dict:
    """Seed 000's wallet, plus a runtime entry type and types that declare their
    parameters."""
    text = (FIXTURES / "seed000_wallet.jsonc").read_text()
    doc = json.loads("\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
                     .replace("},\n        ]", "}\n        ]"))
    doc["key"] = key
    doc["chartOfAccounts"]["equity"] = {"type": "liability", "adjustments": {}}
    doc["ledgerEntries"]["types"] += [
        {"type": "manual", "description": "{{reason}}"},
        {"type": "capped_deposit", "parameters": {"amount": {"min": "1", "max": "100000"},
                                                  "note": {}},
         "lines": [
             {"key": "bank", "account": {"path": "assets/banks/user-cash"}, "amount": "{{amount}}"},
             {"key": "user", "account": {"path": "liabilities/users:{{user_id}}/available"},
              "amount": "{{amount}}"}]},
        {"type": "adjust", "parameters": {"delta": {"signed": True}},
         "lines": [
             {"key": "user", "account": {"path": "liabilities/users:{{user_id}}/available"},
              "amount": "{{delta}}"},
             {"key": "equity", "account": {"path": "equity/adjustments"},
              "amount": "-{{delta}}"}]},
    ]
    return doc


@pytest.fixture
def wallet(db, unique):
    doc = wallet_document(unique("hostile-wallet"))
    service.store_schema(db, doc)
    ik = unique("hostile-ledger")
    service.create_ledger(db, ik, "Hostile wallet", doc["key"])
    return ik


def add(gql, ledger, type_, parameters=None, *, ik=None, lines=None):
    entry = {"ledger": {"ik": ledger}, "type": type_, "parameters": parameters or {}}
    if lines is not None:
        entry["lines"] = lines
    r = gql(ADD, {"ik": ik or f"ik-{abs(hash(json.dumps(entry, sort_keys=True)))}", "entry": entry})
    # 400: a variable the schema's scalars refuse (Int96), with "errors" saying why.
    assert r.status_code == 200 or (r.status_code == 400 and "errors" in r.json()), r.text
    return r.json()


def result(body: dict) -> dict:
    assert "errors" not in body, body
    return body["data"]["addLedgerEntry"]


def balance(gql, ledger, path) -> int:
    r = gql(BALANCE, {"a": {"path": path, "ledger": {"ik": ledger}}})
    assert "errors" not in r.json(), r.text
    return int(r.json()["data"]["ledgerAccount"]["ownBalance"])


def user(name: str) -> str:
    return f"liabilities/users:{name}/available"


def entry_count(db, ledger) -> int:
    with db.transaction() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) FROM entries e JOIN ledgers l ON l.id = e.ledger_id "
            "WHERE l.ik = :l"), {"l": ledger}).scalar()


def refused(body: dict, code: str, field: str | None = None) -> dict:
    out = result(body)
    assert out["__typename"] == "BadRequestError", out
    assert out["code"] == code, out
    if field is not None:  # the field at fault leads the message
        assert out["message"].startswith(f"{field}:"), out
    return out


# ------------------------------------------------------------------ negative parameters

def test_negative_transfer_cannot_drain_another_user(gql, db, wallet):
    assert result(add(gql, wallet, "deposit", {"user_id": "alice", "amount": "500"}))[
        "__typename"] == "AddLedgerEntryResult"
    before = entry_count(db, wallet)
    # mallory "sends" -100 to alice: her own gte-0 postcondition would hold.
    out = refused(add(gql, wallet, "transfer", {"from_id": "mallory", "to_id": "alice",
                                                "amount": "-100"}),
                  "invalid_parameter", "entry.parameters.amount")
    assert "negative" in out["message"]
    refused(add(gql, wallet, "transfer", {"from_id": "mallory", "to_id": "alice",
                                          "amount": -100}), "invalid_parameter")
    refused(add(gql, wallet, "deposit", {"user_id": "mallory", "amount": "-100"}),
            "invalid_parameter", "entry.parameters.amount")
    assert balance(gql, wallet, user("alice")) == 500
    assert balance(gql, wallet, user("mallory")) == 0
    assert entry_count(db, wallet) == before


def test_a_negative_parameter_in_a_batch_refuses_the_batch(gql, db, wallet):
    entries = [{"ik": f"b{i}", "entry": {"ledger": {"ik": wallet}, "type": "deposit",
                                         "parameters": {"user_id": "bob", "amount": a}}}
               for i, a in enumerate(["5", "-5"])]
    r = gql(ADD_MANY, {"entries": entries}).json()
    assert r["data"]["addLedgerEntries"]["code"] == "invalid_parameter", r
    assert entry_count(db, wallet) == 0


def test_declared_parameters_bound_and_sign(gql, db, wallet):
    ok = result(add(gql, wallet, "adjust", {"user_id": "carol", "delta": "-7"}))
    assert ok["__typename"] == "AddLedgerEntryResult", ok
    assert balance(gql, wallet, user("carol")) == -7
    for amount in ("0", "100001", "-1"):
        refused(add(gql, wallet, "capped_deposit", {"user_id": "carol", "amount": amount}),
                "invalid_parameter", "entry.parameters.amount")
    # A declared parameter is accepted though no line uses it.
    ok = result(add(gql, wallet, "capped_deposit",
                    {"user_id": "carol", "amount": "100000", "note": "birthday"}))
    assert ok["__typename"] == "AddLedgerEntryResult", ok
    assert balance(gql, wallet, user("carol")) == 100000 - 7


def test_runtime_entries_keep_signed_lines(gql, wallet):
    lines = [{"key": "u", "account": {"path": user("dave")}, "amount": "-30"},
             {"key": "e", "account": {"path": "equity/adjustments"}, "amount": "30"}]
    ok = result(add(gql, wallet, "manual", {"reason": "correction"}, lines=lines))
    assert ok["__typename"] == "AddLedgerEntryResult", ok
    assert balance(gql, wallet, user("dave")) == -30


def test_declarations_are_checked_when_the_schema_is_stored(db, unique):
    bad = {
        "nope": ({"nope": {"min": "1"}}, "parameters.nope"),
        "unknown key": ({"amount": {"minimum": "1"}}, "parameters.amount.minimum"),
        "loose bound": ({"amount": {"min": "01"}}, "parameters.amount.min"),
        "min above max": ({"amount": {"min": "9", "max": "1"}}, "parameters.amount"),
        "negative min, unsigned": ({"amount": {"min": "-1"}}, "parameters.amount.min"),
        "signed name": ({"user_id": {"signed": True}}, "parameters.user_id"),
    }
    for what, (declared, path) in bad.items():
        doc = wallet_document(unique("bad-decl"))
        doc["ledgerEntries"]["types"][0]["parameters"] = declared
        with pytest.raises(SchemaError) as info:
            service.store_schema(db, doc)
        assert [p for p, _ in info.value.issues] == [f"ledgerEntries.types[0].{path}"], (
            what, info.value.issues)


# ------------------------------------------------------------------------ loose amounts

@pytest.mark.parametrize("amount", [" 250", "250 ", "+250", "00250", "-0", "250\n"])
def test_loose_amount_text_is_refused(gql, db, wallet, amount):
    refused(add(gql, wallet, "deposit", {"user_id": "erin", "amount": amount}),
            "invalid_amount", "entry.parameters.amount")
    lines = [{"key": "u", "account": {"path": user("erin")}, "amount": amount},
             {"key": "e", "account": {"path": "equity/adjustments"}, "amount": "250"}]
    body = add(gql, wallet, "manual", {"reason": "x"}, lines=lines)
    # An Int96 variable the scalar refuses is a request error; either way, nothing posts.
    if "errors" in body:
        assert "invalid_amount" in json.dumps(body["errors"])
    else:
        refused(body, "invalid_amount")
    assert entry_count(db, wallet) == 0


# ------------------------------------------------------------------- look-alike accounts

@pytest.mark.parametrize("name", ["alice\n", "ali\u200bce", "alice\u00a0", "alice\u2028",
                                  "\u2029alice", "ali\x7fce", "alice\u202e"])
def test_look_alike_account_names_are_refused(gql, db, wallet, name):
    assert result(add(gql, wallet, "deposit", {"user_id": "alice", "amount": "1"}))[
        "__typename"] == "AddLedgerEntryResult"
    refused(add(gql, wallet, "deposit", {"user_id": name, "amount": "1"}),
            "invalid_parameter", "entry.parameters.user_id")
    lines = [{"key": "u", "account": {"path": user(name)}, "amount": "1"},
             {"key": "e", "account": {"path": "equity/adjustments"}, "amount": "-1"}]
    refused(add(gql, wallet, "manual", {"reason": "x"}, lines=lines), "invalid_input",
            "entry.lines[0].account.path")
    with db.transaction() as conn:
        paths = conn.execute(sa.text(
            "SELECT a.path FROM accounts a JOIN ledgers l ON l.id = a.ledger_id "
            "WHERE l.ik = :l AND a.path LIKE 'liabilities/users:%'"), {"l": wallet}).scalars().all()
    assert paths == [user("alice")]


# ---------------------------------------------------------- balances past the wire type

def test_no_balance_past_the_range_of_amounts(gql, db, wallet):
    top = str(MAX_AMOUNT)
    assert result(add(gql, wallet, "deposit", {"user_id": "frank", "amount": top}))[
        "__typename"] == "AddLedgerEntryResult"
    out = refused(add(gql, wallet, "deposit", {"user_id": "frank", "amount": "1"}),
                  "balance_out_of_range")
    assert "beyond the range of amounts" in out["message"]
    # The bank's balance too: another user's deposit would take it past the bound.
    refused(add(gql, wallet, "deposit", {"user_id": "grace", "amount": top}),
            "balance_out_of_range")
    assert balance(gql, wallet, user("frank")) == MAX_AMOUNT
    assert balance(gql, wallet, user("grace")) == 0
    assert balance(gql, wallet, "assets/banks/user-cash") == MAX_AMOUNT
    assert entry_count(db, wallet) == 1
    assert service.audit(db, wallet) == []


def test_out_of_range_refuses_that_entry_alone_for_workers(db, wallet):
    """The workers' mode (refusals="report"): the entry that would pass the bound is
    refused in its place, the others of the batch post."""
    requests = [EntryRequest(ik=f"w{i}", type="deposit",
                             parameters={"user_id": "heidi", "amount": a})
                for i, a in enumerate(["10", str(MAX_AMOUNT), "20"])]
    with db.transaction() as conn:
        results = post_entries(conn, service.load_ledger(conn, wallet), requests,
                               refusals="report", detail=False)
    assert [getattr(r, "code", "posted") for r in results] == [
        "posted", "balance_out_of_range", "posted"]
    assert service.account_balances(db, wallet, user("heidi")).own == {"USD": 30}
    assert entry_count(db, wallet) == 2
    assert service.audit(db, wallet) == []


# --------------------------------------------------------------- parameters nobody uses

def test_unused_parameters_are_refused(gql, db, wallet):
    out = refused(add(gql, wallet, "deposit", {"user_id": "ivan", "amount": "5",
                                               "memo": "x" * 100_000}),
                  "invalid_parameter", "entry.parameters.memo")
    assert len(out["message"]) < 500
    refused(add(gql, wallet, "manual", {"reason": "r", "extra": "1"}, lines=[
        {"key": "u", "account": {"path": user("ivan")}, "amount": "1"},
        {"key": "e", "account": {"path": "equity/adjustments"}, "amount": "-1"}]),
        "invalid_parameter", "entry.parameters.extra")
    assert entry_count(db, wallet) == 0
    # A parameter used only in a description is used.
    ok = result(add(gql, wallet, "manual", {"reason": "r"}, lines=[
        {"key": "u", "account": {"path": user("ivan")}, "amount": "1"},
        {"key": "e", "account": {"path": "equity/adjustments"}, "amount": "-1"}]))
    assert ok["__typename"] == "AddLedgerEntryResult", ok


# -------------------------------------------------------- audit: broken schema conditions

def test_audit_reports_a_balance_that_breaks_a_guarding_condition(gql, db, wallet, cli_env):  # noqa: F811
    assert result(add(gql, wallet, "deposit", {"user_id": "judy", "amount": "50"}))[
        "__typename"] == "AddLedgerEntryResult"
    assert service.audit(db, wallet) == []
    with db.transaction() as conn:  # behind the engine's back, lines and balance alike
        conn.execute(sa.text(
            "UPDATE lines SET amount = -50, balance_after = -50 WHERE account_id = "
            "(SELECT id FROM accounts WHERE path = :p AND ledger_id = "
            " (SELECT id FROM ledgers WHERE ik = :l))"), {"p": user("judy"), "l": wallet})
        conn.execute(sa.text(
            "UPDATE balances SET own = -50 WHERE account_id = "
            "(SELECT id FROM accounts WHERE path = :p AND ledger_id = "
            " (SELECT id FROM ledgers WHERE ik = :l))"), {"p": user("judy"), "l": wallet})
    broken = [p for p in service.audit(db, wallet) if p.check == "condition_broken"]
    assert len(broken) == 1, broken
    detail = broken[0].detail
    for part in (user("judy"), "USD", "-50", "gte 0", "transfer"):
        assert part in detail, detail
    env, _ = cli_env
    shown = run_cli(env, "audit", "--ledger", wallet, check=1)
    assert f"condition_broken: account {user('judy')} USD" in shown.stderr
