"""POST /graphql: authentication, the GraphQL-over-HTTP status codes, and error masking.
How a request is measured, bounded and run off the event loop: api.graphql.execution.
How it skips FastAPI's router: `Shortcut`.

We parse and validate the document ourselves before executing it, so that the HTTP status
can follow seed 002: a request that does not conform to the GraphQL spec (syntax, unknown
field, missing variable) is a non-retryable 4XX; a request that ran answers 200 with
``data`` (application errors are typed results inside it) and possibly ``errors``.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from graphql import GraphQLError, OperationType

from api.auth import authenticate_async, check_scope
from api.graphql import prepared
from api.graphql.context import (NO_DATABASE, Context, FORCE_ERROR_HEADER, OffLoop,
                                 committer_for, force_error_from_header)
from api.graphql.execution import Answer, Parsed, Request as GraphQLRequest, Runner
from api.graphql.limits import Limits
from api.graphql.prepared import TIMEOUT_CODE
from api.middleware import request_body
from ledger import fastjson
from ledger.errors import LedgerError

log = logging.getLogger("api.graphql")

router = APIRouter(tags=["graphql"])
PATH = "/graphql"

INTERNAL_MESSAGE = "internal error; retry the request"


def _request_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status)


def format_error(error: GraphQLError) -> dict:
    """Ledger errors keep their message and code; anything unexpected is masked (and
    logged), so no SQL, path or stack trace reaches a client."""
    out = error.formatted
    original = error.original_error
    if isinstance(original, LedgerError):
        out["message"] = original.message
        out["extensions"] = {"code": original.code, "typename": original.typename,
                             "retryable": original.retryable}
    elif original is not None and error.path is not None:
        log.error("unexpected failure at %s", error.path, exc_info=original)
        out["message"] = INTERNAL_MESSAGE
        out["extensions"] = {"code": "internal_error", "typename": "InternalError",
                             "retryable": True}
    return out


def runner_for(app) -> Runner:
    runner = getattr(app.state, "graphql_runner", None)
    if runner is None:
        settings = app.state.settings
        runner = app.state.graphql_runner = Runner(
            Limits(max_depth=settings.graphql_max_depth, max_cost=settings.graphql_max_cost,
                   max_mutations=settings.graphql_max_mutations),
            settings.graphql_concurrency, settings.request_timeout_seconds)
    return runner


def _read_body(raw: bytes) -> GraphQLRequest | JSONResponse:
    try:
        body = fastjson.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        return _request_error("the request body must be JSON: {\"query\": ..., \"variables\": ...}")
    if not isinstance(body, dict):
        return _request_error("the request body must be one JSON object (batches are not supported)")
    query = body.get("query")
    variables = body.get("variables")
    operation_name = body.get("operationName")
    if not isinstance(query, str) or not query.strip():
        return _request_error("query: a GraphQL document is required")
    if variables is not None and not isinstance(variables, dict):
        return _request_error("variables: expected a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        return _request_error("operationName: expected a string")
    return GraphQLRequest(query, variables, operation_name)


@router.post(PATH, summary="The GraphQL API (seeds 002/003)")
async def graphql_endpoint(request: Request):
    # Authentication first: an anonymous caller learns nothing, not even whether its
    # document was valid.
    principal = await authenticate_async(request)
    parsed_body = _read_body(await request_body(request))
    if isinstance(parsed_body, JSONResponse):
        return parsed_body
    force_error = force_error_from_header(request.headers.get(FORCE_ERROR_HEADER))
    runner = runner_for(request.app)
    app = request.app
    committer = committer_for(app)
    # What a run on the event loop posted, should the document run again in a thread.
    posted: dict[str, Any] = {}

    def context(deadline: float, *, on_loop: bool = False) -> Context:
        return Context(db=NO_DATABASE if on_loop else app.state.db, principal=principal,
                       committer=committer, force_error=force_error, deadline=deadline,
                       timeout_seconds=runner.timeout_seconds,
                       workspace_name=app.state.settings.workspace_name,
                       settings=app.state.settings, on_loop=on_loop, posted=posted)

    def execute(parsed: Parsed, operation, deadline: float) -> Answer:
        # In the worker thread (see Runner.run): the resolvers call the blocking service.
        if operation.operation == OperationType.MUTATION:
            check_scope(principal, "write")
        elif operation.operation != OperationType.QUERY:
            return Answer({"errors": [{"message": "only queries and mutations are served "
                                                  "over HTTP POST"}]}, 400)
        ctx = context(deadline)
        result = prepared.run(parsed.document, parsed_body.variables,
                              parsed_body.operation_name, ctx)
        return _answer(result, operation.operation.value, ctx)

    async def on_loop(parsed: Parsed, operation, deadline: float) -> Answer | None:
        # On the event loop, for a document that only posts (Runner.run).
        check_scope(principal, "write")
        ctx = context(deadline, on_loop=True)
        try:
            result = await prepared.run_async(parsed.document, parsed_body.variables,
                                              parsed_body.operation_name, ctx)
        except OffLoop:
            return None
        return _answer(result, operation.operation.value, ctx)

    answer = await runner.run(parsed_body, execute, on_loop if committer is not None else None)
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None and answer.result is not None:
        metrics.graphql_operation(answer.operation, answer.context.outcomes, answer.result)
    # orjson (ledger.fastjson): the same text JSONResponse would send, in less time.
    return Response(fastjson.dumps(answer.payload), status_code=answer.status,
                    headers=answer.headers, media_type="application/json")


class Shortcut:
    """ASGI middleware, innermost of the app's own: ``POST /graphql`` goes straight to
    `graphql_endpoint`, past FastAPI's router, its exception middleware and its request
    handling, which cost a third of an authenticated ``{ __typename }``'s CPU (the
    router tries each included router's routes in turn). The middleware outside this one
    (request id, metrics, body limits, the last-resort 500) still see every request, the
    route is the one FastAPI documents, and an exception is answered by the app's own
    handler for it, as FastAPI would (401/403 from the token check, ledger errors)."""

    def __init__(self, app):
        self.app = app
        self.route = next(r for r in router.routes if getattr(r, "path", None) == PATH)

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or scope["method"] != "POST"
                or _route_path(scope) != PATH):
            return await self.app(scope, receive, send)
        scope["route"] = self.route  # for the metrics' route label, as FastAPI sets it
        request = Request(scope, receive)
        try:
            response = await graphql_endpoint(request)
        except Exception as exc:
            handler = _handler_for(scope["app"], exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


def _route_path(scope) -> str:
    # Behind a proxy's prefix (``--root-path``) the path carries it; routes do not.
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _handler_for(app, exc: Exception):
    """The app's exception handler for ``exc`` (by its classes, nearest first) as a
    coroutine function, or None."""
    handlers: dict[Any, Any] = app.exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            break
    else:
        return None
    if asyncio.iscoroutinefunction(handler):
        return handler
    return lambda request, exc: run_in_threadpool(handler, request, exc)


def _answer(result, operation: str, context: Context) -> Answer:
    payload: dict = {}
    if result.errors:
        payload["errors"] = [format_error(e) for e in result.errors]
    payload["data"] = result.data
    status, headers = 200, None
    if result.data is None and result.errors:
        # No data at all means the request never ran (for example a variable of the wrong
        # type): a client error, not retryable; unless it was stopped at its deadline.
        codes = {(e.get("extensions") or {}).get("code") for e in payload["errors"]}
        status = 503 if TIMEOUT_CODE in codes else 400
        headers = {"Retry-After": "1"} if status == 503 else None
    return Answer(payload, status, operation, result, headers, context)
