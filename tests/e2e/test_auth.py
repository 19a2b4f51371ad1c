"""OAuth2 client credentials and the guard on every endpoint: each bad caller gets the
documented status, and nothing changes."""
from __future__ import annotations

import logging
import time

import httpx
import jwt
import pytest

from api.auth import TokenService
from ledger import clients, service
from tests.e2e.conftest import fetch_token
from tests.keys import KEYRING

CREATE_LEDGER = """mutation($ik: SafeString!, $ledger: CreateLedgerInput!, $schema: SchemaMatchInput) {
  createLedger(ik: $ik, ledger: $ledger, schema: $schema) { __typename ... on Error { code } } }"""


@pytest.fixture(scope="module")
def schema_key(db, unique):
    key = unique("auth-schema")
    service.store_schema(db, {"key": key, "chartOfAccounts": {"accounts": [
        {"key": "assets", "type": "asset"}, {"key": "liabilities", "type": "liability"}]}})
    return key


def create_ledger_as(api, token, ik, schema_key):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(api.graphql_url, headers=headers, json={"query": CREATE_LEDGER, "variables": {
        "ik": ik, "ledger": {"name": "auth"}, "schema": {"key": schema_key}}})


def assert_no_ledger(db, ik):
    assert ik not in {l.ik for l in service.list_ledgers(db)}


def test_token_endpoint_answers_like_the_seed(api, full_client):
    # The seed's request: Basic credentials, form grant_type + scope + client_id.
    r = httpx.post(api.token_url,
                   data={"grant_type": "client_credentials",
                         "scope": "https://api.us-west-2.fragment.dev/*",
                         "client_id": full_client.client_id},
                   auth=(full_client.client_id, full_client.client_secret),
                   headers={"Accept": "*/*"})
    assert r.status_code == 200
    body = r.json()
    assert body["expires_in"] == 3600
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "write"
    assert body["access_token"].count(".") == 2
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("auth, form, status, error", [
    (("nobody", "nothing"), {"grant_type": "client_credentials"}, 401, "invalid_client"),
    (None, {"grant_type": "client_credentials"}, 401, "invalid_client"),
    ("wrong-secret", {"grant_type": "client_credentials"}, 401, "invalid_client"),
    ("good", {"grant_type": "password"}, 400, "unsupported_grant_type"),
    ("good", {"grant_type": "client_credentials", "client_id": "someone-else"}, 400,
     "invalid_request"),
])
def test_token_endpoint_refusals(api, full_client, auth, form, status, error):
    if auth == "good":
        auth = (full_client.client_id, full_client.client_secret)
    elif auth == "wrong-secret":
        auth = (full_client.client_id, full_client.client_secret + "x")
    r = httpx.post(api.token_url, data=form, auth=auth)
    assert r.status_code == status
    assert r.json()["error"] == error
    assert "access_token" not in r.json()


def test_read_only_client_cannot_get_a_write_token(api, read_client):
    r = httpx.post(api.token_url, data={"grant_type": "client_credentials", "scope": "write"},
                   auth=(read_client.client_id, read_client.client_secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


def test_no_token(api, db, schema_key, unique):
    ik = unique("no-token")
    r = create_ledger_as(api, None, ik, schema_key)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["detail"]["code"] == "unauthorized"
    assert_no_ledger(db, ik)


def test_forged_token(api, db, full_client, schema_key, unique):
    ik = unique("forged")
    now = int(time.time())
    forged = jwt.encode({"iss": "moneyledger", "sub": full_client.client_id, "scope": "write",
                         "iat": now, "exp": now + 600}, "not-the-server-key" * 4,
                        algorithm="HS256")
    assert create_ledger_as(api, forged, ik, schema_key).status_code == 401
    # Unsigned ("alg": "none") is no better.
    unsigned = jwt.encode({"iss": "moneyledger", "sub": full_client.client_id,
                           "scope": "write", "iat": now, "exp": now + 600}, None,
                          algorithm="none")
    assert create_ledger_as(api, unsigned, ik, schema_key).status_code == 401
    assert create_ledger_as(api, "garbage", ik, schema_key).status_code == 401
    assert_no_ledger(db, ik)


def test_expired_token(api, db, full_client, schema_key, unique):
    ik = unique("expired")
    expired = TokenService(db, keyring=KEYRING).issue(full_client.client, "write", now=time.time() - 7200)
    r = create_ledger_as(api, expired, ik, schema_key)
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]["message"]
    assert_no_ledger(db, ik)


def test_revoked_client(api, db, schema_key, unique):
    doomed = clients.create_client(db, "soon revoked", "write")
    token = fetch_token(api, doomed)
    assert create_ledger_as(api, token, unique("before-revoke"), schema_key).status_code == 200
    clients.revoke_client(db, doomed.client_id)
    # The API trusts its last look at the client for LEDGER_CLIENT_CACHE_SECONDS (1 s):
    # the revocation holds from then on, never later.
    honoured_by = time.monotonic() + api.app.state.settings.client_cache_seconds
    while True:
        ik = unique("after-revoke")
        asked = time.monotonic()
        r = create_ledger_as(api, token, ik, schema_key)
        if r.status_code == 401 or asked > honoured_by:
            break
        assert r.status_code == 200
        time.sleep(0.05)
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]["message"]
    assert_no_ledger(db, ik)
    # And it cannot get a new token either.
    r = httpx.post(api.token_url, data={"grant_type": "client_credentials"},
                   auth=(doomed.client_id, doomed.client_secret))
    assert r.status_code == 401


def test_read_only_token_cannot_write(api, db, read_token, schema_key, unique):
    ik = unique("read-only")
    r = create_ledger_as(api, read_token, ik, schema_key)
    assert r.status_code == 403
    assert r.json()["detail"]["code"] == "insufficient_scope"
    assert_no_ledger(db, ik)
    # Reading is fine.
    q = httpx.post(api.graphql_url, headers={"Authorization": f"Bearer {read_token}"},
                   json={"query": "query($k: SchemaMatchInput!) { schema(schema: $k) { key } }",
                         "variables": {"k": {"key": schema_key}}})
    assert q.status_code == 200 and q.json()["data"]["schema"]["key"] == schema_key


def test_full_client_may_ask_for_a_read_only_token(api, db, full_client, schema_key, unique):
    token = fetch_token(api, full_client, scope="read")
    ik = unique("narrowed")
    assert create_ledger_as(api, token, ik, schema_key).status_code == 403
    assert_no_ledger(db, ik)


def test_public_and_protected_endpoints(api, token, read_token):
    assert httpx.get(f"{api.url}/healthz").json() == {"status": "ok", "database": "ok"}
    assert httpx.get(f"{api.url}/metrics").status_code == 401
    metrics = httpx.get(f"{api.url}/metrics", headers={"Authorization": f"Bearer {read_token}"})
    assert metrics.status_code == 200
    assert "ledger_http_requests_total{" in metrics.text
    assert 'route="/graphql"' in metrics.text
    assert httpx.get(f"{api.url}/v1/jobs/1").status_code == 401
    assert httpx.get(f"{api.url}/v1/jobs/1",
                     headers={"Authorization": "Bearer nonsense"}).status_code == 401


def test_secrets_and_tokens_are_not_logged(api, db, caplog):
    client = clients.create_client(db, "log check", "write")
    with caplog.at_level(logging.DEBUG):
        token = fetch_token(api, client)
        httpx.post(api.graphql_url, headers={"Authorization": f"Bearer {token}"},
                   json={"query": "{ ledgers { nodes { ik } } }"})
        httpx.post(api.token_url, data={"grant_type": "client_credentials"},
                   auth=(client.client_id, "wrong-" + client.client_secret))
    text = caplog.text
    assert client.client_secret not in text
    assert token not in text
    assert client.client_secret not in repr(client)
