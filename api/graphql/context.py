"""What every resolver can reach: the database, the caller, and per-request caches."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ledger import service
from ledger.db import Database
from ledger.settings import DEFAULT_WORKSPACE_NAME, Settings

FORCE_ERROR_HEADER = "x-fragment-return-error"
FORCEABLE_ERRORS = {"internalerror": "InternalError", "badrequesterror": "BadRequestError"}


@dataclass
class Principal:
    """The API client a request acts for, as its access token says."""

    client_id: str
    scope: str


@dataclass
class Context:
    db: Database
    principal: Principal | None = None
    # The app's group committer: synchronous posts share transactions through it. None:
    # each post is its own transaction.
    committer: service.GroupCommitter | None = None
    # "InternalError" / "BadRequestError" when the caller asked for a forced error (seed 002,
    # "Error handling"): mutations answer it without touching the ledger.
    force_error: str | None = None
    # Reads that several fields of one response need (a ledger's id for every line's
    # ledgerId), fetched once per request.
    cache: dict[Any, Any] = field(default_factory=dict)
    # (mutation field, result typename) of each mutation run, for /metrics.
    outcomes: list[tuple[str, str]] = field(default_factory=list)
    # The monotonic time past which no further field resolves (api.graphql.prepared).
    deadline: float | None = None
    timeout_seconds: float = 0.0
    # The deployment's name (LEDGER_WORKSPACE_NAME), for `workspace { name }`.
    workspace_name: str = DEFAULT_WORKSPACE_NAME
    # The app's settings, for what needs more of them (webhook endpoints: the secret key).
    settings: Settings = field(default_factory=Settings)
    # True while the document runs on the event loop (api.graphql.execution): a resolver
    # may await the group committer but not block; ``db`` is then ``NO_DATABASE``.
    on_loop: bool = False
    # Mutation results by response key, kept when the document ran on the loop and must
    # run again in a thread (OffLoop): what was posted is answered, not posted again.
    posted: dict[str, Any] = field(default_factory=dict)

    def cached(self, key: Any, load):
        if key not in self.cache:
            self.cache[key] = load()
        return self.cache[key]


class OffLoop(BaseException):
    """A resolver running on the event loop needed the database: the document runs again
    in a worker thread. A BaseException, so that no resolver's error handling turns it
    into an answer and execution stops at once."""


class _NoDatabase:
    """The ``db`` of a document on the event loop: any use asks for a thread."""

    def __getattr__(self, name: str):
        raise OffLoop(name)


NO_DATABASE: Any = _NoDatabase()


_COMMITTER_LOCK = threading.Lock()


def committer_for(app) -> service.GroupCommitter | None:
    """The app's one group committer on its database, made on first use: two would split
    the batches of a ledger between them."""
    db = getattr(app.state, "db", None)
    if db is None:
        return None
    found = getattr(app.state, "group_committer", None)
    if found is not None and found.db is db:
        return found
    with _COMMITTER_LOCK:
        found = getattr(app.state, "group_committer", None)
        if found is None or found.db is not db:
            metrics = getattr(app.state, "metrics", None)
            found = app.state.group_committer = service.GroupCommitter.of(
                db, app.state.settings,
                observe=metrics.group_commit_batch if metrics is not None else None)
        return found


def force_error_from_header(value: str | None) -> str | None:
    if not value:
        return None
    return FORCEABLE_ERRORS.get(value.strip().lower())
