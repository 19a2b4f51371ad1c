"""A light Python client for the ledger's GraphQL API (only needs httpx).

    from ledger_sdk import Client
    client = Client(client_id=..., client_secret=..., api_url="http://localhost:8000",
                    ledger_ik="wallet")
    await client.add_ledger_entry(ik="dep-1", type="deposit",
                                  parameters={"user_id": "alice", "amount": "250"})
"""
from ledger_sdk.client import Client, SyncClient
from ledger_sdk.errors import (AuthenticationError, BadRequestError, GraphQLRequestError,
                               InternalError, LedgerAPIError, NotFoundError,
                               PermissionDeniedError, TransportError)
from ledger_sdk.history import (AccountSummary, BalanceChange, EntryGroup, GroupBalance,
                                HistoryEntry, Page, PageInfo, ReverseResult, UpdateResult)
from ledger_sdk.events import Event, EventsPage, WebhookEndpoint
from ledger_sdk.monitors import BalanceMonitor, condition_input
from ledger_sdk.holds import Hold, HoldBalances, HoldResult
from ledger_sdk.workspace import GetWorkspaceResult, Workspace
from ledger_sdk.types import (AddLedgerEntryResult, CreateLedgerResult, Ledger, LedgerAccount,
                              LedgerEntry, LedgerLine, SchemaVersion)

__all__ = [
    "Client", "SyncClient",
    "LedgerAPIError", "BadRequestError", "InternalError", "NotFoundError", "TransportError",
    "AuthenticationError", "PermissionDeniedError", "GraphQLRequestError",
    "AddLedgerEntryResult", "CreateLedgerResult", "Ledger", "LedgerAccount", "LedgerEntry",
    "LedgerLine", "SchemaVersion",
    "AccountSummary", "BalanceChange", "EntryGroup", "GroupBalance", "HistoryEntry", "Page",
    "PageInfo", "ReverseResult", "UpdateResult", "GetWorkspaceResult", "Workspace",
    "BalanceMonitor", "condition_input",
    "Hold", "HoldBalances", "HoldResult",
    "Event", "EventsPage", "WebhookEndpoint",
]
