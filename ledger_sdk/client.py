"""`Client` (async) and `SyncClient`: the API's operations as typed calls.

Both fetch OAuth2 tokens themselves (client credentials, seed 002 "Authenticate") and
refresh them before they expire or when the API says 401. Both retry what seed 002 says to
retry (HTTP 429 and 5XX, network failures, ``InternalError`` results) with exponential
backoff and jitter, a bounded number of times, resending the very same request, so a
mutation keeps its ik and posts at most once. ``BadRequestError`` is never retried.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import httpx

from ledger_sdk import documents as d
from ledger_sdk.errors import BadRequestError, network_error
from ledger_sdk.events import EventsMixin
from ledger_sdk.history import HistoryMixin
from ledger_sdk.holds import HoldsMixin
from ledger_sdk.links import LinksMixin
from ledger_sdk.monitors import MonitorsMixin
from ledger_sdk.operations import Operation
from ledger_sdk.transport import Retry, Transport
from ledger_sdk.types import (AddLedgerEntryResult, CreateLedgerResult, Ledger, LedgerAccount,
                              LedgerEntry, SchemaVersion, as_key_values)
from ledger_sdk.workspace import WorkspaceMixin


def _posted(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def _merged(parameters: dict | None, keywords: dict) -> dict | None:
    if not keywords:
        return parameters
    clash = sorted(set(parameters or ()) & set(keywords))
    if clash:
        raise BadRequestError("invalid_input", f"parameters: {', '.join(clash)} given twice, "
                              "in parameters= and as a keyword")
    return {**(parameters or {}), **keywords}


def _entry_input(ledger: str | None, type: str | None, parameters: dict | None, posted, tags,
                 groups, lines) -> dict:
    entry: dict = {}
    if ledger is not None:
        # Left out when neither the call nor the client names one: the API then posts to
        # the workspace's only ledger, or says how to choose (seed 001's client has none).
        entry["ledger"] = {"ik": ledger}
    if type is not None:
        # Left out only by reconcile_tx, whose tx picks it.
        entry["type"] = type
    if parameters:
        # Integers become strings: the wire carries amounts as strings, and a float is refused
        # here rather than rounded somewhere.
        params = {}
        for k, v in parameters.items():
            if isinstance(v, float):
                raise BadRequestError("invalid_amount", f"parameters.{k}: floats are refused; "
                                      "pass integers in minor units")
            params[k] = str(v) if isinstance(v, int) and not isinstance(v, bool) else v
        entry["parameters"] = params
    if posted is not None:
        entry["posted"] = _posted(posted)
    if tags:
        entry["tags"] = as_key_values(tags)
    if groups:
        entry["groups"] = as_key_values(groups)
    if lines is not None:
        entry["lines"] = [dict(line, amount=str(line["amount"])) if "amount" in line else line
                          for line in lines]
    return entry


class _Core(WorkspaceMixin, LinksMixin, HistoryMixin, HoldsMixin, MonitorsMixin, EventsMixin,
            Transport):
    """The operations both clients offer, each built as one `Operation`."""

    # -------------------------------------------------------------- operations

    def _op_store_schema(self, schema: dict | str) -> Operation:
        if isinstance(schema, str):
            schema = json.loads(schema)
        document = {k: schema[k] for k in ("key", "name", "chartOfAccounts", "ledgerEntries")
                    if k in schema}
        return Operation(d.STORE_SCHEMA, {"schema": document}, "storeSchema",
                         lambda v: SchemaVersion.from_wire(v["schema"]), mutation=True)

    def _op_create_ledger(self, ik: str, name: str, schema_key: str,
                          balance_utc_offset: str | None) -> Operation:
        ledger: dict = {"name": name}
        if balance_utc_offset is not None:
            ledger["balanceUTCOffset"] = balance_utc_offset
        return Operation(d.CREATE_LEDGER,
                         {"ik": ik, "ledger": ledger, "schema": {"key": schema_key}},
                         "createLedger",
                         lambda v: CreateLedgerResult(Ledger.from_wire(v["ledger"]),
                                                      v["isIkReplay"]),
                         mutation=True)

    def _op_add_ledger_entry(self, ik, type, parameters, ledger, posted, tags, groups,
                             lines) -> Operation:
        # An ik chosen once per call: every retry of this call resends the same one.
        ik = ik or str(uuid.uuid4())
        entry = _entry_input(ledger or self.ledger_ik, type, parameters, posted, tags, groups,
                             lines)
        return Operation(d.ADD_LEDGER_ENTRY, {"ik": ik, "entry": entry}, "addLedgerEntry",
                         AddLedgerEntryResult.from_wire, mutation=True)

    def _op_reconcile_tx(self, type, parameters, external_ref, ledger, ik, lines) -> Operation:
        # No ik by default: the server keys the reconciliation by the tx's external id, so
        # retries (and other senders of the same tx) land on the same entry.
        entry = _entry_input(ledger or self.ledger_ik, type, parameters, None, None, None,
                             lines)
        if ik:
            entry["ik"] = ik
        variables: dict = {"entry": entry}
        if external_ref:
            variables["tx"] = {"externalId": external_ref}
        return Operation(d.RECONCILE_TX, variables, "reconcileTx", AddLedgerEntryResult.from_wire,
                         mutation=True)

    def _op_add_ledger_entries(self, entries: list[dict], ledger: str | None) -> Operation:
        items = []
        for e in entries:
            e = dict(e)
            ik = e.pop("ik", None) or str(uuid.uuid4())
            entry = _entry_input(self._ledger(e.pop("ledger", None) or ledger), e.pop("type"),
                                 e.pop("parameters", None), e.pop("posted", None),
                                 e.pop("tags", None), e.pop("groups", None), e.pop("lines", None))
            if e:
                raise BadRequestError("invalid_input", f"entries: unknown keys {sorted(e)}")
            items.append({"ik": ik, "entry": entry})
        return Operation(d.ADD_LEDGER_ENTRIES, {"entries": items}, "addLedgerEntries",
                         lambda v: [AddLedgerEntryResult.from_wire(r) for r in v["results"]],
                         mutation=True)

    def _op_get_schema(self, key: str, version: int | None) -> Operation:
        match: dict = {"key": key}
        if version is not None:
            match["version"] = version
        return Operation(d.GET_SCHEMA, {"schema": match}, "schema", SchemaVersion.from_wire)

    def _op_get_ledger(self, ik: str | None) -> Operation:
        return Operation(d.GET_LEDGER, {"ledger": {"ik": self._ledger(ik)}}, "ledger",
                         Ledger.from_wire)

    def _op_list_ledgers(self) -> Operation:
        return Operation(d.LIST_LEDGERS, {}, "ledgers",
                         lambda v: [Ledger.from_wire(n) for n in v["nodes"]])

    def _op_get_ledger_account(self, path: str, ledger: str | None, at=None) -> Operation:
        # ``at``: a time, or a period meaning its last moment in the ledger's offset.
        return Operation(d.GET_LEDGER_ACCOUNT,
                         {"ledgerAccount": {"path": path, "ledger": {"ik": self._ledger(ledger)}},
                          "at": _posted(at)},
                         "ledgerAccount", LedgerAccount.from_wire)

    def _op_get_ledger_entry(self, ik: str | None, id: str | None, ledger: str | None) -> Operation:
        if id is not None:
            match: dict = {"id": id}
        elif ik is not None:
            match = {"ik": ik, "ledger": {"ik": self._ledger(ledger)}}
        else:
            raise BadRequestError("invalid_input", "pass ik= (with ledger=) or id=")
        return Operation(d.GET_LEDGER_ENTRY, {"ledgerEntry": match}, "ledgerEntry",
                         LedgerEntry.from_wire)

    def _op_query(self, document: str, variables: dict | None) -> Operation:
        return Operation(document, variables or {}, None, lambda data: data)


class Client(_Core):
    """The async client: ``await client.add_ledger_entry(...)``."""

    def __init__(self, client_id: str, client_secret: str, api_url: str,
                 auth_url: str | None = None, auth_scope: str | None = None, *,
                 transport: httpx.AsyncBaseTransport | None = None, **options):
        super().__init__(client_id, client_secret, api_url, auth_url, auth_scope, **options)
        self._http = httpx.AsyncClient(timeout=self.timeout, transport=transport)
        self._token_lock: asyncio.Lock | None = None

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get_token(self, refresh: bool = False) -> str:
        if self._token_lock is None:
            self._token_lock = asyncio.Lock()
        async with self._token_lock:
            if refresh or not self._token_valid():
                response = await self._http.post(**self._token_request())
                self._take_token(response)
            return self._token

    async def token(self) -> str:
        """A current access token (fetched if needed), e.g. for curl."""
        attempt = 0
        while True:
            try:
                return await self._get_token()
            except httpx.TransportError as exc:
                retry = Retry(network_error(exc))
            except Retry as exc:
                retry = exc
            if attempt >= self.max_retries:
                raise retry.error
            await asyncio.sleep(self._delay(attempt, retry.after))
            attempt += 1

    async def _run(self, op: Operation) -> Any:
        attempt = 0
        refreshed = False
        while True:
            try:
                token = await self._get_token()
                response = await self._http.post(**self._graphql_request(op, token))
                if response.status_code == 401 and not refreshed:
                    # The token may have expired between our check and the API's: once.
                    refreshed = True
                    await self._get_token(refresh=True)
                    continue
                return self._handle(op, response)
            except httpx.TransportError as exc:
                retry = Retry(network_error(exc))
            except Retry as exc:
                retry = exc
            if attempt >= self.max_retries:
                raise retry.error
            await asyncio.sleep(self._delay(attempt, retry.after))
            attempt += 1

    async def query(self, document: str, variables: dict | None = None) -> dict:
        """Any GraphQL document; returns ``data``. Errors raise, transient ones after retries."""
        return await self._run(self._op_query(document, variables))

    async def store_schema(self, schema: dict | str) -> SchemaVersion:
        return await self._run(self._op_store_schema(schema))

    async def create_ledger(self, ik: str, name: str, schema_key: str,
                            balance_utc_offset: str | None = None) -> CreateLedgerResult:
        return await self._run(self._op_create_ledger(ik, name, schema_key, balance_utc_offset))

    async def add_ledger_entry(self, ik: str | None = None, type: str | None = None,
                               parameters: dict | None = None, ledger: str | None = None,
                               posted: datetime | str | None = None, tags: dict | None = None,
                               groups: dict | None = None,
                               lines: list[dict] | None = None) -> AddLedgerEntryResult:
        if not type:
            raise BadRequestError("invalid_input", "type: the entry type is required")
        return await self._run(self._op_add_ledger_entry(ik, type, parameters, ledger, posted,
                                                         tags, groups, lines))

    async def post_entries(self, type: str, idemp_key: str | None = None,
                           ledger: str | None = None, **parameters) -> AddLedgerEntryResult:
        """Seed 001's spelling: ``post_entries("DepositEntry", idemp_key=..., user_id=...)``."""
        return await self.add_ledger_entry(ik=idemp_key, type=type, parameters=parameters,
                                           ledger=ledger)

    async def reconcile_tx(self, type: str | None = None, parameters: dict | None = None,
                           external_ref: str | None = None, ledger: str | None = None,
                           ik: str | None = None, lines: list[dict] | None = None,
                           **params: Any) -> AddLedgerEntryResult:
        """Post the entry of a synced external tx; its amount and posted time come from the
        tx (``external_ref`` names it when the entry type's lines do not). Parameters come
        as ``parameters=`` or as keywords (seed 001: ``reconcile_tx(external_ref=charge_id,
        user_id=user_id)``). Without ``type`` the API picks the schema's one entry type
        whose linked line can take the tx and these parameters."""
        return await self._run(self._op_reconcile_tx(type, _merged(parameters, params),
                                                     external_ref, ledger, ik, lines))

    async def add_ledger_entries(self, entries: list[dict],
                                 ledger: str | None = None) -> list[AddLedgerEntryResult]:
        """Post entries atomically; each dict has ``ik``, ``type``, ``parameters``, ..."""
        return await self._run(self._op_add_ledger_entries(entries, ledger))

    async def get_schema(self, key: str, version: int | None = None) -> SchemaVersion:
        return await self._run(self._op_get_schema(key, version))

    async def get_ledger(self, ik: str | None = None) -> Ledger:
        return await self._run(self._op_get_ledger(ik))

    async def list_ledgers(self) -> list[Ledger]:
        return await self._run(self._op_list_ledgers())

    async def get_ledger_account(self, path: str, ledger: str | None = None,
                                 at: datetime | str | None = None) -> LedgerAccount:
        """An account's balances now, or ``at`` a time or the end of a period (``2025-02``)."""
        return await self._run(self._op_get_ledger_account(path, ledger, at))

    async def get_balance(self, path: str, *, currency: str | None = None,
                          at: datetime | str | None = None, ledger: str | None = None) -> int:
        """``balance`` (own + children) of one account, in one currency. Everything after
        the path is keyword-only: ``get_balance(path, "USD")`` read as a ledger ik (or a
        currency read as a ledger) would return some other balance without an error."""
        return (await self.get_ledger_account(path, ledger, at)).balance(currency)

    async def get_ledger_entry(self, ik: str | None = None, *, id: str | None = None,
                               ledger: str | None = None) -> LedgerEntry:
        return await self._run(self._op_get_ledger_entry(ik, id, ledger))


class SyncClient(_Core):
    """The same operations, blocking: ``client.add_ledger_entry(...)``."""

    def __init__(self, client_id: str, client_secret: str, api_url: str,
                 auth_url: str | None = None, auth_scope: str | None = None, *,
                 transport: httpx.BaseTransport | None = None, **options):
        super().__init__(client_id, client_secret, api_url, auth_url, auth_scope, **options)
        self._http = httpx.Client(timeout=self.timeout, transport=transport)
        self._token_lock = threading.Lock()

    def __enter__(self) -> "SyncClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _get_token(self, refresh: bool = False) -> str:
        with self._token_lock:
            if refresh or not self._token_valid():
                response = self._http.post(**self._token_request())
                self._take_token(response)
            return self._token

    def token(self) -> str:
        """A current access token (fetched if needed), e.g. for curl."""
        return self._run_token()

    def _run_token(self) -> str:
        attempt = 0
        while True:
            try:
                return self._get_token()
            except httpx.TransportError as exc:
                retry = Retry(network_error(exc))
            except Retry as exc:
                retry = exc
            if attempt >= self.max_retries:
                raise retry.error
            time.sleep(self._delay(attempt, retry.after))
            attempt += 1

    def _run(self, op: Operation) -> Any:
        attempt = 0
        refreshed = False
        while True:
            try:
                token = self._get_token()
                response = self._http.post(**self._graphql_request(op, token))
                if response.status_code == 401 and not refreshed:
                    refreshed = True
                    self._get_token(refresh=True)
                    continue
                return self._handle(op, response)
            except httpx.TransportError as exc:
                retry = Retry(network_error(exc))
            except Retry as exc:
                retry = exc
            if attempt >= self.max_retries:
                raise retry.error
            time.sleep(self._delay(attempt, retry.after))
            attempt += 1

    def query(self, document: str, variables: dict | None = None) -> dict:
        return self._run(self._op_query(document, variables))

    def store_schema(self, schema: dict | str) -> SchemaVersion:
        return self._run(self._op_store_schema(schema))

    def create_ledger(self, ik: str, name: str, schema_key: str,
                      balance_utc_offset: str | None = None) -> CreateLedgerResult:
        return self._run(self._op_create_ledger(ik, name, schema_key, balance_utc_offset))

    def add_ledger_entry(self, ik: str | None = None, type: str | None = None,
                         parameters: dict | None = None, ledger: str | None = None,
                         posted: datetime | str | None = None, tags: dict | None = None,
                         groups: dict | None = None,
                         lines: list[dict] | None = None) -> AddLedgerEntryResult:
        if not type:
            raise BadRequestError("invalid_input", "type: the entry type is required")
        return self._run(self._op_add_ledger_entry(ik, type, parameters, ledger, posted, tags,
                                                   groups, lines))

    def post_entries(self, type: str, idemp_key: str | None = None, ledger: str | None = None,
                     **parameters) -> AddLedgerEntryResult:
        return self.add_ledger_entry(ik=idemp_key, type=type, parameters=parameters,
                                     ledger=ledger)

    def reconcile_tx(self, type: str | None = None, parameters: dict | None = None,
                     external_ref: str | None = None, ledger: str | None = None,
                     ik: str | None = None, lines: list[dict] | None = None,
                     **params: Any) -> AddLedgerEntryResult:
        return self._run(self._op_reconcile_tx(type, _merged(parameters, params), external_ref,
                                               ledger, ik, lines))

    def add_ledger_entries(self, entries: list[dict],
                           ledger: str | None = None) -> list[AddLedgerEntryResult]:
        return self._run(self._op_add_ledger_entries(entries, ledger))

    def get_schema(self, key: str, version: int | None = None) -> SchemaVersion:
        return self._run(self._op_get_schema(key, version))

    def get_ledger(self, ik: str | None = None) -> Ledger:
        return self._run(self._op_get_ledger(ik))

    def list_ledgers(self) -> list[Ledger]:
        return self._run(self._op_list_ledgers())

    def get_ledger_account(self, path: str, ledger: str | None = None,
                           at: datetime | str | None = None) -> LedgerAccount:
        return self._run(self._op_get_ledger_account(path, ledger, at))

    def get_balance(self, path: str, *, currency: str | None = None,
                    at: datetime | str | None = None, ledger: str | None = None) -> int:
        return self.get_ledger_account(path, ledger, at).balance(currency)

    def get_ledger_entry(self, ik: str | None = None, *, id: str | None = None,
                         ledger: str | None = None) -> LedgerEntry:
        return self._run(self._op_get_ledger_entry(ik, id, ledger))
