"""REST ``GET /v1/events``: the event feed for consumers that poll (ledger/events/store.py).

Gap-free and ordered: pass the ``endCursor`` of a page as ``after`` to read what follows.
An event that commits late shows up after the ones already read, never before them.
"""
from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, Query, Request

from api import deps
from api.auth import require_scope
from api.errors import error_response
from api.v1 import _TYPED_ERROR
from ledger import service
from ledger.errors import LedgerError

router = APIRouter(prefix="/v1", tags=["events"])

_BAD = {"description": "A bad cursor, event type or page size; the field is named",
        "content": _TYPED_ERROR}
_NOT_FOUND = {"description": "No such ledger", "content": _TYPED_ERROR}


def event_json(event: service.Event) -> dict:
    return {"id": event.id, "type": event.type, "created": event.created.isoformat(),
            "ledger": {"ik": event.ledger_ik} if event.ledger_ik else None,
            "payload": event.payload, "cursor": event.cursor}


@router.get("/events", summary="Events after a cursor, oldest first, without gaps",
            responses={404: _NOT_FOUND, 422: _BAD})
def events(request: Request,
           after: Optional[str] = Query(None, description="endCursor (or an event's cursor) "
                                        "of the previous page; from the start when absent"),
           types: Optional[str] = Query(None, description="Comma-separated event types, "
                                        "e.g. entry.posted,job.failed"),
           ledger: Optional[str] = Query(None, description="Only this ledger's events (ik)"),
           first: int = Query(100, description="Page size, 1 to 500"),
           _principal=Depends(require_scope("read"))):
    wanted = [t.strip() for t in types.split(",") if t.strip()] if types is not None else None
    try:
        page = service.list_events(deps.database(request), after=after, types=wanted,
                                   ledger_ik=ledger, first=first)
    except LedgerError as exc:
        return error_response(exc)
    return {"events": [event_json(e) for e in page.events], "endCursor": page.end_cursor}
