"""Holds over GraphQL and REST, through the running app: posting as a hold (one and a
batch), pending and available balances, commit (partial) and void by id or ik, statuses on
entries and lines, typed refusals, and read-only tokens refused."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from ledger import service
from tests.integration.helpers import new_ledger, post, seed000_schema

PAYER = "liabilities/users:payer/available"

ADD = """mutation($ik: SafeString!, $e: LedgerEntryInput!, $h: HoldInput) {
  addLedgerEntry(ik: $ik, entry: $e, hold: $h) {
    __typename
    ... on AddLedgerEntryResult { isIkReplay entry { id status hold { status expiresAt } }
                                  lines { amount status account { path } } }
    ... on BadRequestError { code message } } }"""

BATCH = """mutation($es: [AddLedgerEntryInput!]!, $h: HoldInput) {
  addLedgerEntries(entries: $es, hold: $h) {
    __typename ... on AddLedgerEntriesResult { results { entry { id status } } }
    ... on BadRequestError { code message } } }"""

COMMIT = """mutation($id: ID, $m: LedgerEntryMatchInput, $a: Int96) {
  commitLedgerEntry(id: $id, ledgerEntry: $m, amount: $a) {
    __typename
    ... on HoldResult { isIkReplay hold { status resolvedAt lines { nodes { amount status } } }
                        entry { status lines { nodes { amount status } } } }
    ... on BadRequestError { code message } } }"""

VOID = """mutation($id: ID, $m: LedgerEntryMatchInput) {
  voidLedgerEntry(id: $id, ledgerEntry: $m) {
    __typename ... on HoldResult { isIkReplay hold { status } }
    ... on BadRequestError { code message } } }"""

BALANCES = """query($a: LedgerAccountMatchInput!, $at: LastMoment) { ledgerAccount(ledgerAccount: $a) {
  ownBalance ownPendingBalance ownAvailableBalance
  atPast: ownAvailableBalance(at: $at)
  availableBalances { nodes { amount currency { code } } } } }"""


def later(seconds: float = 3600) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


def transfer(amount: int, to: str = "shop") -> dict:
    return {"type": "transfer",
            "parameters": {"from_id": "payer", "to_id": to, "amount": str(amount)}}


@pytest.fixture
def ledger(db, unique):
    ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    post(db, ik, "deposit", user_id="payer", amount="500")
    return ik


def data(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def test_graphql_hold_commit_void(gql, read_token, ledger, db):
    e = {**transfer(100), "ledger": {"ik": ledger}}
    held = data(gql(ADD, {"ik": "auth-1", "e": e, "h": {"expiresAt": later()}}))["addLedgerEntry"]
    assert held["entry"]["status"] == "pending" and held["entry"]["hold"]["status"] == "pending"
    assert sorted((x["amount"], x["status"]) for x in held["lines"]) == [
        ("-100", "pending"), ("100", "pending")]
    account = {"ledger": {"ik": ledger}, "path": PAYER}
    b = data(gql(BALANCES, {"a": account, "at": datetime.now(timezone.utc).isoformat()}))["ledgerAccount"]
    assert (b["ownBalance"], b["ownPendingBalance"], b["ownAvailableBalance"]) == ("500", "400", "400")
    assert b["availableBalances"]["nodes"] == [{"amount": "400", "currency": {"code": "USD"}}]

    read = data(gql("""query($e: LedgerEntryMatchInput!) { ledgerEntry(ledgerEntry: $e) {
        status lines { nodes { id } } hold { status lines { nodes { amount status account { path } } } } } }""",
                    {"e": {"ik": "auth-1", "ledger": {"ik": ledger}}}))["ledgerEntry"]
    assert read["status"] == "pending" and read["lines"]["nodes"] == []
    assert sorted((x["amount"], x["status"]) for x in read["hold"]["lines"]["nodes"]) == [
        ("-100", "pending"), ("100", "pending")]
    held_lines = """query($a: LedgerAccountMatchInput!, $s: String) { ledgerAccount(ledgerAccount: $a) {
        lines { nodes { id } } holdLines(status: $s) { nodes { amount status ledgerEntryId } } } }"""
    seen = data(gql(held_lines, {"a": account, "s": "pending"}))["ledgerAccount"]
    assert seen["holdLines"]["nodes"] == [
        {"amount": "-100", "status": "pending", "ledgerEntryId": held["entry"]["id"]}]
    assert len(seen["lines"]["nodes"]) == 1  # the deposit: posted lines only
    refused = gql(COMMIT, {"id": held["entry"]["id"], "a": "1"}, token_=read_token)
    assert refused.status_code == 403, refused.text
    done = data(gql(COMMIT, {"m": {"ik": "auth-1", "ledger": {"ik": ledger}}, "a": "60"}))[
        "commitLedgerEntry"]
    assert done["hold"]["status"] == "committed" and done["entry"]["status"] == "committed"
    assert sorted(x["amount"] for x in done["entry"]["lines"]["nodes"]) == ["-60", "60"]
    assert {x["status"] for x in done["entry"]["lines"]["nodes"]} == {"committed"}
    assert {x["status"] for x in done["hold"]["lines"]["nodes"]} == {"committed"}
    after = data(gql(held_lines, {"a": account, "s": None}))["ledgerAccount"]
    assert [x["status"] for x in after["holdLines"]["nodes"]] == ["committed"]
    assert data(gql(held_lines, {"a": account}))["ledgerAccount"]["holdLines"]["nodes"] == []
    again = data(gql(VOID, {"id": held["entry"]["id"]}))["voidLedgerEntry"]
    assert again == {"__typename": "BadRequestError", "code": "hold_committed",
                     "message": again["message"]}

    batch = data(gql(BATCH, {"es": [{"ik": f"b{i}", "entry": {**transfer(50), "ledger": {"ik": ledger}}}
                                    for i in range(2)], "h": {"expiresAt": later()}}))
    ids = [r["entry"]["id"] for r in batch["addLedgerEntries"]["results"]]
    assert len(ids) == 2
    voided = data(gql(VOID, {"id": ids[0]}))["voidLedgerEntry"]
    assert voided["hold"]["status"] == "voided" and not voided["isIkReplay"]
    assert data(gql(VOID, {"id": ids[0]}))["voidLedgerEntry"]["isIkReplay"]
    late = data(gql(COMMIT, {"id": ids[0]}))["commitLedgerEntry"]
    assert late["code"] == "hold_voided"
    too_big = data(gql(ADD, {"ik": "big", "e": {**transfer(400), "ledger": {"ik": ledger}},
                             "h": {"expiresAt": later()}}))["addLedgerEntry"]
    assert too_big["code"] == "condition_failed"  # 440 posted, 50 held: 390 available
    assert service.audit(db, ledger) == []


def test_rest_holds(api, token, read_token, ledger):
    with httpx.Client(base_url=f"{api.url}/v1/ledgers/{ledger}",
                      headers={"Authorization": f"Bearer {token}"}, timeout=30) as rest:
        body = {"expiresAt": later(), "entry": {"ik": "r1", **transfer(120)}}
        r = rest.post("/holds", json=body)
        assert r.status_code == 201, r.text
        held = r.json()["holds"][0]
        assert held["status"] == "pending" and held["entry"]["lines"] == []
        assert sorted(x["amount"] for x in held["heldLines"]) == ["-120", "120"]
        assert rest.post("/holds", json=body).status_code == 200  # a replay
        account = rest.get(f"/accounts/{PAYER}").json()
        assert account["ownBalances"] == {"USD": "500"}
        assert account["ownAvailableBalances"] == {"USD": "380"}
        assert account["ownPendingBalances"] == {"USD": "380"}
        readonly = httpx.post(f"{api.url}/v1/ledgers/{ledger}/holds/r1/void",
                              headers={"Authorization": f"Bearer {read_token}"})
        assert readonly.status_code == 403
        r = rest.post("/holds/r1/commit", json={"amount": "200"})
        assert r.status_code == 422 and r.json()["code"] == "hold_exceeded"
        r = rest.post("/holds/r1/commit")
        assert r.status_code == 200 and r.json()["status"] == "committed"
        assert sorted(x["amount"] for x in r.json()["entry"]["lines"]) == ["-120", "120"]
        r = rest.post("/holds/r1/void")
        assert r.status_code == 422 and r.json()["code"] == "hold_committed"
        assert rest.post("/holds/nope/void").status_code == 404
        r = rest.post("/holds", json={"expiresAt": "2001-01-01T00:00:00Z",
                                      "entry": {"ik": "r2", **transfer(1)}})
        assert r.status_code == 422 and r.json()["field"] == "hold.expiresAt"
        assert rest.get(f"/accounts/{PAYER}").json()["ownBalances"] == {"USD": "380"}


def test_sdk_holds_sync_and_async(api, full_client, ledger):
    import asyncio

    from ledger_sdk import BadRequestError as SdkBadRequest
    from ledger_sdk import Client, SyncClient

    creds = dict(client_id=full_client.client_id, client_secret=full_client.client_secret,
                 api_url=api.url, ledger_ik=ledger)
    with SyncClient(**creds) as client:
        held = client.add_ledger_hold("s1", "transfer", {"from_id": "payer", "to_id": "shop",
                                                         "amount": 150}, expires_at=later())
        assert held.hold.status == "pending" and held.entry.lines == []
        assert sorted(x.amount for x in held.hold.lines) == [-150, 150]
        b = client.get_hold_balances(PAYER)
        assert (b.own, b.own_pending, b.own_available) == ({"USD": 500}, {"USD": 350}, {"USD": 350})
        done = client.commit_ledger_entry(ik="s1", amount=100)
        assert done.hold.status == "committed" and done.hold.resolved_at is not None
        assert sorted(x.amount for x in done.entry.lines) == [-100, 100]
        with pytest.raises(SdkBadRequest) as err:
            client.void_ledger_entry(held.entry.id)
        assert err.value.code == "hold_committed"

    async def main():
        async with Client(**creds) as client:
            both = await client.add_ledger_holds(
                [{"ik": f"a{i}", "type": "transfer",
                  "parameters": {"from_id": "payer", "to_id": "shop", "amount": "100"}}
                 for i in range(2)], expires_at=later())
            voided = await client.void_ledger_entry(both[0].entry.id)
            assert voided.hold.status == "voided"
            return (await client.get_hold_balances(PAYER)).own_available
    assert asyncio.run(main()) == {"USD": 300}  # 400 posted, one hold of 100 pending


PAGED = """query($a: LedgerAccountMatchInput!, $after: String, $s: String) {
  ledgerAccount(ledgerAccount: $a) {
    holdLines(status: $s, first: 2, after: $after) {
      nodes { amount status ledgerEntryId } pageInfo { hasNextPage endCursor } } } }"""

STATUS_LINES = """query($l: LedgerMatchInput!, $a: LedgerAccountMatchInput!, $s: String!) {
  ledger(ledger: $l) { lines(status: $s, first: 10) { nodes { amount status } } }
  ledgerAccount(ledgerAccount: $a) {
    lines(status: $s, first: 10) { nodes { amount status account { path } } } } }"""


ALL_LINES = """query($a: LedgerAccountMatchInput!, $after: String) {
  ledgerAccount(ledgerAccount: $a) { lines(status: "all", first: 2, after: $after) {
    nodes { amount status } pageInfo { hasNextPage endCursor } } } }"""


BACKWARD = """query($l: LedgerMatchInput!, $s: String!, $before: String, $t: [String!]) {
  ledger(ledger: $l) { lines(status: $s, account: {path: "liabilities/users:*/available"},
                             filter: {type: $t}, last: 2, before: $before) {
    nodes { amount status } pageInfo { hasPreviousPage startCursor } } } }"""


def _backward(gql, ledger, status, types):
    walked, before = [], None
    while True:
        page = data(gql(BACKWARD, {"l": {"ik": ledger}, "s": status, "before": before,
                                   "t": types}))["ledger"]["lines"]
        walked = [(x["amount"], x["status"]) for x in page["nodes"]] + walked
        if not page["pageInfo"]["hasPreviousPage"]:
            return walked
        before = page["pageInfo"]["startCursor"]


def test_pending_and_all_lines_take_a_pattern_a_filter_and_last_before(gql, ledger):
    for i, amount in enumerate((11, 12, 13)):
        data(gql(ADD, {"ik": f"b{i}", "e": {**transfer(amount), "ledger": {"ik": ledger}},
                       "h": {"expiresAt": later()}}))
    data(gql(ADD, {"ik": "b-out", "e": {**transfer(7), "ledger": {"ik": ledger}}}))
    pending = [("13", "pending"), ("-13", "pending"), ("12", "pending"), ("-12", "pending"),
               ("11", "pending"), ("-11", "pending")]
    assert sorted(_backward(gql, ledger, "pending", None)) == sorted(pending)
    assert [abs(int(a)) for a, _ in _backward(gql, ledger, "pending", None)] == [
        13, 13, 12, 12, 11, 11]  # newest hold first, read backward two at a time
    both = _backward(gql, ledger, "all", ["transfer"])
    assert sorted(both) == sorted([("7", "posted"), ("-7", "posted")] + pending)
    assert [abs(int(a)) for a, _ in both][:2] == [7, 7]  # the transfer posted last
    assert _backward(gql, ledger, "all", ["deposit"]) == [("500", "posted")]
    assert _backward(gql, ledger, "pending", ["deposit"]) == []


def test_hold_lines_paged_and_pending_lines_listed(gql, ledger):
    ids = []
    for i in range(5):
        r = data(gql(ADD, {"ik": f"p{i}", "e": {**transfer(10 + i), "ledger": {"ik": ledger}},
                           "h": {"expiresAt": later()}}))["addLedgerEntry"]
        ids.append(r["entry"]["id"])
    data(gql(VOID, {"id": ids[0]}))
    account = {"ledger": {"ik": ledger}, "path": PAYER}
    seen, after, pages = [], None, 0
    while True:
        page = data(gql(PAGED, {"a": account, "after": after, "s": None}))[
            "ledgerAccount"]["holdLines"]
        seen += page["nodes"]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == 3  # 2 + 2 + 1: every hold once, newest first, across pages
    assert [x["ledgerEntryId"] for x in seen] == ids[::-1]
    assert [x["amount"] for x in seen] == ["-14", "-13", "-12", "-11", "-10"]
    assert seen[-1]["status"] == "voided"
    bad = gql(PAGED, {"a": account, "after": "not-a-cursor", "s": None}).json()
    assert "after" in bad["errors"][0]["message"]

    both = data(gql(STATUS_LINES, {"l": {"ik": ledger}, "a": account, "s": "pending"}))
    mine = both["ledgerAccount"]["lines"]["nodes"]
    assert [(x["amount"], x["status"]) for x in mine] == [
        (f"-{n}", "pending") for n in (14, 13, 12, 11)]  # the voided one is no longer pending
    assert len(both["ledger"]["lines"]["nodes"]) == 8  # both sides of the four pending holds
    posted = data(gql(STATUS_LINES, {"l": {"ik": ledger}, "a": account, "s": "posted"}))
    assert [x["amount"] for x in posted["ledgerAccount"]["lines"]["nodes"]] == ["500"]
    refused = gql(STATUS_LINES, {"l": {"ik": ledger}, "a": account, "s": "everything"}).json()
    assert "status" in refused["errors"][0]["message"]

    # all: posted and pending merged newest first, two at a time across both streams
    data(gql(ADD, {"ik": "p-out", "e": {**transfer(7), "ledger": {"ik": ledger}}}))
    walked, after = [], None
    while True:
        page = data(gql(ALL_LINES, {"a": account, "after": after}))["ledgerAccount"]["lines"]
        walked += [(x["amount"], x["status"]) for x in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert walked == [("-7", "posted"), ("-14", "pending"), ("-13", "pending"),
                      ("-12", "pending"), ("-11", "pending"), ("500", "posted")]


def test_rest_async_entries_take_a_hold(api, token, ledger, db):
    with httpx.Client(base_url=f"{api.url}/v1", timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as rest:
        r = rest.post(f"/ledgers/{ledger}/entries", json={
            "entries": [{"ik": "j1", **transfer(100)},
                        {"ik": "j2", **transfer(30), "hold": {"expiresAt": later(60)}}],
            "hold": {"expiresAt": later()}})
        assert r.status_code == 202, r.text
        jobs = r.json()["jobs"]
        for p in range(api.app.state.settings.partitions):  # the workers' part, in-process
            service.work_partition(db, p)
        done = [rest.get(f"/jobs/{j['id']}").json() for j in jobs]
        assert [j["status"] for j in done] == ["posted", "posted"]
        account = rest.get(f"/ledgers/{ledger}/accounts/{PAYER}").json()
        assert account["ownBalances"] == {"USD": "500"}
        assert account["ownAvailableBalances"] == {"USD": "370"}
        r = rest.post(f"/ledgers/{ledger}/holds/j1/commit", json={"amount": "40"})
        assert r.status_code == 200 and r.json()["status"] == "committed"
        bad = rest.post(f"/ledgers/{ledger}/entries", json={
            "ik": "j3", **transfer(1), "hold": {"expiresAt": "yesterday"}})
        assert bad.status_code == 422 and bad.json()["field"] == "entries[0].hold.expiresAt"
        spec = httpx.get(f"{api.url}/openapi.json", headers=rest.headers).json()
        body = spec["paths"]["/v1/ledgers/{ledger_ik}/entries"]["post"]["requestBody"]
        assert "hold" in body["content"]["application/json"]["schema"]["oneOf"][0]["properties"]


def test_rest_account_lines_by_status(api, token, ledger):
    with httpx.Client(base_url=f"{api.url}/v1/ledgers/{ledger}", timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as rest:
        for i in range(3):
            assert rest.post("/holds", json={"expiresAt": later(), "entry": {
                "ik": f"l{i}", **transfer(10 + i)}}).status_code == 201
        first = rest.get(f"/accounts/{PAYER}/lines", params={"status": "pending", "first": 2})
        assert first.status_code == 200, first.text
        page = first.json()
        assert [(x["amount"], x["status"]) for x in page["lines"]] == [
            ("-12", "pending"), ("-11", "pending")]
        assert page["pageInfo"]["hasNextPage"]
        rest_of = rest.get(f"/accounts/{PAYER}/lines", params={
            "status": "pending", "after": page["pageInfo"]["endCursor"]}).json()
        assert [x["amount"] for x in rest_of["lines"]] == ["-10"]
        posted = rest.get(f"/accounts/{PAYER}/lines").json()
        assert [x["amount"] for x in posted["lines"]] == ["500"]
        both = rest.get(f"/accounts/{PAYER}/lines", params={"status": "all"}).json()
        assert [(x["amount"], x["status"]) for x in both["lines"]] == [
            ("-12", "pending"), ("-11", "pending"), ("-10", "pending"), ("500", "posted")]
        assert both["lines"][-1]["runningBalance"] == "500"
        bad = rest.get(f"/accounts/{PAYER}/lines", params={"status": "held"})
        assert bad.status_code == 422 and bad.json()["field"] == "status"
        month = datetime.now(timezone.utc).strftime("%Y-%m")
        for status, count in (("pending", 3), ("all", 4)):
            within = rest.get(f"/accounts/{PAYER}/lines",
                              params={"status": status, "period": month}).json()
            assert len(within["lines"]) == count
            before = rest.get(f"/accounts/{PAYER}/lines",
                              params={"status": status, "period": "2001-01"}).json()
            assert before["lines"] == []
            bad = rest.get(f"/accounts/{PAYER}/lines",
                           params={"status": status, "period": "2001-13"})
            assert bad.status_code == 422 and bad.json()["field"] == "period"
