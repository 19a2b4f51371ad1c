"""Stored schemas: versions of a key, the compatibility of a new version with the lines
already posted, and the parsed schema a ledger follows.
"""
from __future__ import annotations

import threading
import weakref
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.db import Database
from ledger.errors import NotFoundError, SchemaError
from ledger.ledgers import take_schema_head
from ledger.schema.model import Schema, SchemaIssue, SchemaVersion, canonical_json
from ledger.schema.parse import load_document, parse_schema, verify

# Keyed by the database too: ids restart in every database, and one process may serve
# several (the tests run a deployment per seed), where (schema id, version) alone would
# hand one database's schema to another's ledger.
_schema_cache: dict[tuple[object, int, int], Schema] = {}


_cache_lock = threading.Lock()

# The head (schema id, latest version, count of balance monitors) each ledger had when this
# transaction's Connection last loaded its schema (every posting does, first): the engine
# then skips looking for monitors of a ledger that has none (ledger/monitors/watch.py) at
# no cost of its own, and checks a head it was handed rather than read (posting.engine).
_heads_seen: "weakref.WeakKeyDictionary[Connection, dict[int, tuple[int, int, int]]]" = \
    weakref.WeakKeyDictionary()


def head_seen(conn: Connection, ledger_id: int) -> tuple[int, int, int] | None:
    """(schema id, version, monitor count) of the ledger as this Connection's last
    ``load_schema`` of it had them (in this transaction, since each transaction has its own
    Connection), or None."""
    with _cache_lock:
        return _heads_seen.get(conn, {}).get(ledger_id)


def monitors_seen(conn: Connection, ledger_id: int) -> int | None:
    """The ledger's count of balance monitors as ``head_seen`` has it, or None."""
    head = head_seen(conn, ledger_id)
    return None if head is None else head[2]


def load_schema(conn: Connection, ledger_id: int) -> Schema:
    """The latest schema version of a ledger (a ledger follows its schema's updates)."""
    row = take_schema_head(conn, ledger_id) or conn.execute(sa.text(
        "SELECT l.schema_id, max(v.version), l.monitors FROM ledgers l "
        "JOIN schema_versions v ON v.schema_id = l.schema_id WHERE l.id = :id "
        "GROUP BY l.schema_id, l.monitors"), {"id": ledger_id}).first()
    if row is None:
        raise NotFoundError("ledger_not_found", "the ledger has no schema")
    with _cache_lock:
        _heads_seen.setdefault(conn, {})[ledger_id] = (row[0], row[1], row[2])
    return schema_at(conn, row[0], row[1])


def schema_at(conn: Connection, schema_id: int, version: int) -> Schema:
    """A stored schema version, parsed once per process."""
    key = (conn.engine.url, schema_id, version)
    schema = _schema_cache.get(key)
    if schema is None:
        doc = conn.execute(sa.select(t.schema_versions.c.json).where(
            t.schema_versions.c.schema_id == schema_id,
            t.schema_versions.c.version == version)).scalar_one()
        schema = parse_schema(doc)
        with _cache_lock:
            _schema_cache[key] = schema
    return schema


def verify_schema(document: Any) -> list[SchemaIssue]:
    return [SchemaIssue(p, m) for p, m in verify(document)]


def store_schema(db: Database, document: Any) -> SchemaVersion:
    """Store a schema document as the next version of its key. Storing the same document
    again returns the current version instead of adding one."""
    doc = load_document(document)
    schema = parse_schema(doc)
    return db.run(lambda conn: _store_schema(conn, schema, doc))


def _store_schema(conn: Connection, schema, doc: dict) -> SchemaVersion:
    now = datetime.now(timezone.utc)
    conn.execute(pg_insert(t.schemas).values(key=schema.key, created=now)
                 .on_conflict_do_nothing(index_elements=["key"]))
    # The row lock serializes versions of one key.
    schema_id = conn.execute(sa.select(t.schemas.c.id).where(t.schemas.c.key == schema.key)
                             .with_for_update()).scalar_one()
    latest = conn.execute(sa.select(t.schema_versions).where(t.schema_versions.c.schema_id == schema_id)
                          .order_by(t.schema_versions.c.version.desc()).limit(1)).mappings().first()
    if latest is not None:
        if canonical_json(latest["json"]) == canonical_json(doc):
            return _version(schema.key, latest)
        _check_compatible(conn, schema_id, parse_schema(latest["json"]), schema)
    version = (latest["version"] if latest else 0) + 1
    conn.execute(t.schema_versions.insert().values(
        schema_id=schema_id, version=version, name=schema.name, json=doc, created=now))
    return SchemaVersion(schema.key, schema.name, version, now, doc)


def _check_compatible(conn: Connection, schema_id: int, old, new) -> None:
    """A new version may add anything, but may not remove or reshape what has lines."""
    issues = []
    changed = [p for p, a in old.accounts.items()
               if p not in new.accounts or (a.type, a.template, a.currency, a.currency_mode) != (
                   new.accounts[p].type, new.accounts[p].template, new.accounts[p].currency,
                   new.accounts[p].currency_mode)]
    if changed:
        used = conn.execute(sa.text(
            "SELECT DISTINCT a.chart_path, l.ik FROM accounts a JOIN ledgers l ON l.id = a.ledger_id "
            "WHERE l.schema_id = :s AND a.chart_path = ANY(:p) "
            "AND EXISTS (SELECT 1 FROM lines x WHERE x.account_id = a.id) ORDER BY 1 LIMIT 20"),
            {"s": schema_id, "p": changed}).all()
        for path, ledger_ik in used:
            what = "removed" if path not in new.accounts else "changed (type, template or currency)"
            issues.append((f"chartOfAccounts:{path}", f"account {path!r} is {what}, but ledger {ledger_ik!r} has lines in it"))
    gone = [k for k in old.entry_types if k not in new.entry_types]
    if gone:
        used = conn.execute(sa.text(
            "SELECT DISTINCT e.type, l.ik FROM entries e JOIN ledgers l ON l.id = e.ledger_id "
            "WHERE l.schema_id = :s AND e.type = ANY(:g) ORDER BY 1 LIMIT 20"),
            {"s": schema_id, "g": gone}).all()
        for etype, ledger_ik in used:
            issues.append(("ledgerEntries.types", f"entry type {etype!r} is removed, but ledger {ledger_ik!r} has entries of it"))
    if issues:
        raise SchemaError(issues)


def _version(key: str, row) -> SchemaVersion:
    return SchemaVersion(key, row["name"], row["version"], row["created"], row["json"])


def get_schema(db: Database, key: str, version: int | None = None) -> SchemaVersion:
    versions = list_schema_versions(db, key)
    if version is None:
        return versions[-1]
    for v in versions:
        if v.version == version:
            return v
    raise NotFoundError("schema_not_found", f"schema {key!r} has no version {version}", field="version")


def list_schema_versions(db: Database, key: str) -> list[SchemaVersion]:
    with db.transaction() as conn:
        rows = conn.execute(sa.select(t.schema_versions).join(t.schemas)
                            .where(t.schemas.c.key == key)
                            .order_by(t.schema_versions.c.version)).mappings().all()
    if not rows:
        raise NotFoundError("schema_not_found", f"no schema with key {key!r}", field="schema.key")
    return [_version(key, r) for r in rows]
