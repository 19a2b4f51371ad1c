"""Accounts: LedgerAccount (balances, balance changes, lines, entries, unreconciled txs)
and the ``ledgerAccount`` query.

A LedgerAccount is resolved from a `refs.AccountRef` (ledger ik, path, maybe its type):
every field reads what it needs through `ledger.service`, cached per request where several
fields share it."""
from __future__ import annotations

from typing import Annotated, Optional

import strawberry
from strawberry.types import Info

from api.graphql.common import CurrencyAmountConnection, PageInfo, amounts
from api.graphql.context import Context
from api.graphql.entries import (LedgerEntriesConnection, LedgerLinesConnection, entries_connection,
                                 lines_connection)
from api.graphql.errors import bad
from api.graphql.holds import hold_lines_connection, pending_lines
from api.graphql.inputs import (CurrencyMatchInput, LedgerAccountMatchInput, LedgerEntriesFilter,
                                LedgerLinesFilter, filter_input)
from api.graphql.reconcile import TxsConnection, unreconciled_txs
from api.graphql.refs import AccountRef, account_id, account_ref, balances_of, ledger_of
from api.graphql.scalars import Int96, LastMoment, Period
from ledger import service
from ledger.errors import BadRequestError

# Resolved by strawberry when the schema is built: ledgers.py imports this module.
LedgerType = Annotated["Ledger", strawberry.lazy("api.graphql.ledgers")]  # noqa: F821
Account = strawberry.Parent[AccountRef]


def _pick_currency(values: dict[str, int], currency: Optional[CurrencyMatchInput],
                   field: str) -> int:
    if currency is not None:
        return values.get(currency.code, 0)
    nonzero = {c: a for c, a in values.items() if a != 0}
    if len(nonzero) > 1:
        raise BadRequestError(
            "invalid_input",
            f"{field}: the account holds several currencies ({', '.join(sorted(nonzero))}); "
            f"pass currency: {{code: ...}} or ask for the plural {field}s",
            field=field)
    return next(iter(nonzero.values()), 0) if nonzero else sum(values.values())


def _change(info: Info, ref: AccountRef, period: str) -> service.BalanceChange:
    ctx: Context = info.context
    return ctx.cached(("change", ref.ledger_ik, ref.path, period),
                      lambda: service.balance_change(ctx.db, ref.ledger_ik, ref.path, period))


def _balances(info: Info, ref: AccountRef, at: Optional[str]) -> service.AccountBalances:
    return balances_of(info, ref.ledger_ik, ref.path, at)


def _held(info: Info, ref: AccountRef, at: Optional[str]) -> service.HoldBalances:
    ctx: Context = info.context
    return ctx.cached(("held", ref.ledger_ik, ref.path, at),
                      lambda: service.hold_balances(ctx.db, ref.ledger_ik, ref.path, at))


@strawberry.type
class LedgerAccount:
    @strawberry.field
    def id(self, root: Account) -> strawberry.ID:
        return strawberry.ID(account_id(root.ledger_ik, root.path))

    @strawberry.field
    def path(self, root: Account) -> str:
        return root.path

    @strawberry.field(description="asset, liability, income or expense.")
    def type(self, root: Account, info: Info) -> Optional[str]:
        return root.type or _balances(info, root, None).type

    @strawberry.field
    def ledger_id(self, root: Account, info: Info) -> strawberry.ID:
        return strawberry.ID(str(ledger_of(info, root.ledger_ik).id))

    @strawberry.field
    def ledger(self, root: Account, info: Info) -> LedgerType:
        return ledger_of(info, root.ledger_ik)

    @strawberry.field(description="Sum of the lines posted to this account itself; with "
                                  "`at`, of those posted at or before that moment.")
    def own_balance(self, root: Account, info: Info,
                    currency: Optional[CurrencyMatchInput] = None,
                    at: Optional[LastMoment] = None) -> Int96:
        return _pick_currency(_balances(info, root, at).own, currency, "ownBalance")

    @strawberry.field(description="Sum of the lines posted to this account's descendants.")
    def child_balance(self, root: Account, info: Info,
                      currency: Optional[CurrencyMatchInput] = None,
                      at: Optional[LastMoment] = None) -> Int96:
        return _pick_currency(_balances(info, root, at).child, currency, "childBalance")

    @strawberry.field(description="ownBalance + childBalance.")
    def balance(self, root: Account, info: Info, currency: Optional[CurrencyMatchInput] = None,
                at: Optional[LastMoment] = None) -> Int96:
        return _pick_currency(_balances(info, root, at).total, currency, "balance")

    @strawberry.field(description="ownBalance in every currency the account holds.")
    def own_balances(self, root: Account, info: Info,
                     at: Optional[LastMoment] = None) -> CurrencyAmountConnection:
        return amounts(_balances(info, root, at).own)

    @strawberry.field
    def child_balances(self, root: Account, info: Info,
                       at: Optional[LastMoment] = None) -> CurrencyAmountConnection:
        return amounts(_balances(info, root, at).child)

    @strawberry.field
    def balances(self, root: Account, info: Info,
                 at: Optional[LastMoment] = None) -> CurrencyAmountConnection:
        return amounts(_balances(info, root, at).total)

    # ---- with holds: pending (posted + every pending line of pending holds) and available
    # (posted + their pending decreases only: what conditions are checked against).

    @strawberry.field(description="ownBalance plus every pending line of pending holds.")
    def own_pending_balance(self, root: Account, info: Info,
                            currency: Optional[CurrencyMatchInput] = None,
                            at: Optional[LastMoment] = None) -> Int96:
        return _pick_currency(_held(info, root, at).own_pending, currency, "ownPendingBalance")

    @strawberry.field(description="ownBalance less what pending holds reserve (their "
                                  "decreases): what conditions are checked against.")
    def own_available_balance(self, root: Account, info: Info,
                              currency: Optional[CurrencyMatchInput] = None,
                              at: Optional[LastMoment] = None) -> Int96:
        return _pick_currency(_held(info, root, at).own_available, currency,
                              "ownAvailableBalance")

    @strawberry.field
    def child_pending_balance(self, root: Account, info: Info,
                              currency: Optional[CurrencyMatchInput] = None,
                              at: Optional[LastMoment] = None) -> Int96:
        return _pick_currency(_held(info, root, at).child_pending, currency,
                              "childPendingBalance")

    @strawberry.field
    def child_available_balance(self, root: Account, info: Info,
                                currency: Optional[CurrencyMatchInput] = None,
                                at: Optional[LastMoment] = None) -> Int96:
        return _pick_currency(_held(info, root, at).child_available, currency,
                              "childAvailableBalance")

    @strawberry.field(description="ownPendingBalance + childPendingBalance.")
    def pending_balance(self, root: Account, info: Info,
                        currency: Optional[CurrencyMatchInput] = None,
                        at: Optional[LastMoment] = None) -> Int96:
        return _pick_currency(_held(info, root, at).total_pending, currency, "pendingBalance")

    @strawberry.field(description="ownAvailableBalance + childAvailableBalance.")
    def available_balance(self, root: Account, info: Info,
                          currency: Optional[CurrencyMatchInput] = None,
                          at: Optional[LastMoment] = None) -> Int96:
        return _pick_currency(_held(info, root, at).total_available, currency,
                              "availableBalance")

    @strawberry.field
    def own_pending_balances(self, root: Account, info: Info,
                             at: Optional[LastMoment] = None) -> CurrencyAmountConnection:
        return amounts(_held(info, root, at).own_pending)

    @strawberry.field
    def own_available_balances(self, root: Account, info: Info,
                               at: Optional[LastMoment] = None) -> CurrencyAmountConnection:
        return amounts(_held(info, root, at).own_available)

    @strawberry.field
    def child_pending_balances(self, root: Account, info: Info,
                               at: Optional[LastMoment] = None) -> CurrencyAmountConnection:
        return amounts(_held(info, root, at).child_pending)

    @strawberry.field
    def child_available_balances(self, root: Account, info: Info,
                                 at: Optional[LastMoment] = None) -> CurrencyAmountConnection:
        return amounts(_held(info, root, at).child_available)

    @strawberry.field
    def pending_balances(self, root: Account, info: Info,
                         at: Optional[LastMoment] = None) -> CurrencyAmountConnection:
        return amounts(_held(info, root, at).total_pending)

    @strawberry.field
    def available_balances(self, root: Account, info: Info,
                           at: Optional[LastMoment] = None) -> CurrencyAmountConnection:
        return amounts(_held(info, root, at).total_available)

    @strawberry.field(description="How ownBalance changed over the period (in the ledger's "
                                  "balanceUTCOffset).")
    def own_balance_change(self, root: Account, info: Info, period: Period,
                           currency: Optional[CurrencyMatchInput] = None) -> Int96:
        return _pick_currency(_change(info, root, period).own, currency, "ownBalanceChange")

    @strawberry.field(description="How childBalance changed over the period.")
    def child_balance_change(self, root: Account, info: Info, period: Period,
                             currency: Optional[CurrencyMatchInput] = None) -> Int96:
        return _pick_currency(_change(info, root, period).child, currency, "childBalanceChange")

    @strawberry.field(description="How balance changed over the period.")
    def balance_change(self, root: Account, info: Info, period: Period,
                       currency: Optional[CurrencyMatchInput] = None) -> Int96:
        return _pick_currency(_change(info, root, period).total, currency, "balanceChange")

    @strawberry.field
    def own_balance_changes(self, root: Account, info: Info,
                            period: Period) -> CurrencyAmountConnection:
        return amounts(_change(info, root, period).own)

    @strawberry.field
    def child_balance_changes(self, root: Account, info: Info,
                              period: Period) -> CurrencyAmountConnection:
        return amounts(_change(info, root, period).child)

    @strawberry.field
    def balance_changes(self, root: Account, info: Info,
                        period: Period) -> CurrencyAmountConnection:
        return amounts(_change(info, root, period).total)

    @strawberry.field(description="The lines posted to this account, newest posted first; "
                                  "status: pending lists the lines of its pending holds "
                                  "instead, all both, posted (the default) posted lines; the "
                                  "same filter and paging for each.")
    def lines(self, root: Account, info: Info, filter: Optional[LedgerLinesFilter] = None,
              first: Optional[int] = None, after: Optional[str] = None,
              last: Optional[int] = None, before: Optional[str] = None,
              status: str = "posted") -> LedgerLinesConnection:
        ctx: Context = info.context
        held = pending_lines(ctx, root.ledger_ik, root.path, status, filter_input(filter),
                             dict(first=first, after=after, last=last, before=before))
        if held is not None:
            return held
        page = service.list_lines(ctx.db, root.ledger_ik, root.path, filter_input(filter),
                                  first=first, after=after, last=last, before=before)
        return lines_connection(page, root.ledger_ik)

    @strawberry.field(description="The lines holds reserved on this account, newest hold "
                                  "first, each with its hold's status (status: pending by "
                                  "default, null for every status); pages of first (at most "
                                  "200) after a cursor. `lines` lists posted lines.")
    def hold_lines(self, root: Account, info: Info, status: Optional[str] = "pending",
                   first: int = 50, after: Optional[str] = None) -> LedgerLinesConnection:
        return hold_lines_connection(info.context, root.ledger_ik, root.path, status, first,
                                     after)

    @strawberry.field(description="The entries with a line in this account, newest posted first.")
    def ledger_entries(self, root: Account, info: Info,
                       filter: Optional[LedgerEntriesFilter] = None,
                       first: Optional[int] = None, after: Optional[str] = None,
                       last: Optional[int] = None,
                       before: Optional[str] = None) -> LedgerEntriesConnection:
        ctx: Context = info.context
        page = service.list_ledger_entries(ctx.db, root.ledger_ik, filter_input(filter),
                                           first=first, after=after, last=last, before=before,
                                           account=root.path)
        return entries_connection(page)

    @strawberry.field(description="Synced txs of this linked account that no entry reconciles yet, oldest first.")
    def unreconciled_txs(self, root: Account, info: Info, first: Optional[int] = None,
                         after: Optional[str] = None) -> TxsConnection:
        return unreconciled_txs(info, root.ledger_ik, root.path, first, after)


@strawberry.type
class LedgerAccountsConnection:
    nodes: list[LedgerAccount]
    page_info: PageInfo = strawberry.field(default_factory=PageInfo)


@strawberry.type
class AccountQuery:
    @strawberry.field(description="An account by path and ledger, or by id, with its balances.")
    def ledger_account(self, info: Info,
                       ledger_account: LedgerAccountMatchInput) -> Optional[LedgerAccount]:
        ctx: Context = info.context
        ledger_ik, path = account_ref(ctx, ledger_account, "ledgerAccount")
        if ledger_ik is None:
            raise bad("ledgerAccount.ledger", "the ledger is required, e.g. {\"ik\": \"my-ledger\"}")
        account = AccountRef(ledger_ik, path)
        # Read now, so an unknown account is an error here rather than a null balance later.
        _balances(info, account, None)
        return account
