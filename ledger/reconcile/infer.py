"""Which entry type reconciles a tx when the caller names none (seed 001:
``reconcile_tx(external_ref=charge_id, user_id=user_id)``).

The candidates are the schema's entry types with a line on a linked account that can
mirror the tx's external account (and, when the line names its tx, can name this one).
Of those, the ones the call's parameters fit: every parameter given is one the type takes,
and every one it needs is given or comes from the tx (the one unknown of a linked line's
amount, or a line's ``tx.externalId`` that is exactly one parameter). One fits: that one.
None or several: a BadRequestError that names them, so the caller can pick.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.commands import EntryRequest
from ledger.errors import BadRequestError, NotFoundError
from ledger.schema.model import Account, EntryType, LineType, Schema, Text


@dataclass(frozen=True)
class _Mirror:
    """An external account the tx was synced into."""

    link_id: str
    external_id: str
    currency: str | None


def _could_be(text: Text, params: dict[str, str], value: str) -> bool:
    """Whether ``text`` renders to ``value`` for some values of the parameters not given."""
    pattern = "".join(re.escape(part) if i % 2 == 0 else
                      (re.escape(params[part]) if part in params else ".+")
                      for i, part in enumerate(text.parts))
    return re.fullmatch(pattern, value, re.DOTALL) is not None


def _mirrors(account: Account, params: dict[str, str], found: list[_Mirror]) -> bool:
    linked = account.linked
    if isinstance(linked, str):
        # A native link's account is the one in the ledger account's currency.
        return any(m.link_id == linked and (account.currency is None or m.currency is None
                                             or m.currency.upper() == account.currency.upper())
                   for m in found)
    return any(_could_be(Text.parse(linked["linkId"]), params, m.link_id)
               and _could_be(Text.parse(linked["externalId"]), params, m.external_id)
               for m in found)


def _tx_parameter(line: LineType) -> str | None:
    """The parameter a line's ``tx.externalId`` is exactly (``{{bank_transaction_id}}``)."""
    if line.tx is not None and len(line.tx.parts) == 3 and line.tx.parts[0::2] == ("", ""):
        return line.tx.parts[1]
    return None


def _takes(schema: Schema, line: LineType, params: dict[str, str], tx_ref: str,
           found: list[_Mirror]) -> bool:
    account = schema.accounts[line.path.account]
    if account.linked is None:
        return False
    if line.tx is not None and not _could_be(line.tx, params, tx_ref):
        return False
    return _mirrors(account, params, found)


def _needed(et: EntryType) -> set[str]:
    """Every parameter posting ``et`` needs: its lines', conditions' and groups', the ones
    naming a linked account, and the ones its description and tags show."""
    needed = set(et.params) | set(et.link_params)
    if et.description is not None:
        needed.update(et.description.params)
    for _, text in et.tags:
        needed.update(text.params)
    for line in et.lines or ():
        if line.description is not None:
            needed.update(line.description.params)
    return needed


def _misfit(et: EntryType, lines: list[LineType],
            given: set[str]) -> tuple[str | None, set[str]]:
    """(why the parameters given do not fit ``et``, or None; parameters the tx fills)."""
    needed = _needed(et)
    unknown = sorted(given - needed - set(et.rules))
    if unknown:
        return f"{et.type} does not take {', '.join(unknown)}", set()
    from_tx: set[str] = set()
    fills: set[str] = set()
    for line in lines:
        param = _tx_parameter(line)
        if param is not None and param not in given:
            fills.add(param)
        if line.amount is not None:
            open_params = [p for p in line.amount.params if p not in given]
            if len(open_params) == 1:
                from_tx.add(open_params[0])
    missing = sorted(needed - given - from_tx - fills)
    if missing:
        return f"{et.type} needs {', '.join(missing)}", set()
    return None, fills


def _synced(conn: Connection, schema: Schema, params: dict[str, str],
            tx_ref: str) -> list[_Mirror]:
    """The external accounts holding a live tx ``tx_ref`` in a link the schema links to."""
    links: set[str] = set()
    any_link = False
    for account in schema.accounts.values():
        linked = account.linked
        if isinstance(linked, str):
            links.add(linked)
        elif linked is not None:
            link = Text.parse(linked["linkId"])
            if any(p not in params for p in link.params):
                any_link = True  # named by a parameter not given: it could be any link
            else:
                links.add(link.render(params))
    if not links and not any_link:
        return []
    rows = conn.execute(sa.text(
        "SELECT k.public_id AS link_id, a.external_id, a.currency "
        "FROM external_accounts a JOIN links k ON k.id = a.link_id "
        "JOIN external_txs x ON x.account_id = a.id AND x.external_id = :ref "
        "AND x.deleted IS NULL "
        "WHERE (CAST(:any AS boolean) OR k.public_id = ANY(CAST(:links AS text[]))) "
        "ORDER BY k.public_id, a.external_id"),
        {"ref": tx_ref, "any": any_link, "links": sorted(links)}).all()
    return [_Mirror(r.link_id, r.external_id, r.currency) for r in rows]


def choose_entry_type(conn: Connection, schema: Schema, request: EntryRequest,
                      tx_ref: str | None) -> None:
    """Unless the request names its type, set ``request.type`` to the one entry type that
    reconciles ``tx_ref`` with the request's parameters, filling the parameter a line's tx
    is named by; BadRequestError naming the candidates when none or several fit,
    NotFoundError for an unknown tx."""
    if request.type:
        return
    field = "entry.type"
    if request.lines is not None:
        raise BadRequestError("invalid_input", f"{field}: runtime lines need their entry "
                              "type; name it", field=field)
    if tx_ref is None:
        raise BadRequestError("invalid_input", f"{field}: name the entry type, or the tx "
                              "(tx.externalId) that picks it", field=field)
    found = _synced(conn, schema, request.parameters, tx_ref)
    if not found:
        raise NotFoundError("tx_not_found", f"tx.externalId: no synced tx {tx_ref!r} in an "
                            f"external account schema {schema.key!r} links to; sync it first",
                            field="tx.externalId")
    given = set(request.parameters)
    fits: list[tuple[str, set[str]]] = []
    misfits: list[str] = []
    for et in sorted(schema.entry_types.values(), key=lambda e: e.type):
        lines = [line for line in et.lines or ()
                 if _takes(schema, line, request.parameters, tx_ref, found)]
        if not lines:
            continue
        why, fills = _misfit(et, lines, given)
        if why is None:
            fits.append((et.type, fills))
        else:
            misfits.append(why)
    where = ", ".join(f"{m.external_id!r} of link {m.link_id!r}" for m in found)
    if len(fits) > 1:
        names = ", ".join(name for name, _ in fits)
        raise BadRequestError("entry_type_ambiguous", f"{field}: tx {tx_ref!r} ({where}) "
                              f"fits entry types {names}; name one", field=field)
    if not fits:
        if misfits:
            raise BadRequestError("entry_type_not_found", f"{field}: tx {tx_ref!r} ({where}) "
                                  f"fits no entry type with the parameters given: "
                                  f"{'; '.join(misfits)}", field=field)
        raise BadRequestError("entry_type_not_found", f"{field}: no entry type of schema "
                              f"{schema.key!r} posts to a ledger account mirroring {where}",
                              field=field)
    request.type, fills = fits[0]
    for param in sorted(fills):
        request.parameters[param] = tx_ref
