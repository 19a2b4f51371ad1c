"""What makes two requests the same, and the entry rows that claim their iks."""
from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import fastjson
from ledger.commands import EntryRequest
from ledger.db import fetch
from ledger.errors import BadRequestError, LedgerError
from ledger.ledgers import Ledger
from ledger.schema.compile import CompiledEntry
from ledger.schema.model import canonical_json


def fingerprint(request: EntryRequest) -> str:
    """What makes two requests "the same" for idempotency: everything the caller sent."""
    body = {
        "type": request.type,
        "parameters": {k: str(v) for k, v in request.parameters.items()},
        "posted": request.posted.isoformat() if request.posted else None,
        "tags": request.tags,
        "groups": request.groups,
        # The wire form the lines came in before they were typed (LineInput.to_json), so
        # stored fingerprints still match.
        "lines": [line.to_json() for line in request.lines] if request.lines is not None else None,
    }
    # Stored fingerprints hash canonical_json's text. fastjson.canonical writes the same
    # text faster for everything but floats (tests/unit/test_fastjson.py); a float can hide
    # only in tags and groups handed to EntryRequest directly, bypassing build. Those keep
    # the standard library.
    plain = all(type(v) is str for kv in (request.tags, request.groups) for v in kv.values())
    text = fastjson.canonical(body) if plain else canonical_json(body)
    return hashlib.sha256(text.encode()).hexdigest()


# Whole batches travel as one JSON document each, unpacked by json_to_recordset: the
# statement text never changes (nothing to re-compile), the round trips do not grow with
# the batch, and encoding is one C-speed call (ledger.fastjson) instead of a Python loop per
# value. json, not jsonb: PostgreSQL then reads each row's fields straight from the text
# instead of first building a binary document of the whole batch, and the big documents
# use one-letter keys; both cut the server's time for the lines insert by a quarter.
INSERT_ENTRIES_SQL = (
    "INSERT INTO entries (ledger_id, ik, ik_version, fingerprint, type, description, posted, "
    "created, parameters, tags, groups) "
    "SELECT :l, u.k, u.v, u.f, u.t, u.d, coalesce(u.p, :created), :created, u.a, u.g, u.r "
    "FROM json_to_recordset(CAST(:rows AS json)) AS u(k text, v integer, f text, t text, "
    "d text, p timestamptz, a jsonb, g jsonb, r jsonb) "
    "ORDER BY u.k ON CONFLICT ON CONSTRAINT entries_ledger_ik_key DO NOTHING "
    "RETURNING ik, id")
_INSERT_ENTRIES = sa.text(INSERT_ENTRIES_SQL)


def entry_rows(ledger: Ledger, now: datetime, entries: list[CompiledEntry],
               versions: list[int]) -> dict:
    """The parameters of ``INSERT_ENTRIES_SQL``: the entry rows claiming the entries' iks,
    each at its version of the ik."""
    return {"l": ledger.id, "created": now, "rows": fastjson.dumps([{
        "k": c.request.ik, "v": v, "f": c.fingerprint, "t": c.type, "d": c.description,
        "p": c.request.posted.isoformat() if c.request.posted else None,
        "a": {k: str(x) for k, x in c.request.parameters.items()},
        "g": c.tags, "r": c.groups} for c, v in zip(entries, versions)])}


def _located(exc: LedgerError, index: int, batch: bool) -> LedgerError:
    if batch:
        return exc.at_index(index)
    exc.index = index
    return exc


_LATEST_BY_IK = sa.text(
    "SELECT DISTINCT ON (ik) ik, id, fingerprint, ik_version, reversed_by_id "
    "FROM entries WHERE ledger_id = :l AND ik = ANY(:iks) ORDER BY ik, ik_version DESC")


def claim_iks(conn: Connection, ledger: Ledger, compiled_by: dict[int, CompiledEntry],
              now: datetime, refused: dict[int, LedgerError], *, locate: bool,
              raise_refusals: bool, claimed: dict[str, int] | None = None,
              ) -> tuple[dict[str, int], dict[int, int]]:
    """Insert the entry rows that claim the requests' iks. Returns (entry id by ik claimed,
    entry id by index of each replay). An ik used for a different request is refused:
    raised when ``raise_refusals`` (located at its index in a batch when ``locate``), else
    put in ``refused``. An ik whose latest entry was reversed is claimed again as its next
    version. ``claimed``: what the caller's own insert of every entry row at version 1
    (``INSERT_ENTRIES_SQL``) returned, when it made it: entry id by ik claimed."""
    if claimed is not None:
        inserted = dict(claimed)
    else:
        # Sorted (as the insert's ORDER BY does), so two batches sharing iks wait on
        # each other in one order.
        order = sorted(compiled_by, key=lambda i: compiled_by[i].request.ik)
        inserted = dict(fetch(conn, _INSERT_ENTRIES, entry_rows(
            ledger, now, [compiled_by[i] for i in order], [1] * len(order)))) if order else {}
    replays: dict[int, int] = {}
    waiting = [i for i in compiled_by if compiled_by[i].request.ik not in inserted]
    while waiting:
        existing = {row.ik: row for row in conn.execute(_LATEST_BY_IK, {
            "l": ledger.id, "iks": [compiled_by[i].request.ik for i in waiting]})}
        reposts: list[tuple[int, int]] = []
        for i in waiting:
            c = compiled_by[i]
            row = existing[c.request.ik]
            if row.reversed_by_id is not None:
                # The ik's latest entry was reversed: posting under it again is a correction,
                # kept as the ik's next version beside the history.
                reposts.append((i, row.ik_version + 1))
                continue
            if row.fingerprint != c.fingerprint:
                exc = _located(BadRequestError(
                    "ik_conflict",
                    f"ik {c.request.ik!r} was already used for a different request in this ledger; "
                    "use a new ik for a new entry", field="ik"), i, locate)
                if raise_refusals:
                    raise exc
                refused[i] = exc
                continue
            replays[i] = row.id
        if not reposts:
            break
        got = dict(conn.execute(_INSERT_ENTRIES, entry_rows(
            ledger, now, [compiled_by[i] for i, _ in reposts], [v for _, v in reposts])).all())
        inserted.update(got)
        # Another transaction reposted the same ik first: look again at what it left.
        waiting = [i for i, _ in reposts if compiled_by[i].request.ik not in got]
    return inserted, replays
