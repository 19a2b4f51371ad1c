"""The one map from a `LedgerError` to an HTTP answer, for every REST, webhook and
GraphQL-over-HTTP path (GraphQL resolvers answer errors inside ``data`` instead)."""
from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ledger.errors import LedgerError

log = logging.getLogger("api")

# By the error's typename: what the client can do about it.
STATUS_OF: Mapping[str, int] = {"BadRequestError": 422, "NotFoundError": 404,
                                "InternalError": 503}
# Stripe retries only 5xx answers, and a request it cannot fix is a 400 to it.
WEBHOOK_STATUS_OF: Mapping[str, int] = {"BadRequestError": 400, "NotFoundError": 503,
                                        "InternalError": 503}
INTERNAL_ERROR = {"__typename": "InternalError", "code": "internal_error",
                  "message": "internal error; retry the request", "retryable": True}


def status_of(exc: LedgerError, statuses: Mapping[str, int] = STATUS_OF) -> int:
    return statuses.get(exc.typename, 503)


def error_response(exc: LedgerError, *, statuses: Mapping[str, int] = STATUS_OF,
                   retry_after: int = 1) -> JSONResponse:
    """The typed error itself as the body; a 503 says when to come back."""
    status = status_of(exc, statuses)
    headers = {"Retry-After": str(retry_after)} if status == 503 else None
    return JSONResponse(exc.to_dict(), status_code=status, headers=headers)


def ledger_error_handler(request: Request, exc: LedgerError) -> JSONResponse:
    return error_response(exc)


def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected failure on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(INTERNAL_ERROR, status_code=500)


def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's default echoes the offending input back; keep the location and reason only.
    problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
    return JSONResponse({"__typename": "BadRequestError", "code": "invalid_input",
                         "message": f"{where}: {first['msg']}", "retryable": False,
                         "errors": problems}, status_code=422)


# ------------------------------------------------------------------ documented answers

_TYPED = {"application/json": {"schema": {
    "type": "object", "required": ["__typename", "code", "message", "retryable"],
    "properties": {"__typename": {"type": "string"}, "code": {"type": "string"},
                   "message": {"type": "string"}, "retryable": {"type": "boolean"},
                   "field": {"type": "string"}, "index": {"type": "integer"}}}}}

# Answers that do not come from a route's own code: the middleware's, the token check's,
# and a transient fault. Every operation documents them (the fuzzing suite checks that
# every status answered is documented).
_BODY_ANSWERS = {
    "400": {"description": "The body nests deeper than LEDGER_MAX_JSON_DEPTH (json_too_deep)",
            "content": _TYPED},
    "413": {"description": "The body is over LEDGER_MAX_BODY_BYTES (payload_too_large)",
            "content": _TYPED},
}
_TOKEN_ANSWERS = {
    "401": {"description": "No valid bearer token"},
    "403": {"description": "The token lacks the scope this operation needs"},
}
_TRANSIENT = {"503": {"description": "A transient fault (the database away); retry after "
                                     "Retry-After seconds", "content": _TYPED}}
# Routes whose own refusals are not described by their decorators.
_OWN_ANSWERS = {
    ("post", "/graphql"): {"400": {"description": "A request that is not GraphQL over HTTP "
                                                  "(not JSON, a syntax error, an unknown "
                                                  "field, a missing variable, too complex)"}},
    ("post", "/oauth2/token"): {
        "400": {"description": "A malformed grant (invalid_request, unsupported_grant_type, "
                               "invalid_scope)"},
        "401": {"description": "Unknown client or wrong secret (invalid_client)"},
        "429": {"description": "Too many failed attempts; retry after Retry-After seconds"}},
    ("post", "/webhooks/stripe"): {"400": {"description": "A missing or bad signature, or "
                                                          "an event that cannot be read"}},
}
_OPEN = {"/healthz", "/oauth2/token", "/webhooks/stripe"}


def document_answers(openapi: dict) -> dict:
    """``openapi`` with the answers every operation may give besides its own added to each
    operation (those it documents itself win)."""
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            extra = dict(_TRANSIENT)
            if method in ("post", "put", "patch"):
                extra.update(_BODY_ANSWERS)
            if path not in _OPEN:
                extra.update(_TOKEN_ANSWERS)
            extra.update(_OWN_ANSWERS.get((method, path), {}))
            for status, answer in extra.items():
                operation["responses"].setdefault(status, answer)
    return openapi
