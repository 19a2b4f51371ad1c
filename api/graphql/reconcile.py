"""GraphQL of links and txs: createCustomLink, syncCustomAccounts, syncCustomTxs,
deleteCustomTxs, reconcileTx and ``LedgerAccount.unreconciledTxs`` (seed 002 section F).
Each resolver is one `ledger.service` call; errors come back as the seeds' union members."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional, Union

import strawberry
from strawberry.types import Info

from api.graphql.common import Currency, PageInfo
from api.graphql.context import Context
from api.graphql.entries import LedgerEntry, LedgerLine, entry_type, line_type
from api.graphql.errors import BadRequestError, InternalError, bad, mutate
from api.graphql.inputs import CurrencyMatchInput, LedgerEntryInput
from api.graphql.posting import entry_lines, key_value_pairs
from api.graphql.refs import entry_ledger_ik
from api.graphql.scalars import Date, Int96, SafeString
from ledger import service

# ------------------------------------------------------------------ objects


@strawberry.type
class Link:
    _link: strawberry.Private[service.Link]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self._link.id)

    @strawberry.field
    def name(self) -> str:
        return self._link.name

    @strawberry.field(description="custom, or stripe for the native Stripe link.")
    def type(self) -> str:
        return self._link.kind

    @strawberry.field
    def created(self) -> datetime:
        return self._link.created


@strawberry.type
class ExternalAccount:
    _account: strawberry.Private[service.ExternalAccount]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self._account.id)

    @strawberry.field
    def external_id(self) -> str:
        return self._account.external_id

    @strawberry.field
    def name(self) -> Optional[str]:
        return self._account.name

    @strawberry.field
    def link_id(self) -> strawberry.ID:
        return strawberry.ID(self._account.link_id)

    @strawberry.field
    def currency(self) -> Optional[Currency]:
        return Currency(code=self._account.currency) if self._account.currency else None


@strawberry.type
class Tx:
    _tx: strawberry.Private[service.Tx]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self._tx.id)

    @strawberry.field
    def external_id(self) -> str:
        return self._tx.external_id

    @strawberry.field
    def amount(self) -> Int96:
        return self._tx.amount

    @strawberry.field
    def date(self) -> Date:
        return self._tx.posted.date()

    @strawberry.field
    def posted(self) -> datetime:
        return self._tx.posted

    @strawberry.field
    def description(self) -> Optional[str]:
        return self._tx.description

    @strawberry.field
    def currency(self) -> Optional[Currency]:
        return Currency(code=self._tx.currency) if self._tx.currency else None

    @strawberry.field(description="The external account's external id.")
    def external_account_id(self) -> str:
        return self._tx.account_external_id

    @strawberry.field
    def link_id(self) -> strawberry.ID:
        return strawberry.ID(self._tx.link_id)

    @strawberry.field
    def is_reconciled(self) -> bool:
        return self._tx.reconciled

    @strawberry.field
    def deleted(self) -> Optional[datetime]:
        return self._tx.deleted

    @strawberry.field(description="Ids of the entries that reconcile this tx (at most one).")
    def ledger_entry_ids(self) -> list[strawberry.ID]:
        return [strawberry.ID(x) for x in self._tx.entry_ids]

    @strawberry.field(description="Ids of the lines that match this tx (at most one).")
    def ledger_line_ids(self) -> list[strawberry.ID]:
        return [strawberry.ID(x) for x in self._tx.line_ids]


def _txs(values: list[service.Tx]) -> list[Tx]:
    return [Tx(_tx=x) for x in values]


@strawberry.type
class TxsConnection:
    nodes: list[Tx]
    page_info: PageInfo


@strawberry.type
class CreateCustomLinkResult:
    link: Link
    is_ik_replay: bool


@strawberry.type
class SyncCustomAccountsResult:
    accounts: list[ExternalAccount]


@strawberry.type
class SyncCustomTxsResult:
    txs: list[Tx]


@strawberry.type
class DeleteCustomTxsResult:
    txs: list[Tx]


@strawberry.type
class ReconcileTxResult:
    entry: LedgerEntry
    lines: list[LedgerLine]
    is_ik_replay: bool


CreateCustomLinkResponse = Annotated[
    Union[CreateCustomLinkResult, BadRequestError, InternalError],
    strawberry.union("CreateCustomLinkResponse")]
SyncCustomAccountsResponse = Annotated[
    Union[SyncCustomAccountsResult, BadRequestError, InternalError],
    strawberry.union("SyncCustomAccountsResponse")]
SyncCustomTxsResponse = Annotated[
    Union[SyncCustomTxsResult, BadRequestError, InternalError],
    strawberry.union("SyncCustomTxsResponse")]
DeleteCustomTxsResponse = Annotated[
    Union[DeleteCustomTxsResult, BadRequestError, InternalError],
    strawberry.union("DeleteCustomTxsResponse")]
ReconcileTxResponse = Annotated[
    Union[ReconcileTxResult, BadRequestError, InternalError],
    strawberry.union("ReconcileTxResponse")]


# ------------------------------------------------------------------ inputs

@strawberry.input
class LinkMatchInput:
    id: strawberry.ID


@strawberry.input
class CustomAccountInput:
    external_id: str
    name: Optional[str] = None
    currency: Optional[CurrencyMatchInput] = None


@strawberry.input(description="An external account: our id, or its externalId in a link.")
class ExternalAccountMatchInput:
    link_id: Optional[strawberry.ID] = None
    id: Optional[strawberry.ID] = None
    external_id: Optional[str] = None


@strawberry.input
class CustomTxInput:
    account: ExternalAccountMatchInput
    external_id: str
    amount: Int96
    posted: datetime
    description: Optional[str] = None


@strawberry.input(description="A tx to delete: its id, or its account and externalId.")
class TxMatchInput:
    id: Optional[strawberry.ID] = None
    account: Optional[ExternalAccountMatchInput] = None
    external_id: Optional[str] = None


def _account_match(value: Optional[ExternalAccountMatchInput]) -> Optional[dict]:
    if value is None:
        return None
    return {k: v for k, v in (("linkId", value.link_id), ("id", value.id),
                              ("externalId", value.external_id)) if v is not None}


# ------------------------------------------------------------------ mutations

@strawberry.type
class ReconcileMutation:
    @strawberry.mutation(description="Create a custom link; its id is the ik unless given.")
    def create_custom_link(self, info: Info, ik: SafeString, name: str,
                           id: Optional[strawberry.ID] = None) -> CreateCustomLinkResponse:
        ctx: Context = info.context

        def run():
            made = service.create_custom_link(ctx.db, ik, name, str(id) if id else None)
            return CreateCustomLinkResult(link=Link(_link=made.link), is_ik_replay=made.is_ik_replay)

        return mutate(info, run)

    @strawberry.mutation(description="Create or rename external accounts of a custom link.")
    def sync_custom_accounts(self, info: Info, link: LinkMatchInput,
                             accounts: list[CustomAccountInput]) -> SyncCustomAccountsResponse:
        ctx: Context = info.context

        def run():
            items = [{"externalId": a.external_id, "name": a.name,
                      "currency": a.currency.code if a.currency else None} for a in accounts]
            synced = service.sync_custom_accounts(ctx.db, {"id": str(link.id)}, items)
            return SyncCustomAccountsResult(accounts=[ExternalAccount(_account=a) for a in synced])

        return mutate(info, run)

    @strawberry.mutation(description="Sync up to 100 settled txs of a custom link; the same tx again is a no-op.")
    def sync_custom_txs(self, info: Info, link: LinkMatchInput,
                        txs: list[CustomTxInput]) -> SyncCustomTxsResponse:
        ctx: Context = info.context

        def run():
            items = [{"account": _account_match(x.account), "externalId": x.external_id,
                      "amount": x.amount, "posted": x.posted, "description": x.description}
                     for x in txs]
            return SyncCustomTxsResult(txs=_txs(service.sync_custom_txs(
                ctx.db, {"id": str(link.id)}, items)))

        return mutate(info, run)

    @strawberry.mutation(description="Delete unreconciled txs; syncing one again brings it back as a new tx.")
    def delete_custom_txs(self, info: Info, link: LinkMatchInput,
                          txs: list[TxMatchInput]) -> DeleteCustomTxsResponse:
        ctx: Context = info.context

        def run():
            items = []
            for x in txs:
                item = {}
                if x.id is not None:
                    item["id"] = str(x.id)
                if x.account is not None:
                    item["account"] = _account_match(x.account)
                if x.external_id is not None:
                    item["externalId"] = x.external_id
                items.append(item)
            return DeleteCustomTxsResult(txs=_txs(service.delete_custom_txs(
                ctx.db, {"id": str(link.id)}, items)))

        return mutate(info, run)

    @strawberry.mutation(description="Post an entry whose linked lines match synced txs: "
                                     "amounts and posted come from the txs, the ik defaults "
                                     "to the tx's externalId, a tx is reconciled once. "
                                     "Without entry.type, the schema's one entry type whose "
                                     "linked line can take the tx and the parameters given.")
    def reconcile_tx(self, info: Info, entry: LedgerEntryInput,
                     tx: Optional[TxMatchInput] = None) -> ReconcileTxResponse:
        ctx: Context = info.context

        def run():
            ledger = entry_ledger_ik(ctx, entry.ledger, "entry.ledger")
            if tx is not None and not tx.external_id:
                raise bad("tx.externalId", "name the tx by its externalId")
            # Unlike the other posting paths, the ik is optional: the tx's externalId.
            request = service.EntryRequest.build(
                ik=entry.ik, type=entry.type, parameters=entry.parameters, posted=entry.posted,
                tags=key_value_pairs(entry.tags), groups=key_value_pairs(entry.groups),
                lines=entry_lines(ctx, entry, ledger, "entry"), ik_required=False,
                type_required=False)
            result = service.reconcile_tx(ctx.db, ledger, request,
                                          tx.external_id if tx is not None else None)
            entry_value = result.entry
            return ReconcileTxResult(
                entry=entry_type(entry_value),
                lines=[line_type(line, entry_value.ledger_ik, entry_value.description)
                       for line in result.lines],
                is_ik_replay=result.is_ik_replay)

        return mutate(info, run)


# ------------------------------------------------------------------ LedgerAccount.unreconciledTxs

def unreconciled_txs(info: Info, ledger_ik: str, path: str, first: Optional[int],
                     after: Optional[str]) -> TxsConnection:
    ctx: Context = info.context
    page = service.unreconciled_txs(ctx.db, ledger_ik, path, first, after)
    return TxsConnection(nodes=_txs(page.txs), page_info=PageInfo(
        has_next_page=page.has_next_page, has_previous_page=bool(after),
        start_cursor=None, end_cursor=page.end_cursor))
