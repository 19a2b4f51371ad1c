"""The SDK's events feed and webhook endpoints against the running app: the feed pages with
its cursor and filters by type and ledger; endpoints are created (secret once), listed
without it, deleted; refusals are typed errors naming the field; a read client may read the
feed but not create endpoints."""
from __future__ import annotations

import time

import pytest

from ledger_sdk import BadRequestError, PermissionDeniedError, SyncClient
from tests.e2e.test_monitors_api import wallet  # noqa: F401 (fixture)

# A public address literal: the URL check resolves it without DNS, and nothing is delivered
# to it while the test runs (no worker takes the webhooks queue here).
PUBLIC_URL = "https://93.184.216.34/ledger-hooks"


def _client(api, creds, wallet):
    return SyncClient(client_id=creds.client_id, client_secret=creds.client_secret,
                      api_url=api.url, ledger_ik=wallet)


def _all(client, **filters):
    out, after = [], None
    while True:
        page = client.list_events(after=after, first=2, **filters)
        out += page.events
        if not page.events:
            assert page.end_cursor == after
            return out
        after = page.end_cursor


def _settled(client, count, **filters):
    """The feed withholds events while older transactions (of any database on the server)
    are still open, so it is read again until ``count`` events show, for up to 15 s."""
    deadline = time.monotonic() + 15
    while len(found := _all(client, **filters)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def test_list_events_pages_and_filters(api, full_client, wallet):  # noqa: F811
    with _client(api, full_client, wallet) as client:
        made = client.create_balance_monitor("liabilities/users", "child", "gt", 1000,
                                             currency="USD", ik="sdk-monitor")
        assert client.create_balance_monitor("liabilities/users", "child", "gt", 1000,
                                             currency="USD", ik="sdk-monitor") == made
        with pytest.raises(BadRequestError) as exc:
            client.create_balance_monitor("liabilities/users", "child", "gt", 5,
                                          currency="USD", ik="sdk-monitor")
        assert exc.value.code == "ik_conflict"
        for i in range(3):
            client.add_ledger_entry(ik=f"{wallet}-dep-{i}", type="deposit",
                                    parameters={"user": "alice", "amount": "600"})
        mine = _settled(client, 4, ledger=wallet)
        types = [e.type for e in mine]
        assert types.count("entry.posted") == 3, types
        assert all(e.ledger_ik == wallet for e in mine)
        assert len({e.id for e in mine}) == len(mine)  # paging with the cursor repeats none
        crossed = _settled(client, 1, ledger=wallet, types=["balance.crossed"])
        assert len(crossed) == 1 and crossed[0].payload["monitorId"] == made.id, crossed
        assert _all(client, ledger=wallet, types=["hold.voided"]) == []
        with pytest.raises(ValueError):
            client.list_events(first=0)


def test_webhook_endpoints_create_list_delete(api, full_client, read_client,
                                               wallet):  # noqa: F811
    with _client(api, full_client, wallet) as client:
        made = client.create_webhook_endpoint(PUBLIC_URL, ["entry.posted"],
                                              description="sdk test", ledger=wallet)
        assert made.secret and made.secret.startswith("whsec_")
        assert (made.url, made.events, made.ledger_ik, made.enabled) == (
            PUBLIC_URL, ["entry.posted"], wallet, True)
        listed = {e.id: e for e in client.list_webhook_endpoints()}
        assert listed[made.id] == made and listed[made.id].secret is None
        with pytest.raises(BadRequestError) as exc:
            client.create_webhook_endpoint("http://127.0.0.1:9/hook", ["*"])
        assert exc.value.code == "invalid_url" and exc.value.message.startswith("url:")
        with pytest.raises(BadRequestError) as exc:
            client.create_webhook_endpoint("ftp://example.org/x", ["*"])
        assert exc.value.message.startswith("url:")
        with _client(api, read_client, wallet) as reader:
            assert made.id in {e.id for e in reader.list_webhook_endpoints()}
            assert reader.list_events(ledger=wallet, first=1).events is not None
            with pytest.raises(PermissionDeniedError):
                reader.create_webhook_endpoint(PUBLIC_URL, ["*"])
        gone = client.delete_webhook_endpoint(made.id)
        assert gone.id == made.id
        assert made.id not in {e.id for e in client.list_webhook_endpoints()}
        with pytest.raises(BadRequestError):
            client.delete_webhook_endpoint(made.id)
