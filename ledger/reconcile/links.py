"""Links and their external accounts, and which ledger account mirrors which."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.db import Database
from ledger.errors import BadRequestError, NotFoundError
from ledger.ledgers import Ledger, parse_id
from ledger.reconcile.model import (
    MAX_ACCOUNTS_PER_SYNC,
    CreateLinkResult,
    ExternalAccount,
    Link,
    _account,
    _external_id,
    _link,
    _link_id_of,
    _text,
)
from ledger.schema.model import Account, Text
from ledger.text import check_storable, unstorable


def _find_link(conn: Connection, link_id: str, field: str = "link", lock: bool = False):
    if not isinstance(link_id, str) or unstorable(link_id):
        raise NotFoundError("link_not_found", f"{field}: no link with id {link_id!r}", field=field)
    q = sa.select(t.links).where(t.links.c.public_id == link_id)
    row = conn.execute(q.with_for_update(read=True) if lock else q).first()
    if row is None:
        raise NotFoundError("link_not_found", f"{field}: no link with id {link_id!r}", field=field)
    return row


def create_custom_link(db: Database, ik: str, name: str, link_id: str | None = None) -> CreateLinkResult:
    """Create a custom link. Its id is ``link_id`` when given, else the ik, so a schema can
    name the link (``linkedAccount.linkId``) before it exists."""
    return db.run(lambda conn: create_link_in(conn, ik, name, link_id, "custom"))


def create_link_in(conn: Connection, ik: str, name: str, link_id: str | None, kind: str) -> CreateLinkResult:
    ik = _external_id(ik, "ik")
    name = _text(name, "name", limit=256)
    public_id = _external_id(link_id, "id") if link_id is not None else ik
    now = datetime.now(timezone.utc)
    new = conn.execute(pg_insert(t.links).values(public_id=public_id, ik=ik, name=name, kind=kind,
                                                 created=now)
                       .on_conflict_do_nothing().returning(t.links.c.id)).scalar()
    if new is not None:
        return CreateLinkResult(Link(public_id, name, kind, now), False)
    row = conn.execute(sa.select(t.links).where(t.links.c.ik == ik)).first()
    if row is None:
        raise BadRequestError("ik_conflict", f"id: a link with id {public_id!r} already exists under another ik", field="id")
    if (row.public_id, row.name, row.kind) != (public_id, name, kind):
        raise BadRequestError("ik_conflict", f"ik: link {ik!r} already exists with another id, name or kind", field="ik")
    return CreateLinkResult(_link(row), True)


def sync_custom_accounts(db: Database, link: Any, accounts: list[dict]) -> list[ExternalAccount]:
    """Create or update external accounts of a custom link, keyed by ``externalId`` (unique
    in the link, so syncing the same account again changes nothing). ``name`` may change;
    a ``currency`` once set may not."""
    link_id = _link_id_of(link, "link")
    if not isinstance(accounts, list) or not accounts:
        raise BadRequestError("invalid_input", "accounts: expected a non-empty list", field="accounts")
    if len(accounts) > MAX_ACCOUNTS_PER_SYNC:
        raise BadRequestError("invalid_input", f"accounts: at most {MAX_ACCOUNTS_PER_SYNC} a call, got {len(accounts)}", field="accounts")
    parsed = []
    seen: set[str] = set()
    for i, a in enumerate(accounts):
        f = f"accounts[{i}]"
        if not isinstance(a, dict):
            raise BadRequestError("invalid_input", f"{f}: expected an object", field=f)
        ext = _external_id(a.get("externalId"), f"{f}.externalId")
        if ext in seen:
            raise BadRequestError("invalid_input", f"{f}.externalId: {ext!r} is given twice", field=f"{f}.externalId")
        seen.add(ext)
        cur = a.get("currency")
        code = cur.get("code") if isinstance(cur, dict) else cur
        if code is not None and (not isinstance(code, str) or not re.match(r"^[A-Za-z0-9_-]{1,32}$", code)):
            raise BadRequestError("invalid_input", f"{f}.currency: invalid currency {cur!r}", field=f"{f}.currency")
        parsed.append((ext, _text(a.get("name"), f"{f}.name", required=False, limit=256), code))

    def run(conn: Connection) -> list[ExternalAccount]:
        row = _find_link(conn, link_id, lock=True)
        return sync_accounts_in(conn, row, parsed)

    return db.run(run)


def sync_accounts_in(conn: Connection, link_row, parsed: list[tuple[str, str | None, str | None]]) -> list[ExternalAccount]:
    now = datetime.now(timezone.utc)
    ea = t.external_accounts
    out = []
    for i, (ext, name, currency) in sorted(enumerate(parsed), key=lambda p: p[1][0]):
        conn.execute(pg_insert(ea).values(link_id=link_row.id, external_id=ext, name=name,
                                          currency=currency, created=now, updated=now)
                     .on_conflict_do_nothing(constraint="external_accounts_link_external_key"))
        row = conn.execute(sa.select(ea).where(ea.c.link_id == link_row.id, ea.c.external_id == ext)
                           .with_for_update()).first()
        if currency is not None and row.currency is not None and row.currency != currency:
            raise BadRequestError("immutable_field", f"accounts[{i}].currency: account {ext!r} holds {row.currency}; its currency cannot change", field=f"accounts[{i}].currency")
        if (name is not None and name != row.name) or (currency is not None and row.currency is None):
            row = conn.execute(ea.update().where(ea.c.id == row.id).values(
                name=name if name is not None else row.name,
                currency=row.currency or currency, updated=now).returning(*ea.c)).first()
        out.append((i, _account(row, link_row.public_id)))
    return [a for _, a in sorted(out, key=lambda p: p[0])]


def _match_account(conn: Connection, value: Any, field: str, link_row=None):
    """An external account from ``{linkId, id}`` or ``{linkId, externalId}`` (seed 002 uses
    both: ``id`` is our id of the account, or, within a link, its external id)."""
    if not isinstance(value, dict):
        raise BadRequestError("invalid_input", f"{field}: expected {{\"linkId\": ..., \"externalId\": ...}}", field=field)
    link_id = value.get("linkId")
    if link_id is not None:
        if not isinstance(link_id, str):
            raise BadRequestError("invalid_input", f"{field}.linkId: expected a string", field=f"{field}.linkId")
        if link_row is not None and link_id != link_row.public_id:
            raise BadRequestError("invalid_input", f"{field}.linkId: every tx of a call must belong to link {link_row.public_id!r}, not {link_id!r}", field=f"{field}.linkId")
        row = link_row if link_row is not None else _find_link(conn, link_id, f"{field}.linkId")
    else:
        row = link_row
    ea = t.external_accounts
    ext, acc_id = value.get("externalId"), value.get("id")
    found = None
    for name, text in (("externalId", ext), ("id", acc_id)):
        if isinstance(text, str):
            check_storable(text, f"{field}.{name}")
    if isinstance(acc_id, str) and parse_id(acc_id) is not None:
        q = sa.select(ea).where(ea.c.id == parse_id(acc_id))
        if row is not None:
            q = q.where(ea.c.link_id == row.id)
        found = conn.execute(q).first()
    if found is None and row is not None and (isinstance(ext, str) or isinstance(acc_id, str)):
        found = conn.execute(sa.select(ea).where(ea.c.link_id == row.id,
                                                 ea.c.external_id == (ext if isinstance(ext, str) else acc_id))).first()
    if found is None:
        shown = ext if isinstance(ext, str) else acc_id
        raise NotFoundError("external_account_not_found", f"{field}: no external account {shown!r} in link {row.public_id if row is not None else link_id!r}; sync it with syncCustomAccounts first", field=field)
    if row is None:
        row = conn.execute(sa.select(t.links).where(t.links.c.id == found.link_id)).first()
    return row, found


def _render(text: str, params: dict[str, str], field: str, what: str = "the linked account") -> str:
    try:
        return Text.parse(text).render(params)
    except KeyError as exc:
        name = exc.args[0]
        raise BadRequestError("missing_parameter", f"entry.parameters.{name}: {what} of {field} needs parameter {name!r}", field=f"entry.parameters.{name}") from None


def _resolve_linked(conn: Connection, account: Account, params: dict[str, str], field: str,
                    currency: str | None):
    """(link row, external account row) a linked ledger account mirrors."""
    linked = account.linked
    if isinstance(linked, str):
        # Seed 000's short form names a configured (native) link; its external account is
        # the one in the ledger account's currency (the Stripe balance in that currency).
        link_row = _find_link(conn, linked, f"{field} (linkedAccount {linked!r})")
        rows = conn.execute(sa.select(t.external_accounts).where(
            t.external_accounts.c.link_id == link_row.id).order_by(t.external_accounts.c.id)).all()
        match = [r for r in rows if currency and r.currency and r.currency.upper() == currency.upper()]
        if not match and len(rows) == 1 and rows[0].currency is None:
            match = rows
        if not match:
            raise NotFoundError("external_account_not_found", f"{field}: link {linked!r} has no external account in {currency}; nothing was synced for it yet", field=field)
        return link_row, match[0]
    link_id = _render(linked["linkId"], params, field)
    ext = _render(linked["externalId"], params, field)
    link_row = _find_link(conn, link_id, f"{field} (linkedAccount.linkId)")
    row = conn.execute(sa.select(t.external_accounts).where(
        t.external_accounts.c.link_id == link_row.id,
        t.external_accounts.c.external_id == ext)).first()
    if row is None:
        raise NotFoundError("external_account_not_found", f"{field}: link {link_id!r} has no external account {ext!r}; sync it with syncCustomAccounts first", field=field)
    return link_row, row


def _record_link(conn: Connection, ledger: Ledger, path: str, account_row, field: str) -> None:
    conn.execute(pg_insert(t.linked_accounts).values(
        ledger_id=ledger.id, path=path, external_account_id=account_row.id).on_conflict_do_nothing())
    held = conn.execute(sa.select(t.linked_accounts.c.external_account_id).where(
        t.linked_accounts.c.ledger_id == ledger.id, t.linked_accounts.c.path == path)).scalar()
    if held != account_row.id:
        raise BadRequestError("invalid_input", f"{field}: ledger account {path!r} already mirrors another external account; a linked account mirrors exactly one", field=field)
