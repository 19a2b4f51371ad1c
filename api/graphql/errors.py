"""Errors as the seeds' GraphQL shows them: the Error interface and its types, and how a
mutation turns a `LedgerError` (or a forced error, or a surprise) into a union member."""
from __future__ import annotations

import logging
from typing import Awaitable, Callable, TypeVar, Union

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
    """Run one mutation's body and record its outcome for /metrics. A result kept when the
    document ran on the event loop first (``Context.posted``) is answered as it is."""
    ctx: Context = info.context
    result = ctx.posted.get(info.path.key)
    if result is None:
        result = _forced(ctx)
    if result is None:
        try:
            result = run()
        except Exception as exc:
            result = _failed(info, exc)
    ctx.outcomes.append((info.field_name, type(result).__name__))
    return result


async def mutate_async(info: Info, run: Callable[[], Awaitable[R]]):
    """``mutate`` for a body that awaits (on the event loop); its result is kept in
    ``Context.posted`` in case the document must run again in a thread."""
    ctx: Context = info.context
    result = _forced(ctx)
    if result is None:
        try:
            result = await run()
        except Exception as exc:
            result = _failed(info, exc)
    ctx.posted[info.path.key] = result
    ctx.outcomes.append((info.field_name, type(result).__name__))
    return result


def _forced(ctx: Context):
    """The error the caller forced (X-Fragment-Return-Error), answered without touching the
    ledger; None when none was."""
    if ctx.force_error == "InternalError":
        return InternalError(code="internal_error", message=FORCED_MESSAGE, retryable=True)
    if ctx.force_error == "BadRequestError":
        return BadRequestError(code="bad_request", message=FORCED_MESSAGE, retryable=False)
    return None


def _failed(info: Info, exc: Exception):
    """A ledger error as its union member; anything unexpected as an InternalError whose
    text (SQL, paths) never reaches the client."""
    if isinstance(exc, LedgerError):
        return error_result(exc)
    log.error("unexpected failure in mutation %s", info.field_name, exc_info=exc)
    return InternalError(code="internal_error",
                         message="internal error; retry the request with the same ik",
                         retryable=True)
