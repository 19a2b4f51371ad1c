"""Errors as the seeds' GraphQL shows them: the Error interface and its types, and how a
mutation turns a `LedgerError` (or a forced error, or a surprise) into a union member."""
from __future__ import annotations

import logging
from typing import Callable, TypeVar, Union

import strawberry
from strawberry.types import Info

from api.graphql.context import Context
from ledger.errors import BadRequestError as LedgerBadRequest
from ledger.errors import LedgerError

log = logging.getLogger("api.graphql")

R = TypeVar("R")

FORCED_MESSAGE = "forced by the X-Fragment-Return-Error request header; nothing was processed"


@strawberry.interface(description="What every error result carries.")
class Error:
    code: str
    message: str
    retryable: bool


@strawberry.type(description="The request can never succeed as sent; do not retry it.")
class BadRequestError(Error):
    pass


@strawberry.type(description="A transient failure: retry with the same ik and backoff.")
class InternalError(Error):
    pass


@strawberry.type(description="Something the request names does not exist.")
class NotFoundError(Error):
    pass


def error_result(exc: LedgerError) -> Union[BadRequestError, InternalError]:
    """A ledger error as the mutation union member the seeds' clients expect. NotFound is
    answered as BadRequestError (with its own code) because the seeds' mutation unions are
    exactly ``Result | BadRequestError | InternalError``."""
    if exc.typename == "InternalError":
        return InternalError(code=exc.code, message=exc.message, retryable=True)
    return BadRequestError(code=exc.code, message=exc.message, retryable=False)


def bad(field: str, message: str) -> LedgerBadRequest:
    """An ``invalid_input`` error naming ``field``, to raise."""
    return LedgerBadRequest("invalid_input", f"{field}: {message}", field=field)


def mutate(info: Info, run: Callable[[], R]):
    """Run one mutation's body and record its outcome for /metrics."""
    result = _mutate_once(info, run)
    info.context.outcomes.append((info.field_name, type(result).__name__))
    return result


def _mutate_once(info: Info, run: Callable[[], R]):
    """Honour a forced error, map ledger errors to union members, and never let an
    unexpected exception's text (SQL, paths) reach the client."""
    ctx: Context = info.context
    if ctx.force_error == "InternalError":
        return InternalError(code="internal_error", message=FORCED_MESSAGE, retryable=True)
    if ctx.force_error == "BadRequestError":
        return BadRequestError(code="bad_request", message=FORCED_MESSAGE, retryable=False)
    try:
        return run()
    except LedgerError as exc:
        return error_result(exc)
    except Exception:
        log.exception("unexpected failure in mutation %s", info.field_name)
        return InternalError(code="internal_error",
                             message="internal error; retry the request with the same ik",
                             retryable=True)
