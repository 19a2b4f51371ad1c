"""Balance monitors over GraphQL: ``balanceMonitors`` / ``balanceMonitor`` and
``createBalanceMonitor``, ``updateBalanceMonitor``, ``deleteBalanceMonitor``. A monitor
raises ``balance.crossed`` (see ``events``) when a change makes its condition true or false."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional, Union

import strawberry
from strawberry.types import Info

from api.graphql.common import Currency
from api.graphql.context import Context
from api.graphql.errors import BadRequestError, InternalError, bad, mutate
from api.graphql.inputs import CurrencyMatchInput, LedgerMatchInput
from api.graphql.scalars import Int96, SafeString
from ledger import service

_KIND = ("The balance watched: `own`, `child` (the sum of its descendants') or `total` "
         "(own plus child), posted; `ownPending`, `childPending`, `totalPending` (posted plus "
         "every pending hold line, as `ownPendingBalance` ...) or `ownAvailable`, "
         "`childAvailable`, `totalAvailable` (posted plus the pending decreases only, as "
         "`ownAvailableBalance` ...).")
_ACCOUNT = ("An account path, a template node (`liabilities/users`, for child and total), "
            "or a pattern: `*` for one instance value or key (`liabilities/users:*/available`), "
            "a final `/*` for every descendant.")


@strawberry.type
class BalanceMonitorCondition:
    op: str = strawberry.field(description="lt, lte, gt, gte or eq.")
    amount: Int96
    currency: Optional[Currency] = strawberry.field(
        default=None, description="None: each currency of the account, on its own.")


@strawberry.type
class BalanceMonitor:
    id: strawberry.ID
    # The ledger's ik, not the Ledger: a list of monitors must not fan out into a ledger's
    # entries per monitor, past what the cost limits measure.
    ledger_ik: SafeString
    account: str = strawberry.field(description=_ACCOUNT)
    balance: str = strawberry.field(description=_KIND)
    condition: BalanceMonitorCondition
    description: Optional[str]
    created: datetime
    updated: datetime


def monitor_type(m: service.BalanceMonitor) -> BalanceMonitor:
    c = m.condition
    return BalanceMonitor(
        id=strawberry.ID(m.id), ledger_ik=m.ledger_ik, account=m.account, balance=m.balance,
        condition=BalanceMonitorCondition(
            op=c.op, amount=c.amount, currency=Currency(code=c.currency) if c.currency else None),
        description=m.description, created=m.created, updated=m.updated)


@strawberry.input(description="Exactly one of lt, lte, gt, gte, eq; currency optional.")
class BalanceMonitorConditionInput:
    lt: Optional[Int96] = None
    lte: Optional[Int96] = None
    gt: Optional[Int96] = None
    gte: Optional[Int96] = None
    eq: Optional[Int96] = None
    currency: Optional[CurrencyMatchInput] = None


def _condition(c: Optional[BalanceMonitorConditionInput]) -> Optional[dict]:
    if c is None:
        return None
    out = {op: getattr(c, op) for op in service.MONITOR_OPS if getattr(c, op) is not None}
    if c.currency is not None:
        out["currency"] = c.currency.code
    return out


def _ledger_ik(ctx: Context, ledger: LedgerMatchInput) -> str:
    if ledger.ik:
        return ledger.ik
    if ledger.id:
        return service.get_ledger_by_id(ctx.db, str(ledger.id)).ik
    raise bad("ledger", "give the ledger's ik (or id)")


@strawberry.type
class BalanceMonitorResult:
    balance_monitor: BalanceMonitor


BalanceMonitorResponse = Annotated[
    Union[BalanceMonitorResult, BadRequestError, InternalError],
    strawberry.union("BalanceMonitorResponse")]


@strawberry.type
class MonitorQuery:
    @strawberry.field(description="The balance monitors of a ledger, oldest first (at most "
                                  "1,000 a ledger).")
    def balance_monitors(self, info: Info, ledger: LedgerMatchInput) -> list[BalanceMonitor]:
        ctx: Context = info.context
        return [monitor_type(m) for m in
                service.list_balance_monitors(ctx.db, _ledger_ik(ctx, ledger))]

    @strawberry.field(description="One balance monitor by id.")
    def balance_monitor(self, info: Info, id: strawberry.ID) -> BalanceMonitor:
        ctx: Context = info.context
        return monitor_type(service.get_balance_monitor(ctx.db, str(id)))


@strawberry.type
class MonitorMutation:
    @strawberry.mutation(description="Watch a balance: each entry posted or reversed, each "
                                     "delta the rollup folds and each hold created, committed, "
                                     "voided or expired that makes `condition` true, or false "
                                     "again, raises the event `balance.crossed` in its own "
                                     "transaction; the entries of one batch are judged one by "
                                     "one, in order.")
    def create_balance_monitor(
            self, info: Info, ledger: LedgerMatchInput,
            account: Annotated[str, strawberry.argument(description=_ACCOUNT)],
            balance: Annotated[str, strawberry.argument(description=_KIND)],
            condition: BalanceMonitorConditionInput,
            description: Optional[str] = None,
            ik: Annotated[Optional[str], strawberry.argument(
                description="Idempotency key: the same ik and input replays the monitor, "
                            "another input is ik_conflict.")] = None) -> BalanceMonitorResponse:
        ctx: Context = info.context
        return mutate(info, lambda: BalanceMonitorResult(balance_monitor=monitor_type(
            service.create_balance_monitor(ctx.db, _ledger_ik(ctx, ledger), account, balance,
                                           _condition(condition), description, ik))))

    @strawberry.mutation(description="Change a monitor's account, balance, condition or "
                                     "description (what is left out stays).")
    def update_balance_monitor(
            self, info: Info, id: strawberry.ID, account: Optional[str] = None,
            balance: Optional[str] = None,
            condition: Optional[BalanceMonitorConditionInput] = None,
            description: Optional[str] = None) -> BalanceMonitorResponse:
        ctx: Context = info.context
        return mutate(info, lambda: BalanceMonitorResult(balance_monitor=monitor_type(
            service.update_balance_monitor(ctx.db, str(id), account=account, balance=balance,
                                           condition=_condition(condition),
                                           description=description))))

    @strawberry.mutation(description="Delete a monitor; answers it as it was.")
    def delete_balance_monitor(self, info: Info, id: strawberry.ID) -> BalanceMonitorResponse:
        ctx: Context = info.context
        return mutate(info, lambda: BalanceMonitorResult(balance_monitor=monitor_type(
            service.delete_balance_monitor(ctx.db, str(id)))))
