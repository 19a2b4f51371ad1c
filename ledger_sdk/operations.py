"""What one SDK call is: a GraphQL document, its variables and how to read its result.

The clients (client.py) and the capability mixins (history.py, links.py) all build
`Operation`s; only the client knows how to send one (``_run``: tokens, retries, typed
errors). Keeping the shape here, below all of them, lets a mixin build operations without
importing the client that mixes it in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ledger_sdk.errors import BadRequestError


@dataclass
class Operation:
    document: str
    variables: dict
    field: str | None  # the root field read from ``data``; None: return ``data`` whole
    parse: Callable[[Any], Any]
    mutation: bool = False


class Operations:
    """The base of the clients and their mixins. ``_run`` is the client's: the async client
    returns an awaitable, the blocking one the value, so every method built on `_call`
    works on both."""

    ledger_ik: str | None = None

    def _run(self, op: Operation) -> Any:
        raise NotImplementedError

    def _ledger(self, ledger: str | None) -> str:
        ledger = ledger or self.ledger_ik
        if not ledger:
            raise BadRequestError("invalid_input", "ledger: pass ledger= or set the client's "
                                  "ledger_ik")
        return ledger

    def _call(self, document: str, variables: dict, field_name: str, parse) -> Any:
        mutation = document.lstrip().startswith("mutation")
        return self._run(Operation(document, variables, field_name, parse, mutation=mutation))
