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
