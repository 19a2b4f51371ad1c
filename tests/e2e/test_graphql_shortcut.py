"""POST /graphql skips FastAPI's router (api.graphql.http.Shortcut) and runs in the
runner's own thread pool (api.graphql.execution.Runner): what the router and anyio gave it
must still hold."""
from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from api.graphql.execution import Answer, Request, Runner
from api.graphql.http import _route_path
from api.graphql.limits import Limits
from ledger import service


def _counted(api, read_token, status: str) -> float:
    page = httpx.get(f"{api.url}/metrics", headers={"Authorization": f"Bearer {read_token}"})
    assert page.status_code == 200
    line = f'ledger_http_requests_total{{method="POST",route="/graphql",status="{status}"}}'
    return next((float(row.rsplit(" ", 1)[1]) for row in page.text.splitlines()
                 if row.startswith(line)), 0.0)


def test_graphql_requests_pass_the_app_middleware(api, gql, read_token):
    before_ok, before_401 = _counted(api, read_token, "200"), _counted(api, read_token, "401")
    answer = gql("{ __typename }", headers={"X-Request-ID": "shortcut-probe-1"})
    assert answer.status_code == 200 and answer.json() == {"data": {"__typename": "Query"}}
    assert answer.headers["x-request-id"] == "shortcut-probe-1"
    assert answer.headers["content-type"] == "application/json"
    anonymous = gql("{ __typename }", token_=None)
    # The app's handler for the token check's HTTPException answers, as through the router.
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"]["code"] == "unauthorized"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.headers["x-request-id"]
    assert _counted(api, read_token, "200") == before_ok + 1
    assert _counted(api, read_token, "401") == before_401 + 1


def test_other_methods_and_paths_still_go_through_the_router(api, token):
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{api.url}/graphql", headers=headers).status_code == 405
    assert httpx.post(f"{api.url}/graphql/extra", headers=headers, json={}).status_code == 404


DEEPER_THAN_ALLOWED = 300


def test_body_limits_still_apply(api, token):
    headers = {"Authorization": f"Bearer {token}"}
    nested: list = []
    for _ in range(DEEPER_THAN_ALLOWED):
        nested = [nested]
    deep = {"query": "{ __typename }", "variables": {"v": nested}}
    answer = httpx.post(f"{api.url}/graphql", headers=headers, json=deep)
    assert answer.status_code == 400 and answer.json()["code"] == "json_too_deep"
    huge = httpx.post(f"{api.url}/graphql", headers=headers,
                      content=b'{"query": "' + b" " * (1024 * 1024) + b'{ __typename }"}')
    assert huge.status_code == 413


@pytest.mark.parametrize("path, root, seen", [
    ("/graphql", "", "/graphql"),
    ("/ledger/graphql", "/ledger", "/graphql"),
    ("/graphql", "/ledger", "/graphql"),
    ("/ledgergraphql", "/other", "/ledgergraphql"),
])
def test_the_route_path_leaves_out_a_proxy_prefix(path, root, seen):
    assert _route_path({"path": path, "root_path": root}) == seen


def _runner(concurrency: int = 2, timeout: float = 5.0) -> Runner:
    return Runner(Limits(max_depth=10, max_cost=1000, max_mutations=10), concurrency, timeout)


def test_the_runner_thread_sees_the_callers_log_fields():
    runner = _runner()
    seen = {}

    def execute(parsed, operation, deadline):
        seen.update(service.current_log_fields(), thread=threading.current_thread().name)
        return Answer({"data": {}})

    async def main():
        with service.log_fields(request_id="probe-ctx"):
            return await runner.run(Request("{ __typename }", None, None), execute)

    try:
        assert asyncio.run(main()).payload == {"data": {}}
    finally:
        runner.close()
    assert seen["request_id"] == "probe-ctx"
    assert seen["thread"].startswith("graphql")


def test_a_request_that_waits_past_its_time_for_the_pool_is_not_run():
    runner = _runner(concurrency=1, timeout=0.3)
    release, ran = threading.Event(), []

    def stuck(parsed, operation, deadline):
        release.wait(10)
        return Answer({"data": {"first": True}})

    def second(parsed, operation, deadline):
        ran.append(True)
        return Answer({"data": {"second": True}})

    async def main():
        first = asyncio.ensure_future(runner.run(Request("{ __typename }", None, None), stuck))
        await asyncio.sleep(0.05)
        late = asyncio.ensure_future(runner.run(Request("{ __typename }", None, None), second))
        await asyncio.sleep(0.5)  # past the second one's deadline, within the grace
        release.set()
        return await first, await late

    try:
        first, late = asyncio.run(main())
    finally:
        release.set()
        runner.close()
    assert first.status == 200 and first.payload == {"data": {"first": True}}
    assert late.status == 503 and late.payload["errors"][0]["extensions"]["code"] == "timeout"
    assert late.headers == {"Retry-After": "1"}
    assert ran == []
