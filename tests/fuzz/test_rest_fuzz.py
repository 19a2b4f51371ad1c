"""REST fuzzing: schemathesis generates requests for every operation of the API's own
OpenAPI description (fetched with a token, as a client would), valid and invalid ones.
No answer may be a 5xx, and every status answered must be documented for its operation."""
from __future__ import annotations

import pytest
import schemathesis
from schemathesis.checks import status_code_conformance

from tests.fuzz.conftest import FUZZ


@pytest.fixture(scope="module")
def openapi(api, token, fuzz_ledger):
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json",
                                           headers={"Authorization": f"Bearer {token}"})
    schema.config.base_url = api.url
    return schema


schema = schemathesis.pytest.from_fixture("openapi")


@schemathesis.check
def no_server_error(ctx, response, case):
    if response.status_code >= 500:
        raise AssertionError(f"{case.operation.label} answered {response.status_code}: "
                             f"{response.text[:300]}")


@schema.parametrize()
@FUZZ
def test_rest_operation(case, token):
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    case.validate_response(response, checks=[no_server_error, status_code_conformance])
