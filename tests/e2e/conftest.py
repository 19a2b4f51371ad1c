"""The running API for end-to-end tests: uvicorn in a background thread on a free port,
against this run's database, plus API clients made through `ledger.clients`."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from api.app import Settings, create_app
from ledger import clients

# Small, so the 413 test needs no megabyte of data.
E2E_MAX_BODY_BYTES = 256 * 1024


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    app = create_app(Settings(database_url=database_url, max_body_bytes=E2E_MAX_BODY_BYTES))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="e2e-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    yield Api(url=f"http://127.0.0.1:{port}", app=app)
    server.should_exit = True
    thread.join(timeout=10)


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
