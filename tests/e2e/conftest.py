"""The running API for end-to-end tests: uvicorn in a background thread on a free port,
against this run's database, plus API clients made through `ledger.clients`."""
from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from api.app import create_app
from ledger import clients
from ledger.settings import Settings
from tests.keys import SECRET_KEY
from tests.serving import serve

# Small, so the 413 test needs no megabyte of data.
E2E_MAX_BODY_BYTES = 256 * 1024


@dataclass
class Api:
    url: str
    app: object

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth2/token"


@pytest.fixture(scope="session")
def api(database_url):
    app = create_app(Settings(database_url=database_url, max_body_bytes=E2E_MAX_BODY_BYTES,
                              secret_key=SECRET_KEY))
    with serve(app, "e2e-uvicorn") as url:
        yield Api(url=url, app=app)


@pytest.fixture(scope="session")
def full_client(db):
    return clients.create_client(db, "e2e full access", "write")


@pytest.fixture(scope="session")
def read_client(db):
    return clients.create_client(db, "e2e read only", "read")


def fetch_token(api: Api, client: clients.CreatedClient, scope: str | None = None) -> str:
    form = {"grant_type": "client_credentials", "client_id": client.client_id}
    if scope is not None:
        form["scope"] = scope
    r = httpx.post(api.token_url, data=form, auth=(client.client_id, client.client_secret))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture(scope="session")
def token(api, full_client):
    return fetch_token(api, full_client)


@pytest.fixture(scope="session")
def read_token(api, read_client):
    return fetch_token(api, read_client)


@pytest.fixture
def gql(api, token):
    """``gql(query, variables)`` -> the HTTP response of a POST /graphql with a full token."""

    def call(query: str, variables: dict | None = None, *, token_: str | None = token,
             headers: dict | None = None) -> httpx.Response:
        h = dict(headers or {})
        if token_ is not None:
            h["Authorization"] = f"Bearer {token_}"
        return httpx.post(api.graphql_url, json={"query": query, "variables": variables or {}},
                          headers=h, timeout=30)

    return call
