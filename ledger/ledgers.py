"""Ledgers: created from a stored schema, found by ik or id."""
from __future__ import annotations

import re
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.db import Database, fetch
from ledger.errors import BadRequestError, NotFoundError
from ledger.text import check_storable


@dataclass
class Ledger:
    id: int
    ik: str
    name: str
    schema_key: str
    created: datetime
    balance_utc_offset: str


@dataclass
class CreateLedgerResult:
    ledger: Ledger
    is_ik_replay: bool


_OFFSET = re.compile(r"^([+-])(\d{2}):00$")


def _parse_offset(value: str) -> str:
    m = _OFFSET.match(value or "")
    hours = int(m.group(2)) * (-1 if m.group(1) == "-" else 1) if m else None
    if hours is None or not -11 <= hours <= 12:
        raise BadRequestError("invalid_input", f"ledger.balanceUTCOffset: expected whole hours from -11:00 to +12:00 like \"+05:00\", got {value!r}", field="ledger.balanceUTCOffset")
    return f"{'-' if hours < 0 else '+'}{abs(hours):02d}:00"


def create_ledger(db: Database, ik: str, name: str, schema_key: str,
                  balance_utc_offset: str = "+00:00") -> CreateLedgerResult:
    if not isinstance(ik, str) or not ik.strip():
        raise BadRequestError("invalid_input", "ik: an idempotency key is required", field="ik")
    if not isinstance(name, str) or not name.strip():
        raise BadRequestError("invalid_input", "ledger.name: a name is required", field="ledger.name")
    check_storable(ik, "ik")
    check_storable(name, "ledger.name")
    offset = _parse_offset(balance_utc_offset)

    def run(conn: Connection) -> CreateLedgerResult:
        schema_id = conn.execute(sa.select(t.schemas.c.id).where(t.schemas.c.key == schema_key)).scalar()
        if schema_id is None:
            raise NotFoundError("schema_not_found", f"schema.key: no schema with key {schema_key!r}; store it first", field="schema.key")
        now = datetime.now(timezone.utc)
        new_id = conn.execute(pg_insert(t.ledgers).values(
            ik=ik, name=name, schema_id=schema_id, balance_utc_offset=offset, created=now)
            .on_conflict_do_nothing(index_elements=["ik"]).returning(t.ledgers.c.id)).scalar()
        ledger = load_ledger(conn, ik)
        if new_id is None and (ledger.name, ledger.schema_key, ledger.balance_utc_offset) != (name, schema_key, offset):
            raise BadRequestError("ik_conflict", f"ik: ledger {ik!r} already exists with a different name, schema or offset", field="ik")
        return CreateLedgerResult(ledger, new_id is None)

    return db.run(run)


# Ids are PostgreSQL bigints handed out from 1.
MAX_ID = 2**63 - 1


def parse_id(value: Any) -> int | None:
    """The row id ``value`` names (an int, or a string of ASCII digits with no sign), or
    None when it cannot name one: malformed, zero, or past the bigint range. Callers
    answer None as "not found", as the seeds' API does for an invalid ID."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and 0 < len(value) <= 19 and value.isascii() and value.isdigit():
        number = int(value)
    else:
        return None
    return number if 0 < number <= MAX_ID else None


# What each transaction's Connection read of a ledger's schema alongside the ledger itself
# (schema id, latest version, monitor count): posting and reads load the ledger and then its
# schema, and reading both in one statement saves a round trip on every request.
_heads: "weakref.WeakKeyDictionary[Connection, dict[int, tuple[int, int, int]]]" = \
    weakref.WeakKeyDictionary()
_heads_lock = threading.Lock()


def take_schema_head(conn: Connection, ledger_id: int) -> tuple[int, int, int] | None:
    """(schema id, latest version, monitor count) as this transaction's ``load_ledger`` of
    the ledger read them, once: a later call reads afresh (None)."""
    with _heads_lock:
        return _heads.get(conn, {}).pop(ledger_id, None)


def hand_schema_head(conn: Connection, ledger_id: int, head: tuple[int, int, int]) -> None:
    """Give this transaction's next ``take_schema_head`` of the ledger ``head``, as a
    ``load_ledger`` that read it would: for a caller that remembered the ledger and its
    head from an earlier transaction, and checks them in its own statements."""
    with _heads_lock:
        _heads.setdefault(conn, {})[ledger_id] = head


# Written out once: the first statement of every post and read, where building a Core
# select and its cache key each time cost more than the round trip.
_LOAD_LEDGER = sa.text(
    "SELECT l.id, l.ik, l.name, l.schema_id, l.balance_utc_offset, l.created, l.monitors, "
    "s.key AS schema_key, (SELECT max(v.version) FROM schema_versions v "
    "WHERE v.schema_id = l.schema_id) AS schema_version "
    "FROM ledgers l JOIN schemas s ON s.id = l.schema_id WHERE l.ik = :ik")


def load_ledger(conn: Connection, ik: str) -> Ledger:
    if not isinstance(ik, str):
        raise BadRequestError("invalid_input", "ledger.ik: expected a string", field="ledger.ik")
    check_storable(ik, "ledger.ik")
    rows = fetch(conn, _LOAD_LEDGER, {"ik": ik})
    if not rows:
        raise NotFoundError("ledger_not_found", f"ledger.ik: no ledger with ik {ik!r}", field="ledger.ik")
    id_, ik, name, schema_id, offset, created, monitors, schema_key, version = rows[0]
    if version is not None:
        with _heads_lock:
            _heads.setdefault(conn, {})[id_] = (schema_id, version, monitors)
    return Ledger(id_, ik, name, schema_key, created, offset)


def get_ledger(db: Database, ik: str) -> Ledger:
    with db.transaction() as conn:
        return load_ledger(conn, ik)


def get_ledger_by_id(db: Database, id: Any) -> Ledger:
    """A ledger by its numeric id (NotFoundError ``ledger_not_found``)."""
    number = parse_id(id.strip() if isinstance(id, str) else id)
    with db.transaction() as conn:
        ik = conn.execute(sa.select(t.ledgers.c.ik).where(t.ledgers.c.id == number)).scalar() \
            if number is not None else None
        if ik is None:
            raise NotFoundError("ledger_not_found", f"ledger.id: no ledger with id {id!r}", field="ledger.id")
        return load_ledger(conn, ik)


def sole_ledger_ik(db: Database, field: str) -> str:
    """The ik of the deployment's only ledger, for an entry that names none (seed 002's
    runtime-entry variables omit ``entry.ledger``: its dashboard has one selected). With
    none or several there is no telling which one was meant: ``invalid_input`` naming
    ``field`` and how to choose."""
    with db.transaction() as conn:
        iks = conn.execute(sa.select(t.ledgers.c.ik).order_by(t.ledgers.c.id).limit(3)).scalars().all()
    if len(iks) == 1:
        return iks[0]
    if not iks:
        raise BadRequestError("invalid_input", f"{field}: no ledger exists yet; create one "
                              "(createLedger), then name it: {\"ik\": \"my-ledger\"}", field=field)
    shown = ", ".join(repr(ik) for ik in iks[:2]) + (", ..." if len(iks) > 2 else "")
    raise BadRequestError("invalid_input", f"{field}: this workspace holds several ledgers "
                          f"({shown}), so name the one to post to: {{\"ik\": \"...\"}} or "
                          "{\"id\": \"...\"}; it may be left out only while there is one",
                          field=field)


def list_ledgers(db: Database) -> list[Ledger]:
    with db.transaction() as conn:
        rows = conn.execute(sa.select(t.ledgers, t.schemas.c.key.label("schema_key"))
                            .join(t.schemas, t.schemas.c.id == t.ledgers.c.schema_id)
                            .order_by(t.ledgers.c.id)).mappings().all()
    return [Ledger(r["id"], r["ik"], r["name"], r["schema_key"], r["created"], r["balance_utc_offset"])
            for r in rows]
