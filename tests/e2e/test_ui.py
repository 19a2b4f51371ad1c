"""The dashboard (/ui) through the app in-process: every page renders for a signed-in
client, the sign-in, cookie and CSRF rules hold, a read-only client sees no action and is
refused when it posts the form anyway, and reversing and retrying change what the pages
show."""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import clients, service
from ledger.errors import BadRequestError
from ledger.settings import Settings
from tests.e2e.ui_world import PARTITIONS, build, fund_carol
from tests.integration.test_history import ALICE
from tests.keys import SECRET_KEY


def amount_at(amount: int, html: str) -> int:
    """Where an amount is shown as the pages render it (a cell's or a balance's whole text,
    either sign), -1 when nowhere: the random ledger and entry ids in links hold digits too."""
    found = re.search(rf">\u2212?{amount:,}(?:&nbsp;| |<)", html)
    return found.start() if found else -1


@pytest.fixture(scope="module")
def app(db, database_url):
    return create_app(Settings(database_url=database_url, secret_key=SECRET_KEY,
                               partitions=PARTITIONS), db=db)


@pytest.fixture(scope="module")
def world(db, unique):
    return build(db, unique)


@pytest.fixture
def writer_client(full_client):
    return full_client


@pytest.fixture
def reader_client(read_client):
    return read_client


def signed_in(app, client: clients.CreatedClient) -> TestClient:
    browser = TestClient(app, base_url="http://testserver")
    r = browser.post("/ui/signin", data={"client_id": client.client_id,
                                        "client_secret": client.client_secret,
                                        "next": "/ui/ledgers"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/ui/ledgers"
    return browser


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def test_the_cookie_is_httponly_strict_and_scoped(app, writer_client):
    browser = TestClient(app)
    r = browser.post("/ui/signin", data={"client_id": writer_client.client_id,
                                        "client_secret": writer_client.client_secret},
                     follow_redirects=False)
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("ledger_ui=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie


def test_no_cookie_redirects_to_sign_in_and_back(app, world, writer_client):
    browser = TestClient(app)
    target = f"/ui/ledgers/{world.ledger}/jobs"
    r = browser.get(target, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/ui/signin?next=%2Fui%2Fledgers%2F")
    r = browser.post("/ui/signin", data={"client_id": writer_client.client_id,
                                        "client_secret": writer_client.client_secret,
                                        "next": target}, follow_redirects=False)
    assert r.headers["location"] == target
    other = TestClient(app)
    other.cookies.set("ledger_ui", "forged.token.value")
    assert other.get("/ui/ledgers", follow_redirects=False).status_code == 303


def test_forms_posted_from_another_site_are_refused(app, db, world, writer_client):
    r = TestClient(app).post("/ui/signin", headers={"Origin": "https://evil.example"},
                             data={"client_id": writer_client.client_id,
                                   "client_secret": writer_client.client_secret})
    assert r.status_code == 403 and "ledger_ui" not in r.cookies
    browser = signed_in(app, writer_client)
    page_ = browser.get(f"/ui/ledgers/{world.ledger}/entries/{world.deposit_id}/reverse")
    r = browser.post(f"/ui/ledgers/{world.ledger}/entries/{world.deposit_id}/reverse",
                     data={"csrf": csrf(page_.text)}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "another site" in r.text
    assert service.get_ledger_entry(db, id=world.deposit_id).reversed_by_id is None


def test_wrong_secret_and_foreign_next(app, writer_client):
    browser = TestClient(app)
    r = browser.post("/ui/signin", data={"client_id": writer_client.client_id,
                                        "client_secret": "wrong"})
    assert r.status_code == 401 and "wrong secret" in r.text and "ledger_ui" not in r.cookies
    r = browser.post("/ui/signin", data={"client_id": writer_client.client_id,
                                        "client_secret": writer_client.client_secret,
                                        "next": "https://evil.example/"}, follow_redirects=False)
    assert r.headers["location"] == "/ui/ledgers"


def test_every_page_renders(app, world, writer_client):
    browser = signed_in(app, writer_client)
    base = f"/ui/ledgers/{world.ledger}"
    ledgers = browser.get("/ui/ledgers")
    assert ledgers.status_code == 200 and world.ledger in ledgers.text
    chart = browser.get(base)
    assert chart.status_code == 200
    assert "users:alice" in chart.text and "(instance)" in chart.text
    # The schema's accounts no line touched yet are in the tree too.
    assert 'path=income/fees"' in chart.text and "(template)" in chart.text
    account = browser.get(f"{base}/account", params={"path": ALICE})
    assert account.status_code == 200
    assert "<svg" in account.text and "polyline" in account.text
    # Newest first with running balances: 380 after the transfer, 500 after the deposit.
    lines = account.text[account.text.index('id="lines"'):]
    assert -1 < amount_at(380, lines) < amount_at(500, lines)
    assert browser.get(f"{base}/account", params={"path": ALICE, "scale": "monthly"}).status_code == 200
    # Every node of the tree opens: a template node shows its instances' balances.
    for path in ("liabilities", "liabilities/users", "liabilities/users:alice", "income/fees"):
        r = browser.get(f"{base}/account", params={"path": path})
        assert r.status_code == 200, (path, r.text)
    template = browser.get(f"{base}/account", params={"path": "liabilities/users"}).text
    assert 'id="no-lines"' in template and amount_at(700, template) > -1  # alice 380 + bob 320
    entry = browser.get(f"{base}/entries/{world.transfer_id}")
    assert entry.status_code == 200 and "tr-1" in entry.text and 'id="reverse"' in entry.text
    schema = browser.get(f"{base}/schema")
    assert schema.status_code == 200 and 'id="type-fee"' in schema.text
    assert "+" in schema.text and "fee of" in schema.text  # the diff from version 1
    jobs = browser.get(f"{base}/jobs")
    assert jobs.status_code == 200 and "tr-carol" in jobs.text and "condition" in jobs.text
    recon = browser.get(f"{base}/reconciliation")
    assert recon.status_code == 200 and "Stripe sync" in recon.text
    search = browser.get("/ui/search", params={"q": "dep-2", "ledger": world.ledger})
    assert search.status_code == 200 and "Entry:" in search.text
    search = browser.get("/ui/search", params={"q": ALICE, "ledger": world.ledger})
    assert "Account:" in search.text
    assert "Nothing found" in browser.get("/ui/search", params={"q": "nope",
                                                               "ledger": world.ledger}).text


def test_balance_at_a_past_date(app, world, writer_client):
    browser = signed_in(app, writer_client)
    r = browser.get(f"/ui/ledgers/{world.ledger}/account",
                    params={"path": ALICE, "at": "2025-03-02"})
    own = re.search(r'<dd id="own">(.*?)</dd>', r.text, re.S).group(1)
    assert amount_at(500, own) > -1
    r = browser.get(f"/ui/ledgers/{world.ledger}", params={"at": "2025-02-28"})
    assert r.status_code == 200 and amount_at(500, r.text.split('id="chart"')[1]) == -1


def test_bad_input_is_a_page_not_a_crash(app, world, writer_client):
    browser = signed_in(app, writer_client)
    r = browser.get(f"/ui/ledgers/{world.ledger}", params={"at": "yesterday"})
    assert r.status_code == 422 and "invalid_input" in r.text and "<html" in r.text
    r = browser.get("/ui/ledgers/no-such-ledger")
    assert r.status_code == 404 and "<html" in r.text
    r = browser.get(f"/ui/ledgers/{world.ledger}/entries/999999999")
    assert r.status_code == 404


def test_read_only_client_sees_no_action_and_is_refused(app, db, world, reader_client):
    browser = signed_in(app, reader_client)
    base = f"/ui/ledgers/{world.ledger}"
    entry = browser.get(f"{base}/entries/{world.deposit_id}")
    assert entry.status_code == 200 and 'id="reverse"' not in entry.text
    jobs = browser.get(f"{base}/jobs")
    assert "tr-carol" in jobs.text and 'class="retry"' not in jobs.text and 'name="csrf"' not in jobs.text
    assert browser.get(f"{base}/entries/{world.deposit_id}/reverse").status_code == 403
    from api.ui.session import csrf_of
    token = browser.cookies.get("ledger_ui")
    r = browser.post(f"{base}/entries/{world.deposit_id}/reverse", data={"csrf": csrf_of(token)})
    assert r.status_code == 403 and "read-only" in r.text
    r = browser.post(f"{base}/jobs/{world.failed_job.id}/retry", data={"csrf": csrf_of(token)})
    assert r.status_code == 403
    assert service.get_ledger_entry(db, id=world.deposit_id).reversed_by_id is None
    assert service.get_job(db, world.failed_job.id).status == service.FAILED


def test_acting_forms_need_the_csrf_token(app, db, world, writer_client):
    browser = signed_in(app, writer_client)
    base = f"/ui/ledgers/{world.ledger}"
    for data in ({}, {"csrf": "0" * 64}):
        r = browser.post(f"{base}/entries/{world.deposit_id}/reverse", data=data)
        assert r.status_code == 403 and "stale" in r.text
    assert service.get_ledger_entry(db, id=world.deposit_id).reversed_by_id is None
    # Without the cookie the form goes to the sign-in page, acting on nothing.
    r = TestClient(app).post(f"{base}/jobs/{world.failed_job.id}/retry", data={"csrf": "x"},
                             follow_redirects=False)
    assert r.status_code == 303 and "/ui/signin" in r.headers["location"]


def test_reverse_and_retry_change_what_the_pages_show(app, db, unique, writer_client):
    w = build(db, unique)
    browser = signed_in(app, writer_client)
    base = f"/ui/ledgers/{w.ledger}"
    # alice spent from her deposit: its reversal would overdraw her, and says so.
    alice_deposit = service.get_ledger_entry(db, ledger_ik=w.ledger, ik="dep-1").id
    page_ = browser.get(f"{base}/entries/{alice_deposit}/reverse")
    r = browser.post(f"{base}/entries/{alice_deposit}/reverse", data={"csrf": csrf(page_.text)})
    assert r.status_code == 422 and "condition" in r.text and "<html" in r.text
    confirm = browser.get(f"{base}/entries/{w.deposit_id}/reverse")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    r = browser.post(f"{base}/entries/{w.deposit_id}/reverse", data={"csrf": csrf(confirm.text)})
    assert r.status_code == 200 and "This entry is reversed" in r.text
    assert 'id="reversed-by"' in r.text and 'id="reverse"' not in r.text
    assert service.get_ledger_entry(db, id=w.deposit_id).reversed_by_id is not None

    jobs = browser.get(f"{base}/jobs")
    # Retrying before the cause is fixed fails the job again, with the same typed error.
    r = browser.post(f"{base}/jobs/{w.failed_job.id}/retry", data={"csrf": csrf(jobs.text)})
    assert r.status_code == 200 and f"Job {w.failed_job.id} is pending again" in r.text
    service.work_partition(db, w.failed_job.partition)
    assert service.get_job(db, w.failed_job.id).status == service.FAILED
    fund_carol(db, w.ledger)
    browser.post(f"{base}/jobs/{w.failed_job.id}/retry", data={"csrf": csrf(jobs.text)})
    service.work_partition(db, w.failed_job.partition)
    job = service.get_job(db, w.failed_job.id)
    assert job.status == service.POSTED and job.entry_id
    assert "tr-carol" not in browser.get(f"{base}/jobs").text
    # A posted job is not retried.
    r = browser.post(f"{base}/jobs/{w.failed_job.id}/retry", data={"csrf": csrf(jobs.text)})
    assert r.status_code == 422 and "job_not_failed" in r.text


def test_static_files_are_served(app):
    r = TestClient(app).get("/ui/static/ui.css")
    assert r.status_code == 200 and "prefers-color-scheme: dark" in r.text


def test_reconciliation_and_tx_search(app, db, unique, writer_client):
    from tests.integration.test_reconcile import bank_schema, funding, tx
    link = unique("link")
    service.create_custom_link(db, link, "Test bank")
    service.sync_custom_accounts(db, {"id": link}, [
        {"externalId": "bank-account-1", "name": "Operating"},
        {"externalId": "bank-account-2", "name": "Holding"}])
    key = service.store_schema(db, bank_schema(unique("bank"), link)).key
    ledger = unique("ledger")
    service.create_ledger(db, ledger, "Bank ledger", key)
    service.sync_custom_txs(db, {"id": link}, [tx(link, "bank-account-1", "ui-t1", 500),
                                               tx(link, "bank-account-1", "ui-t2", 70)])
    browser = signed_in(app, writer_client)
    page_ = browser.get(f"/ui/ledgers/{ledger}/reconciliation").text
    assert link in page_ and "assets-root/operating" in page_
    assert "ui-t1" in page_ and "ui-t2" in page_
    service.reconcile_tx(db, ledger, funding(ledger, "ui-t1"))
    page_ = browser.get(f"/ui/ledgers/{ledger}/reconciliation").text
    unreconciled = page_.split("Unreconciled txs")[1].split("Stripe sync")[0]
    assert "ui-t1" not in unreconciled and "ui-t2" in unreconciled
    found = browser.get("/ui/search", params={"q": "ui-t1", "ledger": ledger}).text
    assert "reconciled by entry" in found and "unreconciled" not in found
    assert "unreconciled" in browser.get("/ui/search", params={"q": "ui-t2"}).text


def test_stripe_sync_status(db, database_url, unique, writer_client):
    from tests.integration.stripe_helpers import stripe_wallet
    ledger, link_id = stripe_wallet(db, unique)
    app = create_app(Settings(database_url=database_url, secret_key=SECRET_KEY,
                              stripe_link_id=link_id), db=db)
    page_ = signed_in(app, writer_client).get(f"/ui/ledgers/{ledger}/reconciliation").text
    stripe = page_.split('id="stripe"')[1]
    assert link_id in stripe and ledger in stripe
    assert "Synced up to (cursor)</dt><dd>never" in stripe.replace("\n", "")
    last_run = re.search(r'id="last-run">([^<]*)<', stripe).group(1)
    assert last_run.endswith("UTC")  # configured just now
    assert "<dt>Missing</dt><dd>nothing" in stripe
    assert "Problems (0)" in page_


def test_account_shows_pending_and_available_and_its_holds(app, world, writer_client, db):
    from datetime import datetime, timedelta, timezone
    service.add_ledger_hold(db, world.ledger, service.EntryRequest(
        ik="ui-hold-1", type="transfer",
        parameters={"from": "bob", "to": "alice", "amount": "30"}),
        datetime.now(timezone.utc) + timedelta(hours=1))
    browser = signed_in(app, writer_client)
    bob = ALICE.replace("alice", "bob")
    r = browser.get(f"/ui/ledgers/{world.ledger}/account", params={"path": bob})
    assert r.status_code == 200
    holds = r.text.split('id="holds"')[1].split("</table>")[0]
    assert "pending" in holds and amount_at(30, holds) > -1
    own = re.search(r'<dd id="own">(.*?)</dd>', r.text, re.S).group(1)
    available = re.search(r'<dd id="available">(.*?)</dd>', r.text, re.S).group(1)
    assert own != available  # the held 30 leaves bob's available balance only
    template = browser.get(f"/ui/ledgers/{world.ledger}/account",
                           params={"path": "liabilities/users"})
    assert template.status_code == 200 and "No holds." in template.text


def test_search_by_path_prefix_is_literal(app, world, writer_client, db):
    browser = signed_in(app, writer_client)
    prefix = ALICE.split(":")[0] + ":"
    found = browser.get("/ui/search", params={"q": prefix, "ledger": world.ledger}).text
    assert ALICE in found and ALICE.replace("alice", "bob") in found
    # LIKE wildcards in the query are plain characters: "_" matches no path here.
    assert service.find_account_paths(db, world.ledger, prefix[:-1] + "_") == []
    assert service.find_account_paths(db, world.ledger, prefix, limit=1) == [
        sorted(service.find_account_paths(db, world.ledger, prefix))[0]]
    with pytest.raises(BadRequestError):
        service.find_account_paths(db, world.ledger, prefix, limit=51)


def test_ledgers_page_caps_entry_counts(app, world, writer_client, monkeypatch, db):
    from ledger.history import overview
    browser = signed_in(app, writer_client)
    monkeypatch.setattr(overview, "ENTRY_COUNT_CAP", 2)
    row = browser.get("/ui/ledgers").text.split(f">{world.ledger}</a>")[1].split("</tr>")[0]
    assert '<td class="num">2+</td>' in row
    activity = [a for a in service.ledgers_activity(db) if a.ledger.ik == world.ledger]
    assert activity[0].capped and activity[0].entries == 2


def _hold(db, ledger: str, ik: str, amount: int) -> str:
    from datetime import datetime, timedelta, timezone
    return service.add_ledger_hold(db, ledger, service.EntryRequest(
        ik=ik, type="transfer", parameters={"from": "bob", "to": "alice", "amount": str(amount)}),
        datetime.now(timezone.utc) + timedelta(hours=1)).entry.id


def test_hold_entry_commit_and_void_through_confirmation(app, world, writer_client,
                                                          reader_client, db):
    commit_id = _hold(db, world.ledger, "ui-hold-c", 7)
    void_id = _hold(db, world.ledger, "ui-hold-v", 9)
    base = f"/ui/ledgers/{world.ledger}/entries"
    reader = signed_in(app, reader_client)
    seen = reader.get(f"{base}/{commit_id}").text
    assert 'id="hold-status">pending' in seen and 'id="commit"' not in seen
    from api.ui.session import csrf_of
    r = reader.post(f"{base}/{commit_id}/commit",
                    data={"csrf": csrf_of(reader.cookies.get("ledger_ui"))})
    assert r.status_code == 403 and service.get_ledger_hold(db, commit_id).status == "pending"
    browser = signed_in(app, writer_client)
    shown = browser.get(f"{base}/{commit_id}").text
    assert 'id="commit"' in shown and 'id="void"' in shown and 'id="reverse"' not in shown
    confirm = browser.get(f"{base}/{commit_id}/commit")
    assert confirm.status_code == 200 and 'id="confirm-commit"' in confirm.text
    r = browser.post(f"{base}/{commit_id}/commit", data={"csrf": "forged"})
    assert r.status_code == 403 and service.get_ledger_hold(db, commit_id).status == "pending"
    r = browser.post(f"{base}/{commit_id}/commit", data={"csrf": csrf(confirm.text)})
    assert r.status_code == 200 and 'id="hold-status">committed' in r.text
    assert 'id="commit"' not in r.text
    confirm = browser.get(f"{base}/{void_id}/void")
    r = browser.post(f"{base}/{void_id}/void", data={"csrf": csrf(confirm.text)})
    assert r.status_code == 200 and 'id="hold-status">voided' in r.text
    assert browser.get(f"{base}/{world.deposit_id}/commit").status_code == 404  # no hold
    assert browser.get(f"{base}/{void_id}/explode").status_code == 404


def test_ledger_page_lists_its_balance_monitors(app, world, writer_client, db):
    service.create_balance_monitor(db, world.ledger, ALICE, "own", {"gte": "1000"},
                                   "alice is rich")
    browser = signed_in(app, writer_client)
    shown = browser.get(f"/ui/ledgers/{world.ledger}").text
    monitors = shown.split('id="monitors"')[1].split("</table>")[0]
    assert ALICE in monitors and "gte" in monitors and "alice is rich" in monitors


def test_jobs_page_shows_this_ledgers_pending_per_partition(app, world, writer_client, db):
    browser = signed_in(app, writer_client)
    base = f"/ui/ledgers/{world.ledger}/jobs"
    assert 'id="ledger-none-pending"' in browser.get(base).text
    submission = service.submit_entries(db, world.ledger, [
        {"ik": "ui-wait", "type": "deposit", "parameters": {"user": "dan", "amount": "5"}}],
        partitions=PARTITIONS)
    job = submission.jobs[0]
    mine = browser.get(base).text.split('id="ledger-pending"')[1].split("</table>")[0]
    assert f"<td>{job.partition}</td><td class=\"num\">1</td>" in mine
    backlog = service.ledger_backlog(db, world.ledger)
    assert backlog.pending == {job.partition: 1} and not backlog.capped
    service.work_partition(db, job.partition)
    assert service.ledger_backlog(db, world.ledger).pending == {}


def test_account_holds_are_paged(app, world, writer_client, db, monkeypatch):
    from api.ui import pages
    monkeypatch.setattr(pages, "HOLDS_PER_PAGE", 2)
    for i in range(3):
        _hold(db, world.ledger, f"ui-page-{i}", 1 + i)
    bob = ALICE.replace("alice", "bob")
    expected = [line.entry_id for line, _ in service.list_hold_lines(
        db, world.ledger, bob, status=None, first=200).nodes]
    assert len(expected) >= 3
    browser = signed_in(app, writer_client)
    seen, url, pages_read = [], f"/ui/ledgers/{world.ledger}/account?path={bob}", 0
    while url:
        r = browser.get(url)
        assert r.status_code == 200
        table = r.text.split('id="holds"')[1].split("</table>")[0]
        rows = re.findall(r'/entries/(\d+)">', table)
        assert 1 <= len(rows) <= 2
        seen += rows
        pages_read += 1
        older = re.search(r'id="older-holds" href="([^"]+)"', r.text)
        url = (f"/ui/ledgers/{world.ledger}/account" + older.group(1).replace("&amp;", "&")
               if older else None)
    assert seen == expected and pages_read == (len(expected) + 1) // 2
    r = browser.get(f"/ui/ledgers/{world.ledger}/account",
                    params={"path": bob, "holds_after": "junk"})
    assert r.status_code == 422 and "after" in r.text


def test_hold_commit_of_a_part_through_confirmation(app, world, writer_client, db):
    held = _hold(db, world.ledger, "ui-hold-part", 9)
    base = f"/ui/ledgers/{world.ledger}/entries"
    browser = signed_in(app, writer_client)
    confirm = browser.get(f"{base}/{held}/commit")
    assert 'id="amount"' in confirm.text and 'name="amount"' in confirm.text
    token = csrf(confirm.text)
    # Not a number, not a capture, more than reserved: refused as the API refuses them.
    for bad, said in (("abc", "amount:"), ("0", "invalid_amount"), ("10", "hold_exceeded")):
        r = browser.post(f"{base}/{held}/commit", data={"csrf": token, "amount": bad})
        assert r.status_code == 422 and said in r.text, bad
        assert service.get_ledger_hold(db, held).status == "pending"
    r = browser.post(f"{base}/{held}/commit", data={"csrf": token, "amount": " 4 "})
    assert r.status_code == 200 and 'id="hold-status">committed' in r.text
    entry = service.get_ledger_entry(db, id=held, ledger_ik=world.ledger)
    assert sorted(line.amount for line in entry.lines) == [-4, 4]
    void_confirm = browser.get(f"{base}/{_hold(db, world.ledger, 'ui-hold-v2', 2)}/void")
    assert 'id="amount"' not in void_confirm.text  # a void releases all: nothing to enter
