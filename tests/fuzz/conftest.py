"""The fuzzing suite runs against the same running API as the end-to-end tests: uvicorn in a
background thread on this run's database, with tokens of API clients made through
`ledger.clients`. Its fixtures are those of tests/e2e/conftest.py, imported here so that
this folder's tests see them.

Every example is derandomized (the same examples on every run, so CI is reproducible and a
failure replays) and each test's budget of examples is bounded (`FUZZ`); set
``LEDGER_FUZZ_EXAMPLES`` to explore more locally.
"""
from __future__ import annotations

import os

import httpx
import pytest
from hypothesis import HealthCheck, settings

from ledger import service
from tests.e2e import seed002
from tests.e2e.conftest import api, full_client, read_client, read_token, token  # noqa: F401

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "150")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture,
                           HealthCheck.differing_executors],
)


@pytest.fixture(scope="session")
def fuzz_ledger(db):
    """A ledger with a few entries, so that generated reads may reach rows."""
    doc = seed002.store_schema_variables()["schema"]
    doc["key"] = "fuzz"
    service.store_schema(db, doc)
    service.create_ledger(db, "fuzz", "Fuzz", "fuzz")
    for i, user in enumerate(["a", "b", "c"]):
        service.add_ledger_entry(db, "fuzz", service.EntryRequest.from_input({
            "ik": f"fuzz-{i}", "type": "user_funds_account",
            "parameters": {"user_id": user, "funding_amount": str(100 + i)}}))
    return "fuzz"


@pytest.fixture(scope="session")
def authed(api, token):  # noqa: F811
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as client:
        yield client
