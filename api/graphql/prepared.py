"""The schema extension that lets the HTTP endpoint hand Strawberry a document it has
already parsed, measured and validated, and that stops an execution past its deadline.

Strawberry would otherwise parse and validate the text again on every request; and a
resolver thread cannot be interrupted from outside, so each field checks the request's
deadline before it resolves.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator

from strawberry.extensions import SchemaExtension

from ledger.errors import InternalError

TIMEOUT_CODE = "timeout"


def timeout_error(seconds: float) -> InternalError:
    return InternalError(TIMEOUT_CODE, f"the request ran longer than {seconds:g} seconds and "
                         "was stopped; retry it later (a mutation with the same ik), or ask "
                         "for less", retryable=True)


class PreparedDocument(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        document = getattr(context, "document", None)
        if document is not None:
            execution.graphql_document = document
            # Validated already (and cached with the document): an empty list, not None,
            # tells Strawberry to skip its own validation.
            execution.pre_execution_errors = []
        yield

    def resolve(self, _next: Callable, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        context = info.context
        deadline = getattr(context, "deadline", None)
        if deadline is not None and time.monotonic() > deadline:
            raise timeout_error(context.timeout_seconds)
        return _next(root, info, *args, **kwargs)
