"""Links and txs in the SDK: createCustomLink, syncCustomAccounts, syncCustomTxs,
deleteCustomTxs and a linked account's unreconciledTxs.

The methods live on both clients (``Client`` awaits them, ``SyncClient`` returns the value):
each builds one operation and hands it to the client's ``_run``, which retries and raises
typed errors like every other call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ledger_sdk.operations import Operations
from ledger_sdk.types import parse_time

_ERR = "... on Error { code message retryable }"
_TX = "id externalId amount date posted description externalAccountId linkId isReconciled deleted ledgerEntryIds ledgerLineIds"

CREATE_CUSTOM_LINK = f"""mutation CreateCustomLink($ik: SafeString!, $name: String!, $id: ID) {{
  createCustomLink(ik: $ik, name: $name, id: $id) {{
    __typename
    ... on CreateCustomLinkResult {{ isIkReplay link {{ id name type created }} }}
    {_ERR}
  }}
}}"""

SYNC_CUSTOM_ACCOUNTS = f"""mutation SyncCustomAccounts($link: LinkMatchInput!, $accounts: [CustomAccountInput!]!) {{
  syncCustomAccounts(link: $link, accounts: $accounts) {{
    __typename
    ... on SyncCustomAccountsResult {{ accounts {{ id externalId name linkId currency {{ code }} }} }}
    {_ERR}
  }}
}}"""

SYNC_CUSTOM_TXS = f"""mutation SyncCustomTxs($link: LinkMatchInput!, $txs: [CustomTxInput!]!) {{
  syncCustomTxs(link: $link, txs: $txs) {{
    __typename
    ... on SyncCustomTxsResult {{ txs {{ {_TX} }} }}
    {_ERR}
  }}
}}"""

DELETE_CUSTOM_TXS = f"""mutation DeleteCustomTxs($link: LinkMatchInput!, $txs: [TxMatchInput!]!) {{
  deleteCustomTxs(link: $link, txs: $txs) {{
    __typename
    ... on DeleteCustomTxsResult {{ txs {{ {_TX} }} }}
    {_ERR}
  }}
}}"""

UNRECONCILED_TXS = f"""query UnreconciledTxs($account: LedgerAccountMatchInput!, $first: Int, $after: String) {{
  ledgerAccount(ledgerAccount: $account) {{
    unreconciledTxs(first: $first, after: $after) {{
      nodes {{ {_TX} }}
      pageInfo {{ endCursor hasNextPage }}
    }}
  }}
}}"""


@dataclass
class Link:
    id: str
    name: str
    type: str
    created: datetime | None = None


@dataclass
class CreateLinkResult:
    link: Link
    is_ik_replay: bool


@dataclass
class ExternalAccount:
    id: str
    external_id: str
    name: str | None
    link_id: str
    currency: str | None = None


@dataclass
class Tx:
    id: str
    external_id: str
    amount: int
    posted: datetime
    description: str | None
    external_account_id: str
    link_id: str
    is_reconciled: bool
    deleted: datetime | None = None
    ledger_entry_ids: list[str] = field(default_factory=list)
    ledger_line_ids: list[str] = field(default_factory=list)

    @classmethod
    def from_wire(cls, d: dict) -> "Tx":
        return cls(id=d["id"], external_id=d["externalId"], amount=int(d["amount"]),
                   posted=parse_time(d["posted"]), description=d.get("description"),
                   external_account_id=d["externalAccountId"], link_id=d["linkId"],
                   is_reconciled=d["isReconciled"], deleted=parse_time(d.get("deleted")),
                   ledger_entry_ids=list(d.get("ledgerEntryIds") or []),
                   ledger_line_ids=list(d.get("ledgerLineIds") or []))


@dataclass
class TxPage:
    txs: list[Tx]
    end_cursor: str | None
    has_next_page: bool


def _tx_input(tx: dict) -> dict:
    out = dict(tx)
    if "amount" in out:
        if isinstance(out["amount"], float):
            raise ValueError("amount: floats are refused; pass integers in minor units")
        out["amount"] = str(out["amount"])
    if isinstance(out.get("posted"), datetime):
        out["posted"] = out["posted"].isoformat()
    return out


class LinksMixin(Operations):
    """Mixed into the SDK clients; see the module docstring."""

    def create_custom_link(self, ik: str, name: str, id: str | None = None):
        """A custom link; its id is the ik unless ``id`` is given."""
        return self._call(
            CREATE_CUSTOM_LINK, {"ik": ik, "name": name, "id": id}, "createCustomLink",
            lambda v: CreateLinkResult(Link(v["link"]["id"], v["link"]["name"], v["link"]["type"],
                                            parse_time(v["link"].get("created"))),
                                       v["isIkReplay"]))

    def sync_custom_accounts(self, link_id: str, accounts: list[dict]):
        """``accounts``: ``[{"externalId": ..., "name": ..., "currency": {"code": "USD"}}]``."""
        return self._call(
            SYNC_CUSTOM_ACCOUNTS, {"link": {"id": link_id}, "accounts": accounts},
            "syncCustomAccounts",
            lambda v: [ExternalAccount(a["id"], a["externalId"], a.get("name"), a["linkId"],
                                       (a.get("currency") or {}).get("code"))
                       for a in v["accounts"]])

    def sync_custom_txs(self, link_id: str, txs: list[dict]):
        """``txs`` in the seed's shape: ``{"account": {"linkId", "externalId"}, "externalId",
        "description", "amount", "posted"}`` (up to 100)."""
        return self._call(
            SYNC_CUSTOM_TXS, {"link": {"id": link_id}, "txs": [_tx_input(x) for x in txs]},
            "syncCustomTxs", lambda v: [Tx.from_wire(x) for x in v["txs"]])

    def delete_custom_txs(self, link_id: str, txs: list[dict]):
        """``txs``: ``[{"id": ...}]`` or ``[{"account": {...}, "externalId": ...}]``."""
        return self._call(
            DELETE_CUSTOM_TXS, {"link": {"id": link_id}, "txs": txs}, "deleteCustomTxs",
            lambda v: [Tx.from_wire(x) for x in v["txs"]])

    def unreconciled_txs(self, path: str, ledger: str | None = None, first: int | None = None,
                         after: str | None = None):
        """One page of the synced txs of a linked account that no entry reconciles yet."""
        def parse(v):
            page = v["unreconciledTxs"]
            return TxPage([Tx.from_wire(x) for x in page["nodes"]],
                          page["pageInfo"]["endCursor"], page["pageInfo"]["hasNextPage"])
        return self._call(
            UNRECONCILED_TXS, {"account": {"path": path, "ledger": {"ik": self._ledger(ledger)}},
                               "first": first, "after": after}, "ledgerAccount", parse)
