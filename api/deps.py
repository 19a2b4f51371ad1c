"""What a route reads from the application it runs in: the database, the settings, and the
senders of messages to the workers (all kept in ``app.state`` by `api.app.create_app`)."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import Request

from ledger.db import Database
from ledger.settings import Settings

log = logging.getLogger("api")


def database(request: Request) -> Database:
    state = request.app.state
    db = getattr(state, "db", None)
    return db if db is not None else state.tokens.db


def settings(request: Request) -> Settings:
    return request.app.state.settings


def doorbell(request: Request) -> Any:
    """The doorbell publisher (`ledger.service.Doorbell`) on this app's broker, or None
    without one (the relay rings later)."""
    found = request.app.state.broker.doorbell(settings(request))
    if found is None:
        log.warning("no broker URL: no doorbell sent; the relay will post the jobs")
    return found


def send(request: Request) -> Any:
    """A `ledger.service.Send` on this app's broker, or None without one."""
    url = settings(request).redis_url
    return request.app.state.broker.send(url) if url else None
