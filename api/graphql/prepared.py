"""How a document the endpoint has already parsed, measured and validated runs:
graphql-core's ``execute`` over the GraphQL schema Strawberry built, with the request's
deadline checked before each field resolves.

Strawberry's ``Schema.execute_sync`` would build, for every request, an execution context,
its extensions and their runner, and a middleware manager (so graphql-core wrapped every
field's resolver again), and would parse and validate the document once more unless an
extension stopped it: at 32 concurrent posts that machinery cost more CPU than the post
(README, Benchmarks). The field resolvers are Strawberry's and so are the execution
context class its resolvers expect, so the answers are the same; api.graphql.fastargs
takes the arguments of the hottest fields off Strawberry's per-call conversion.
"""
from __future__ import annotations

import inspect
import time
from typing import Any

from graphql import DocumentNode, ExecutionResult, execute
from graphql.execution.middleware import MiddlewareManager

from api.graphql.schema import schema
from ledger.errors import InternalError

TIMEOUT_CODE = "timeout"


def timeout_error(seconds: float) -> InternalError:
    return InternalError(TIMEOUT_CODE, f"the request ran longer than {seconds:g} seconds and "
                         "was stopped; retry it later (a mutation with the same ik), or ask "
                         "for less", retryable=True)


class Deadline:
    """graphql-core middleware. A resolver thread cannot be interrupted from outside, so
    each field checks the request's deadline before it resolves."""

    def resolve(self, next_, root: Any, info: Any, **args: Any) -> Any:
        context = info.context
        deadline = getattr(context, "deadline", None)
        if deadline is not None and time.monotonic() > deadline:
            raise timeout_error(context.timeout_seconds)
        return next_(root, info, **args)


# One for every request: graphql-core keeps each field's wrapped resolver in it.
_MIDDLEWARE = MiddlewareManager(Deadline())
# graphql-core 3.3 renamed execute's execution_context_class to executor_class.
_CONTEXT_CLASS = {("executor_class" if "executor_class" in inspect.signature(execute).parameters
                   else "execution_context_class"): schema.execution_context_class}


def run(document: DocumentNode, variables: dict | None, operation_name: str | None,
        context: Any) -> ExecutionResult:
    """The result of executing ``document``, which must have passed validation."""
    result = _execute(document, variables, operation_name, context)
    if inspect.isawaitable(result):
        # Every resolver of ours is synchronous; one that is not would never finish here.
        result.close()
        raise RuntimeError("a resolver returned an awaitable; the GraphQL runner "
                           "executes documents synchronously")
    return result


async def run_async(document: DocumentNode, variables: dict | None,
                    operation_name: str | None, context: Any) -> ExecutionResult:
    """``run`` on the event loop, for a context whose resolvers may await (``on_loop``)."""
    result = _execute(document, variables, operation_name, context)
    return await result if inspect.isawaitable(result) else result


def _execute(document: DocumentNode, variables: dict | None, operation_name: str | None,
             context: Any):
    return execute(schema._schema, document, context_value=context,
                   variable_values=variables, operation_name=operation_name,
                   middleware=_MIDDLEWARE, **_CONTEXT_CLASS)
