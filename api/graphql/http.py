"""POST /graphql: authentication, the GraphQL-over-HTTP status codes, and error masking.

We parse and validate the document ourselves before executing it, so that the HTTP status
can follow seed 002: a request that does not conform to the GraphQL spec (syntax, unknown
field, missing variable) is a non-retryable 4XX; a request that ran answers 200 with
``data`` (application errors are typed results inside it) and possibly ``errors``.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from graphql import GraphQLError, OperationType, get_operation_ast, parse, validate
from starlette.concurrency import run_in_threadpool

from api.auth import authenticate, check_scope
from api.graphql.context import Context, FORCE_ERROR_HEADER, force_error_from_header
from api.graphql.schema import schema
from ledger.errors import LedgerError

log = logging.getLogger("api.graphql")

router = APIRouter(tags=["graphql"])

MAX_QUERY_DEPTH = 15
INTERNAL_MESSAGE = "internal error; retry the request"


def _request_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status)


def _depth(node: Any, fragments: dict, seen: frozenset = frozenset()) -> int:
    selection_set = getattr(node, "selection_set", None)
    if selection_set is None:
        return 0
    deepest = 0
    for selection in selection_set.selections:
        kind = selection.kind
        if kind == "fragment_spread":
            name = selection.name.value
            if name in seen or name not in fragments:
                continue
            deepest = max(deepest, _depth(fragments[name], fragments, seen | {name}))
        elif kind == "inline_fragment":
            deepest = max(deepest, _depth(selection, fragments, seen))
        else:
            deepest = max(deepest, 1 + _depth(selection, fragments, seen))
    return deepest


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


@router.post("/graphql", summary="The GraphQL API (seeds 002/003)")
async def graphql_endpoint(request: Request):
    # Authentication first: an anonymous caller learns nothing, not even whether its
    # document was valid.
    principal = await run_in_threadpool(authenticate, request)

    try:
        body = json.loads(await request.body() or b"null")
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

    try:
        document = parse(query)
    except GraphQLError as exc:
        return JSONResponse({"errors": [exc.formatted]}, status_code=400)
    errors = validate(schema._schema, document)
    if errors:
        return JSONResponse({"errors": [e.formatted for e in errors]}, status_code=400)
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return _request_error("operationName: name the operation to run" if operation_name is None
                              else f"operationName: no operation {operation_name!r} in the document")
    fragments = {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}
    if _depth(operation, fragments) > MAX_QUERY_DEPTH:
        return _request_error(f"the query nests deeper than {MAX_QUERY_DEPTH} levels")
    if operation.operation == OperationType.MUTATION:
        check_scope(principal, "write")
    elif operation.operation != OperationType.QUERY:
        return _request_error("only queries and mutations are served over HTTP POST")

    context = Context(db=request.app.state.db, principal=principal,
                      force_error=force_error_from_header(request.headers.get(FORCE_ERROR_HEADER)))
    # Resolvers call the (blocking) ledger service: run the whole execution in a worker
    # thread so the event loop keeps serving other requests.
    result = await run_in_threadpool(schema.execute_sync, query, variable_values=variables,
                                     context_value=context, operation_name=operation_name)
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.graphql_operation(operation.operation.value, context.outcomes, result)
    payload: dict = {}
    if result.errors:
        payload["errors"] = [format_error(e) for e in result.errors]
    payload["data"] = result.data
    # No data at all means the request never ran (for example a variable of the wrong type):
    # a client error, not retryable.
    status = 400 if result.data is None and result.errors else 200
    return JSONResponse(payload, status_code=status)
