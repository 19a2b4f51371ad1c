"""What a request names, resolved: ledgers, accounts and entries from their match inputs,
account ids, and the reads several fields of one response share (cached per request)."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Optional

from strawberry.types import Info

from api.graphql.context import Context
from api.graphql.errors import bad
from api.graphql.inputs import LedgerAccountMatchInput, LedgerEntryMatchInput, LedgerMatchInput
from ledger import service
from ledger.errors import BadRequestError, NotFoundError


@dataclass(frozen=True)
class AccountRef:
    """An account of a ledger, as the LedgerAccount type shows it (its balances are read on
    demand). ``type`` is known when the account comes from a list, which saves a read."""

    ledger_ik: str
    path: str
    type: Optional[str] = None


# ------------------------------------------------------------------ ids

def account_id(ledger_ik: str, path: str) -> str:
    """An account's id: opaque to clients, but it names the ledger and path, so
    ``ledgerAccount(ledgerAccount: {id})`` needs no lookup table."""
    raw = json.dumps([ledger_ik, path], separators=(",", ":")).encode()
    return "lga_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_account_id(value: str) -> tuple[str, str]:
    try:
        if not value.startswith("lga_"):
            raise ValueError
        raw = value[4:]
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        ledger_ik, path = data
        if not isinstance(ledger_ik, str) or not isinstance(path, str):
            raise ValueError
        return ledger_ik, path
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise NotFoundError("ledger_account_not_found",
                            f"ledgerAccount.id: {value!r} is not a ledger account id",
                            field="ledgerAccount.id") from None


# ------------------------------------------------------------------ shared reads

def ledger_of(info: Info, ledger_ik: str) -> service.Ledger:
    ctx: Context = info.context
    return ctx.cached(("ledger", ledger_ik), lambda: service.get_ledger(ctx.db, ledger_ik))


def ledger_id_of(info: Info, ledger_ik: str) -> str:
    """A ledger's id, as a post just learned it (``known_ledger``) or read."""
    known = info.context.cache.get(("ledger id", ledger_ik))
    return str(known if known is not None else ledger_of(info, ledger_ik).id)


def ledger_ref(info: Info, ledger_ik: str):
    """The ledger for the Ledger type: known by ik and id after a post, the rest read only
    when a field asks for it; otherwise read now."""
    known = info.context.cache.get(("ledger id", ledger_ik))
    if known is None:
        return ledger_of(info, ledger_ik)
    return LedgerRef(ledger_ik, known, lambda: ledger_of(info, ledger_ik))


def known_ledger(ctx: Context, ledger_ik: str) -> None:
    """After a post through the group committer: the ledger's id as the committer knows it,
    so that ``ledgerId`` and ``ledger { id ik }`` of the answer read nothing."""
    known = ctx.committer.known_ledger_id(ledger_ik) if ctx.committer is not None else None
    if known is not None:
        ctx.cache[("ledger id", ledger_ik)] = known


class LedgerRef:
    """A ledger by ik and id; any other attribute is the ledger ``load`` reads."""

    def __init__(self, ik: str, id: int, load):
        self.ik, self.id, self._load = ik, id, load

    def __getattr__(self, name: str):
        if name.startswith("_"):  # probes (graphql-core's __await__) read nothing
            raise AttributeError(name)
        return getattr(self._load(), name)


def entry_of(info: Info, entry_id: str) -> service.HistoryEntry:
    ctx: Context = info.context
    return ctx.cached(("entry", entry_id), lambda: service.get_ledger_entry(ctx.db, id=entry_id))


def balances_of(info: Info, ledger_ik: str, path: str, at: Any = None) -> service.AccountBalances:
    ctx: Context = info.context
    key = ("balances", ledger_ik, path) if at is None else ("balances", ledger_ik, path, at)
    return ctx.cached(key, lambda: service.account_balances(ctx.db, ledger_ik, path, at=at))


# ------------------------------------------------------------------ matches

def ledger_ik(ctx: Context, match: Optional[LedgerMatchInput], field: str) -> str:
    if match is None:
        raise bad(field, "the ledger is required, e.g. {\"ik\": \"my-ledger\"}")
    if match.ik:
        return match.ik
    if match.id:
        try:
            return service.get_ledger_by_id(ctx.db, str(match.id)).ik
        except NotFoundError:
            raise NotFoundError("ledger_not_found", f"{field}.id: no ledger {match.id!r}",
                                field=f"{field}.id") from None
    raise bad(field, "give the ledger's ik (or id)")


def entry_ledger_ik(ctx: Context, match: Optional[LedgerMatchInput], field: str) -> str:
    """The ledger an entry input posts to; left out, the deployment's only ledger."""
    if match is None:
        return service.sole_ledger_ik(ctx.db, field)
    return ledger_ik(ctx, match, field)


def entry_ref(ctx: Context, match: Optional[LedgerEntryMatchInput],
              field: str) -> tuple[Optional[str], Optional[str], Optional[str]]:
    """(id, ledger ik, ik) of an entry match: its id, or its ik within a ledger."""
    if match is None:
        raise bad(field, "the entry is required, e.g. {\"id\": \"123\"}")
    if match.id:
        ledger = ledger_ik(ctx, match.ledger, f"{field}.ledger") if match.ledger else None
        return str(match.id), ledger, None
    if not match.ik:
        raise bad(field, "give the entry's id, or its ik and ledger")
    return None, ledger_ik(ctx, match.ledger, f"{field}.ledger"), match.ik


def account_ref(ctx: Context, match: Optional[LedgerAccountMatchInput],
                field: str) -> tuple[Optional[str], str]:
    """(ledger ik or None when the match does not name one, path)."""
    if match is None:
        raise bad(field, "the account is required, e.g. {\"path\": \"assets/bank\"}")
    if match.id:
        return parse_account_id(match.id)
    if not match.path:
        raise bad(f"{field}.path", "give the account's path (or id)")
    ledger = ledger_ik(ctx, match.ledger, f"{field}.ledger") if match.ledger else None
    return ledger, match.path


def account_path(ledger: str, match: Optional[LedgerAccountMatchInput],
                 field: str) -> Optional[str]:
    """The path (or pattern) an account argument of a ledger's list names."""
    if match is None:
        return None
    if match.id:
        other, path = parse_account_id(match.id)
        if other != ledger:
            raise BadRequestError("invalid_input", f"{field}.id: that account belongs to "
                                  f"another ledger", field=f"{field}.id")
        return path
    if not match.path:
        raise BadRequestError("invalid_input", f"{field}.path: give an account path or "
                              "pattern", field=f"{field}.path")
    if match.ledger is not None and match.ledger.ik and match.ledger.ik != ledger:
        raise BadRequestError("invalid_input", f"{field}.ledger: names another ledger",
                              field=f"{field}.ledger")
    return match.path
