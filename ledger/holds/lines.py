"""Posted and pending lines in one list (``lines(status: "all")``): the posted lines of
``list_lines`` and the lines of pending holds merged newest first, each stream read a page
at a time from its own keyset, so a page costs two bounded reads whatever the history."""
from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy.engine import Connection

from ledger.errors import BadRequestError
from ledger.history.model import Page, PageInfo
from ledger.history.queries import DEFAULT_PAGE, MAX_PAGE, encode_cursor, list_lines
from ledger.holds.store import account_hold_lines
from ledger.ledgers import Ledger


def _decode(after: Any) -> dict:
    bad = BadRequestError("invalid_input", "after: not a cursor of this list; pass the "
                          "endCursor it returned", field="after")
    if after is None:
        return {}
    if not isinstance(after, str) or not after.startswith("all.") or len(after) > 600:
        raise bad
    try:
        raw = after[4:]
        doc = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except ValueError:
        raise bad from None
    if not isinstance(doc, dict) or set(doc) - {"p", "h"} or not all(
            isinstance(v, str) for v in doc.values()):
        raise bad
    return doc


def _encode(doc: dict) -> str:
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return "all." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def all_lines(conn: Connection, ledger: Ledger, path: str | None, first: Any,
              after: Any) -> Page:
    """A page of ``(Line, status)``: posted lines (status None: as their entry says) and
    pending hold lines (``pending``, at their hold's creation time), newest first, of one
    account (``path``) or the whole ledger. ``after``: the page's ``end_cursor`` (it holds
    a position in each stream)."""
    size = DEFAULT_PAGE if first is None else first
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE:
        raise BadRequestError("invalid_input", f"first: between 1 and {MAX_PAGE}",
                              field="first")
    at = _decode(after)
    posted = list_lines(conn, ledger, path, None, size, at.get("p"), None, None)
    held = account_hold_lines(conn, ledger, path, "pending", size, at.get("h"))
    merged = sorted([(line.posted, 1, int(line.id), line, None) for line in posted.nodes]
                    + [(line.posted, 0, int(line.id[1:]), line, s) for line, s in held.nodes],
                    key=lambda x: x[:3], reverse=True)
    page = merged[:size]
    doc = dict(at)
    for when, kind, number, _, _ in page:
        doc["p" if kind else "h"] = encode_cursor("line" if kind else "hold", when, number)
    more = (len(merged) > size or posted.page_info.has_next_page
            or held.page_info.has_next_page)
    end = _encode(doc) if page else after
    return Page([(x[3], x[4]) for x in page], PageInfo(more, after is not None, None, end))
