"""Ledger history over GraphQL, through the running app: balances at a moment and over a
period, reversals (and their replays), tag and group updates, entry / line / account lists
with keyset pages both ways, and group balances."""
from __future__ import annotations

import pytest

from ledger import service
from tests.e2e import seed002

ADD = """mutation($ik: SafeString!, $entry: LedgerEntryInput!) {
  addLedgerEntry(ik: $ik, entry: $entry) {
    __typename
    ... on AddLedgerEntryResult { isIkReplay entry { id ik hidden ikVersion } lines { id key amount type } }
    ... on Error { code message retryable }
  } }"""

# The shape of FRAGMENT's own reverseLedgerEntry document (its CLI sends this one).
REVERSE = """mutation ReverseLedgerEntry($id: ID!) {
  reverseLedgerEntry(id: $id) {
    __typename
    ... on ReverseLedgerEntryResult {
      reversingLedgerEntry {
        id ik created type description hidden
        reverses { id }
        lines { nodes { account { path } amount type } }
      }
      reversedLedgerEntry {
        id ik created type description hidden reversedAt
        reversedBy { id }
        lines { nodes { account { path } amount } }
      }
      isIkReplay
    }
    ... on Error { code message retryable }
  }
}"""

REVERSE_BY_MATCH = """mutation($e: LedgerEntryMatchInput!) {
  reverseLedgerEntry(ledgerEntry: $e) {
    __typename
    ... on ReverseLedgerEntryResult { isIkReplay reversedLedgerEntry { id } reversingLedgerEntry { id } }
    ... on Error { code message retryable }
  } }"""

UPDATE = """mutation($e: LedgerEntryMatchInput!, $u: UpdateLedgerEntryInput!) {
  updateLedgerEntry(ledgerEntry: $e, update: $u) {
    __typename
    ... on UpdateLedgerEntryResult {
      entry { id tags { key value } groups { key value } }
      change { id changed tagsBefore { key value } tagsAfter { key value }
               groupsBefore { key value } groupsAfter { key value } }
    }
    ... on Error { code message retryable }
  } }"""

ACCOUNT = """query($a: LedgerAccountMatchInput!, $at: LastMoment, $period: Period!) {
  ledgerAccount(ledgerAccount: $a) {
    path
    ownBalance(at: $at) childBalance(at: $at) balance(at: $at)
    ownBalances(at: $at) { nodes { amount currency { code } } }
    ownBalanceChange(period: $period) childBalanceChange(period: $period)
    balanceChange(period: $period)
    balanceChanges(period: $period) { nodes { amount currency { code } } }
  } }"""

LINES = """query($a: LedgerAccountMatchInput!, $first: Int, $after: String, $last: Int,
                 $before: String, $filter: LedgerLinesFilter) {
  ledgerAccount(ledgerAccount: $a) {
    lines(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
      nodes { id amount type posted key account { path } currency { code } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  } }"""

ENTRIES = """query($l: LedgerMatchInput!, $filter: LedgerEntriesFilter, $account: LedgerAccountMatchInput,
                   $first: Int, $after: String, $last: Int, $before: String) {
  ledger(ledger: $l) {
    ledgerEntries(filter: $filter, account: $account, first: $first, after: $after,
                  last: $last, before: $before) {
      nodes { id ik type posted hidden tags { key value } lines { nodes { amount } } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  } }"""

GROUP = """query($l: LedgerMatchInput!, $key: String!, $value: String!) {
  ledgerEntryGroup(ledger: $l, key: $key, value: $value) {
    key value ledger { ik }
    balances { nodes { account { path } currency { code } ownBalance } }
    ledgerEntries { nodes { ik } pageInfo { hasNextPage } }
  } }"""


@pytest.fixture(scope="module")
def ledger_ik(db, unique):
    doc = seed002.store_schema_variables()["schema"]
    doc["key"] = unique("history-schema")
    service.store_schema(db, doc)
    ik = unique("history-ledger")
    service.create_ledger(db, ik, "History ledger", doc["key"])
    return ik


def data_of(r, field):
    assert r.status_code == 200, r.text
    body = r.json()
    assert "errors" not in body, body
    return body["data"][field]


def fund(gql, ledger, ik, user, amount, posted=None, **extra):
    entry = {"ledger": {"ik": ledger}, "type": "user_funds_account",
             "parameters": {"user_id": user, "funding_amount": str(amount)}, **extra}
    if posted is not None:
        entry["posted"] = posted
    result = data_of(gql(ADD, {"ik": ik, "entry": entry}), "addLedgerEntry")
    assert result["__typename"] == "AddLedgerEntryResult", result
    return result


def transfer(gql, ledger, ik, src, dst, amount, **extra):
    entry = {"ledger": {"ik": ledger}, "type": "p2p_transfer",
             "parameters": {"from_user_id": src, "to_user_id": dst,
                            "transfer_amount": str(amount)}, **extra}
    return data_of(gql(ADD, {"ik": ik, "entry": entry}), "addLedgerEntry")


def own_balance(gql, ledger, path) -> int:
    r = gql("query($a: LedgerAccountMatchInput!) { ledgerAccount(ledgerAccount: $a) { ownBalance } }",
            {"a": {"path": path, "ledger": {"ik": ledger}}})
    return int(data_of(r, "ledgerAccount")["ownBalance"])


def user(name):
    return f"liabilities/users:{name}/available"


# ------------------------------------------------------------------ balances in time

def test_balances_at_a_moment_and_over_a_period(gql, ledger_ik):
    fund(gql, ledger_ik, "at-1", "ada", 100, "2025-01-01T12:00:00Z")
    fund(gql, ledger_ik, "at-3", "ada", 50, "2025-01-03T12:00:00Z")
    fund(gql, ledger_ik, "at-2", "ada", 25, "2025-01-02T12:00:00Z")  # backdated

    def read(path, at, period):
        return data_of(gql(ACCOUNT, {"a": {"path": path, "ledger": {"ik": ledger_ik}},
                                     "at": at, "period": period}), "ledgerAccount")

    day1 = read(user("ada"), "2025-01-01", "2025-01-02")
    assert day1["ownBalance"] == "100" and day1["balance"] == "100"
    assert day1["ownBalances"]["nodes"] == [{"amount": "100", "currency": {"code": "USD"}}]
    assert day1["ownBalanceChange"] == "25" and day1["balanceChange"] == "25"
    assert read(user("ada"), "2025-01-02", "2025-01-03")["ownBalance"] == "125"
    assert read(user("ada"), "2025-01-03T11:59:59Z", "2025-01")["ownBalance"] == "125"
    end = read(user("ada"), "2025-01-03T12:00:00Z", "2025-01")
    assert end["ownBalance"] == "175" and end["ownBalanceChange"] == "175"
    assert end["balanceChanges"]["nodes"] == [{"amount": "175", "currency": {"code": "USD"}}]
    now = read(user("ada"), None, "2024")
    assert now["ownBalance"] == "175" and now["ownBalanceChange"] == "0"

    # A parent's child balance moves with its descendants, at every moment.
    parent = read("liabilities/users:ada", "2025-01-02", "2025-Q1")
    assert parent["ownBalance"] == "0" and parent["childBalance"] == "125"
    assert parent["balance"] == "125" and parent["childBalanceChange"] == "175"

    bad = gql(ACCOUNT, {"a": {"path": user("ada"), "ledger": {"ik": ledger_ik}},
                        "at": None, "period": "2025-13"})
    assert bad.status_code == 200
    error = bad.json()["errors"][0]
    assert error["extensions"]["code"] == "invalid_input" and "period" in error["message"]


def test_balance_at_follows_the_ledger_offset(gql, db, unique):
    doc = seed002.store_schema_variables()["schema"]
    doc["key"] = unique("offset-schema")
    service.store_schema(db, doc)
    east = unique("offset-ledger")
    service.create_ledger(db, east, "East", doc["key"], balance_utc_offset="+05:00")
    # 21:00 UTC on the 1st is already the 2nd at +05:00.
    fund(gql, east, "late", "bo", 40, "2025-01-01T21:00:00Z")
    q = """query($a: LedgerAccountMatchInput!) { ledgerAccount(ledgerAccount: $a) {
      day1: ownBalance(at: "2025-01-01") day2: ownBalance(at: "2025-01-02")
      change2: ownBalanceChange(period: "2025-01-02") } }"""
    got = data_of(gql(q, {"a": {"path": user("bo"), "ledger": {"ik": east}}}), "ledgerAccount")
    assert got == {"day1": "0", "day2": "40", "change2": "40"}


# ------------------------------------------------------------------ reversals

def test_reverse_ledger_entry_and_its_replay(gql, ledger_ik):
    posted = fund(gql, ledger_ik, "rev-1", "bea", 80, "2025-02-01T00:00:00Z")
    entry_id = posted["entry"]["id"]
    assert own_balance(gql, ledger_ik, user("bea")) == 80

    first = data_of(gql(REVERSE, {"id": entry_id}), "reverseLedgerEntry")
    assert first["__typename"] == "ReverseLedgerEntryResult" and first["isIkReplay"] is False
    reversed_, reversing = first["reversedLedgerEntry"], first["reversingLedgerEntry"]
    assert reversed_["id"] == entry_id and reversed_["hidden"] is True
    assert reversed_["reversedBy"] == {"id": reversing["id"]} and reversed_["reversedAt"]
    assert reversing["reverses"] == {"id": entry_id} and reversing["hidden"] is True
    assert reversing["ik"] == "rev-1"
    assert sorted((n["account"]["path"], n["amount"], n["type"])
                  for n in reversing["lines"]["nodes"]) == [
        ("assets/banks/user-cash", "-80", "credit"), (user("bea"), "-80", "debit")]
    assert own_balance(gql, ledger_ik, user("bea")) == 0

    again = data_of(gql(REVERSE, {"id": entry_id}), "reverseLedgerEntry")
    assert again["isIkReplay"] is True
    assert again["reversingLedgerEntry"]["id"] == reversing["id"]
    by_ik = data_of(gql(REVERSE_BY_MATCH, {"e": {"ik": "rev-1", "ledger": {"ik": ledger_ik}}}),
                    "reverseLedgerEntry")
    assert by_ik == {"__typename": "ReverseLedgerEntryResult", "isIkReplay": True,
                     "reversedLedgerEntry": {"id": entry_id},
                     "reversingLedgerEntry": {"id": reversing["id"]}}
    assert own_balance(gql, ledger_ik, user("bea")) == 0

    # The balance before the reversal's posted time is restored too.
    q = """query($a: LedgerAccountMatchInput!) { ledgerAccount(ledgerAccount: $a) {
      ownBalance(at: "2025-02-01T00:00:00Z") } }"""
    assert data_of(gql(q, {"a": {"path": user("bea"), "ledger": {"ik": ledger_ik}}}),
                   "ledgerAccount") == {"ownBalance": "0"}

    # Reposting under the ik makes a second version; both are listed.
    reposted = fund(gql, ledger_ik, "rev-1", "bea", 80, "2025-02-01T00:00:00Z")
    assert reposted["isIkReplay"] is False and reposted["entry"]["id"] != entry_id
    assert reposted["entry"]["ikVersion"] == 2 and reposted["entry"]["hidden"] is False
    q = """query($e: LedgerEntryMatchInput!) { ledgerEntry(ledgerEntry: $e) {
      id ikVersion hidden reversedAt ikVersions { id ikVersion hidden } } }"""
    latest = data_of(gql(q, {"e": {"ik": "rev-1", "ledger": {"ik": ledger_ik}}}), "ledgerEntry")
    assert latest["id"] == reposted["entry"]["id"] and latest["ikVersion"] == 2
    assert latest["hidden"] is False and latest["reversedAt"] is None
    assert latest["ikVersions"] == [
        {"id": entry_id, "ikVersion": 1, "hidden": True},
        {"id": reposted["entry"]["id"], "ikVersion": 2, "hidden": False}]
    v1 = data_of(gql(q, {"e": {"ik": "rev-1", "ikVersion": 1, "ledger": {"ik": ledger_ik}}}),
                 "ledgerEntry")
    assert v1["id"] == entry_id and v1["reversedAt"]

    unknown = data_of(gql(REVERSE, {"id": "999999999"}), "reverseLedgerEntry")
    assert unknown["__typename"] == "BadRequestError"
    assert unknown["code"] == "entry_not_found" and unknown["retryable"] is False
    of_reversal = data_of(gql(REVERSE, {"id": reversing["id"]}), "reverseLedgerEntry")
    assert of_reversal["__typename"] == "BadRequestError"
    assert of_reversal["code"] == "entry_reversed"


def test_a_reversal_that_would_overdraw_is_refused(gql, ledger_ik):
    deposit = fund(gql, ledger_ik, "od-fund", "cy", 100)
    transfer(gql, ledger_ik, "od-spend", "cy", "dee", 100)
    refused = data_of(gql(REVERSE, {"id": deposit["entry"]["id"]}), "reverseLedgerEntry")
    assert refused["__typename"] == "BadRequestError"
    assert refused["code"] == "condition_failed" and user("cy") in refused["message"]
    assert own_balance(gql, ledger_ik, user("cy")) == 0
    assert own_balance(gql, ledger_ik, user("dee")) == 100
    q = """query($e: LedgerEntryMatchInput!) { ledgerEntry(ledgerEntry: $e) { hidden reversedBy { id } } }"""
    assert data_of(gql(q, {"e": {"id": deposit["entry"]["id"]}}), "ledgerEntry") == {
        "hidden": False, "reversedBy": None}


def test_forced_error_header_skips_the_reversal(gql, ledger_ik):
    posted = fund(gql, ledger_ik, "forced-rev", "fay", 30)
    r = gql(REVERSE, {"id": posted["entry"]["id"]},
            headers={"X-Fragment-Return-Error": "internalError"})
    forced = data_of(r, "reverseLedgerEntry")
    assert forced["__typename"] == "InternalError" and forced["retryable"] is True
    assert own_balance(gql, ledger_ik, user("fay")) == 30


def test_read_only_token_cannot_reverse_or_update(gql, ledger_ik, read_token):
    posted = fund(gql, ledger_ik, "ro-1", "gus", 20, tags=[{"key": "k", "value": "v"}])
    entry_id = posted["entry"]["id"]
    r = gql(REVERSE, {"id": entry_id}, token_=read_token)
    assert r.status_code == 403
    r = gql(UPDATE, {"e": {"id": entry_id}, "u": {"tags": [{"key": "k", "value": "w"}]}},
            token_=read_token)
    assert r.status_code == 403
    q = """query($e: LedgerEntryMatchInput!) { ledgerEntry(ledgerEntry: $e) { hidden tags { value } } }"""
    assert data_of(gql(q, {"e": {"id": entry_id}}, token_=read_token), "ledgerEntry") == {
        "hidden": False, "tags": [{"value": "v"}]}
    assert own_balance(gql, ledger_ik, user("gus")) == 20


# ------------------------------------------------------------------ updates

def test_update_ledger_entry_tags_and_groups(gql, ledger_ik):
    posted = fund(gql, ledger_ik, "upd-1", "hal", 10,
                  tags=[{"key": "source", "value": "api"}, {"key": "temp", "value": "x"}])
    entry_id = posted["entry"]["id"]
    updated = data_of(gql(UPDATE, {
        "e": {"ik": "upd-1", "ledger": {"ik": ledger_ik}},
        "u": {"tags": [{"key": "source", "value": "batch"}, {"key": "temp", "value": None}],
              "groups": [{"key": "statement", "value": "2025-03"}]}}), "updateLedgerEntry")
    assert updated["__typename"] == "UpdateLedgerEntryResult"
    assert updated["entry"]["tags"] == [{"key": "source", "value": "batch"}]
    assert updated["entry"]["groups"] == [{"key": "statement", "value": "2025-03"}]
    change = updated["change"]
    assert change["tagsBefore"] == [{"key": "source", "value": "api"}, {"key": "temp", "value": "x"}]
    assert change["tagsAfter"] == [{"key": "source", "value": "batch"}]
    assert change["groupsBefore"] == [] and change["groupsAfter"] == updated["entry"]["groups"]

    same = data_of(gql(UPDATE, {"e": {"id": entry_id},
                                "u": {"tags": [{"key": "source", "value": "batch"}]}}),
                   "updateLedgerEntry")
    assert same["change"] is None
    q = """query($e: LedgerEntryMatchInput!) { ledgerEntry(ledgerEntry: $e) { changes { id tagsAfter { key value } } } }"""
    changes = data_of(gql(q, {"e": {"id": entry_id}}), "ledgerEntry")["changes"]
    assert [c["id"] for c in changes] == [change["id"]]

    data_of(gql(REVERSE, {"id": entry_id}), "reverseLedgerEntry")
    frozen = data_of(gql(UPDATE, {"e": {"id": entry_id}, "u": {"tags": [{"key": "a", "value": "b"}]}}),
                     "updateLedgerEntry")
    assert frozen["__typename"] == "BadRequestError" and frozen["code"] == "entry_reversed"


# ------------------------------------------------------------------ lists

def test_lines_pages_forwards_and_backwards(gql, ledger_ik):
    for day in range(1, 13):
        fund(gql, ledger_ik, f"page-{day}", "ivy", day, f"2025-04-{day:02d}T08:00:00Z")
    account = {"path": user("ivy"), "ledger": {"ik": ledger_ik}}

    def page(**args):
        return data_of(gql(LINES, {"a": account, **args}), "ledgerAccount")["lines"]

    forward, after, pages = [], None, 0
    while True:
        got = page(first=5, after=after)
        forward += got["nodes"]
        pages += 1
        assert got["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not got["pageInfo"]["hasNextPage"]:
            break
        after = got["pageInfo"]["endCursor"]
    assert pages == 3
    assert [n["amount"] for n in forward] == [str(d) for d in range(12, 0, -1)]
    assert all(n["type"] == "credit" and n["key"] == "increase_user_balance" for n in forward)
    assert len({n["id"] for n in forward}) == 12

    backward, before = [], None
    while True:
        got = page(last=5, before=before)
        backward = got["nodes"] + backward
        if not got["pageInfo"]["hasPreviousPage"]:
            break
        assert got["pageInfo"]["hasNextPage"] is (before is not None)
        before = got["pageInfo"]["startCursor"]
    assert [n["id"] for n in backward] == [n["id"] for n in forward]

    filtered = page(filter={"posted": {"start": "2025-04-03T00:00:00Z", "end": "2025-04-05T00:00:00Z"}})
    assert [n["amount"] for n in filtered["nodes"]] == ["4", "3"]
    by_period = page(filter={"posted": {"period": "2025-04-12"}})
    assert [n["amount"] for n in by_period["nodes"]] == ["12"]

    too_big = gql(LINES, {"a": account, "first": 201})
    assert too_big.json()["errors"][0]["extensions"]["code"] == "invalid_input"
    bad_cursor = gql(LINES, {"a": account, "after": "not-a-cursor"})
    assert bad_cursor.json()["errors"][0]["extensions"]["code"] == "invalid_input"

    # The ledger's own line list, of an account pattern.
    q = """query($l: LedgerMatchInput!, $a: LedgerAccountMatchInput) {
      ledger(ledger: $l) { lines(account: $a, first: 3, filter: {currency: {code: "USD"}}) {
        nodes { amount account { path } } pageInfo { hasNextPage } } } }"""
    lines = data_of(gql(q, {"l": {"ik": ledger_ik},
                            "a": {"path": "liabilities/users:*/available"}}), "ledger")["lines"]
    assert len(lines["nodes"]) == 3 and lines["pageInfo"]["hasNextPage"] is True
    assert all(n["account"]["path"].startswith("liabilities/users:") for n in lines["nodes"])


def test_ledger_entries_with_filters_and_pages(gql, ledger_ik):
    for i in range(3):
        fund(gql, ledger_ik, f"tagged-{i}", "jo", 5, f"2025-05-0{i + 1}T00:00:00Z",
             tags=[{"key": "campaign", "value": "spring"}])
    reversed_ = fund(gql, ledger_ik, "tagged-rev", "jo", 5, "2025-05-09T00:00:00Z",
                     tags=[{"key": "campaign", "value": "spring"}])
    data_of(gql(REVERSE, {"id": reversed_["entry"]["id"]}), "reverseLedgerEntry")

    spring = {"tags": [{"key": "campaign", "value": "spring"}]}
    got = data_of(gql(ENTRIES, {"l": {"ik": ledger_ik}, "filter": spring}), "ledger")
    nodes = got["ledgerEntries"]["nodes"]
    assert [n["ik"] for n in nodes] == ["tagged-2", "tagged-1", "tagged-0"]
    assert all(n["hidden"] is False for n in nodes)

    only_reversed = data_of(gql(ENTRIES, {"l": {"ik": ledger_ik},
                                          "filter": dict(spring, reversed=True)}), "ledger")
    assert {n["ik"] for n in only_reversed["ledgerEntries"]["nodes"]} == {"tagged-rev"}
    assert len(only_reversed["ledgerEntries"]["nodes"]) == 2  # the entry and its reversal
    everything = data_of(gql(ENTRIES, {"l": {"ik": ledger_ik},
                                       "filter": dict(spring, reversed=None)}), "ledger")
    assert len(everything["ledgerEntries"]["nodes"]) == 5

    first = data_of(gql(ENTRIES, {"l": {"ik": ledger_ik}, "filter": spring, "first": 2}),
                    "ledger")["ledgerEntries"]
    assert [n["ik"] for n in first["nodes"]] == ["tagged-2", "tagged-1"]
    rest = data_of(gql(ENTRIES, {"l": {"ik": ledger_ik}, "filter": spring, "first": 2,
                                 "after": first["pageInfo"]["endCursor"]}), "ledger")["ledgerEntries"]
    assert [n["ik"] for n in rest["nodes"]] == ["tagged-0"]
    assert rest["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True,
                                "startCursor": rest["pageInfo"]["startCursor"],
                                "endCursor": rest["pageInfo"]["endCursor"]}

    by_type = data_of(gql(ENTRIES, {"l": {"ik": ledger_ik},
                                    "filter": {"type": ["p2p_transfer"]},
                                    "account": {"path": user("dee")}}), "ledger")
    assert [n["ik"] for n in by_type["ledgerEntries"]["nodes"]] == ["od-spend"]

    unknown = gql(ENTRIES, {"l": {"ik": ledger_ik}, "filter": {"posted": {"period": "May"}}})
    assert unknown.json()["errors"][0]["extensions"]["code"] == "invalid_input"


def test_ledger_accounts_pages(gql, ledger_ik):
    fund(gql, ledger_ik, "acct-1", "kim", 1)
    q = """query($l: LedgerMatchInput!, $first: Int, $after: String, $last: Int, $before: String) {
      ledger(ledger: $l) { ledgerAccounts(first: $first, after: $after, last: $last, before: $before) {
        nodes { id path type ownBalance } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }"""
    seen, after = [], None
    while True:
        got = data_of(gql(q, {"l": {"ik": ledger_ik}, "first": 2, "after": after}),
                      "ledger")["ledgerAccounts"]
        seen += got["nodes"]
        if not got["pageInfo"]["hasNextPage"]:
            break
        after = got["pageInfo"]["endCursor"]
    paths = [n["path"] for n in seen]
    assert paths == sorted(paths) and len(set(paths)) == len(paths)
    assert "assets/banks/user-cash" in paths and user("kim") in paths
    by_path = {n["path"]: n for n in seen}
    assert by_path["assets/banks/user-cash"]["type"] == "asset"
    assert by_path[user("kim")]["type"] == "liability"
    assert by_path[user("kim")]["ownBalance"] == "1"
    last = data_of(gql(q, {"l": {"ik": ledger_ik}, "last": 2}), "ledger")["ledgerAccounts"]
    assert [n["path"] for n in last["nodes"]] == paths[-2:]
    assert last["pageInfo"]["hasPreviousPage"] is (len(paths) > 2)


# ------------------------------------------------------------------ groups

def test_ledger_entry_group_balances_and_entries(gql, ledger_ik):
    group = [{"key": "withdrawal", "value": "w-1"}]
    fund(gql, ledger_ik, "grp-fund", "lee", 70, groups=group)
    transfer(gql, ledger_ik, "grp-move", "lee", "max", 30, groups=group)
    fund(gql, ledger_ik, "grp-other", "lee", 5, groups=[{"key": "withdrawal", "value": "w-2"}])
    got = data_of(gql(GROUP, {"l": {"ik": ledger_ik}, "key": "withdrawal", "value": "w-1"}),
                  "ledgerEntryGroup")
    assert got["key"] == "withdrawal" and got["value"] == "w-1" and got["ledger"] == {"ik": ledger_ik}
    balances = {(n["account"]["path"], n["currency"]["code"]): n["ownBalance"]
                for n in got["balances"]["nodes"]}
    assert balances == {("assets/banks/user-cash", "USD"): "70", (user("lee"), "USD"): "40",
                        (user("max"), "USD"): "30"}
    assert [n["ik"] for n in got["ledgerEntries"]["nodes"]] == ["grp-move", "grp-fund"]
    empty = data_of(gql(GROUP, {"l": {"ik": ledger_ik}, "key": "withdrawal", "value": "none"}),
                    "ledgerEntryGroup")
    assert empty["balances"]["nodes"] == [] and empty["ledgerEntries"]["nodes"] == []


def test_ledger_by_id_everywhere(gql, ledger_ik):
    ledger_id = data_of(gql("query($l: LedgerMatchInput!) { ledger(ledger: $l) { id } }",
                            {"l": {"ik": ledger_ik}}), "ledger")["id"]
    fund(gql, ledger_ik, "by-id", "ned", 9)
    q = """query($a: LedgerAccountMatchInput!) { ledgerAccount(ledgerAccount: $a) { ownBalance ledger { ik } } }"""
    got = data_of(gql(q, {"a": {"path": user("ned"), "ledger": {"id": ledger_id}}}), "ledgerAccount")
    assert got == {"ownBalance": "9", "ledger": {"ik": ledger_ik}}
    missing = gql(q, {"a": {"path": user("ned"), "ledger": {"id": "987654321"}}})
    assert missing.json()["errors"][0]["extensions"]["code"] == "ledger_not_found"
