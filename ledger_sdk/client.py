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
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import httpx

from ledger_sdk import documents as d
from ledger_sdk.history import HistoryMixin
from ledger_sdk.links import LinksMixin
from ledger_sdk.errors import (AuthenticationError, BadRequestError, GraphQLRequestError,
                               InternalError, LedgerAPIError, PermissionDeniedError,
                               TransportError, error_from_graphql_errors, error_from_result)
from ledger_sdk.types import (AddLedgerEntryResult, CreateLedgerResult, Ledger, LedgerAccount,
                              LedgerEntry, SchemaVersion, as_key_values)

# Refresh a token this long before the API would start refusing it.
TOKEN_MARGIN_SECONDS = 60


@dataclass
class _Op:
    document: str
    variables: dict
    field: str | None  # the root field read from ``data``; None: return ``data`` whole
    parse: Callable[[Any], Any]
    mutation: bool = False


class _Retry(Exception):
    def __init__(self, error: LedgerAPIError, after: float | None = None):
        self.error = error
        self.after = after


def _graphql_url(api_url: str) -> str:
    url = api_url.rstrip("/")
    return url if url.endswith("/graphql") else url + "/graphql"


def _default_auth_url(api_url: str) -> str:
    parts = urlsplit(api_url)
    return urlunsplit((parts.scheme, parts.netloc, "/oauth2/token", "", ""))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _posted(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def _entry_input(ledger: str, type: str, parameters: dict | None, posted, tags, groups,
                 lines) -> dict:
    entry: dict = {"ledger": {"ik": ledger}, "type": type}
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


class _Core(LinksMixin, HistoryMixin):
    def __init__(self, client_id: str, client_secret: str, api_url: str,
                 auth_url: str | None = None, auth_scope: str | None = None, *,
                 ledger_ik: str | None = None, max_retries: int = 5,
                 backoff_base: float = 0.1, backoff_max: float = 5.0, timeout: float = 30.0,
                 headers: dict | None = None):
        self.client_id = client_id
        self._client_secret = client_secret
        self.api_url = _graphql_url(api_url)
        self.auth_url = auth_url or _default_auth_url(api_url)
        self.auth_scope = auth_scope
        self.ledger_ik = ledger_ik
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._token: str | None = None
        self._token_expires = 0.0

    def __repr__(self) -> str:  # never show the secret or the token
        return f"{type(self).__name__}(client_id={self.client_id!r}, api_url={self.api_url!r})"

    # -------------------------------------------------------------- pieces shared by both

    def _delay(self, attempt: int, hint: float | None) -> float:
        # "Full jitter" backoff: concurrent clients that failed together do not retry together.
        delay = random.uniform(0, min(self.backoff_max, self.backoff_base * (2 ** attempt)))
        if hint is not None:
            delay = max(delay, min(hint, 30.0))
        return delay

    def _token_valid(self) -> bool:
        return self._token is not None and time.monotonic() < self._token_expires

    def _token_request(self) -> dict:
        form = {"grant_type": "client_credentials", "client_id": self.client_id}
        if self.auth_scope:
            form["scope"] = self.auth_scope
        return {"url": self.auth_url, "data": form,
                "auth": (self.client_id, self._client_secret),
                "headers": {"Accept": "application/json"}}

    def _take_token(self, response: httpx.Response) -> str:
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retry(InternalError(f"http_{response.status_code}",
                                       "the token endpoint failed", status=response.status_code),
                         _retry_after(response))
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not body.get("access_token"):
            cls = AuthenticationError if response.status_code in (400, 401) else LedgerAPIError
            raise cls(body.get("error") or f"http_{response.status_code}",
                      body.get("error_description") or "the token endpoint refused the client",
                      status=response.status_code)
        self._token = body["access_token"]
        lifetime = float(body.get("expires_in") or 3600)
        self._token_expires = time.monotonic() + max(lifetime - TOKEN_MARGIN_SECONDS, lifetime / 2)
        return self._token

    def _graphql_request(self, op: _Op, token: str) -> dict:
        return {"url": self.api_url,
                "json": {"query": op.document, "variables": op.variables},
                "headers": {**self.headers, "Authorization": f"Bearer {token}",
                            "Accept": "application/json"}}

    def _handle(self, op: _Op, response: httpx.Response) -> Any:
        """The result of one response, or `_Retry`, or the final exception."""
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retry(InternalError("rate_limited" if status == 429 else f"http_{status}",
                                       f"the API answered HTTP {status}", status=status),
                         _retry_after(response))
        try:
            body = response.json()
        except ValueError:
            body = None
        if status == 403:
            detail = (body or {}).get("detail") or {}
            raise PermissionDeniedError(detail.get("code", "forbidden"),
                                        detail.get("message", "insufficient scope"), status=403)
        if status >= 400:
            if status == 401:
                detail = (body or {}).get("detail") or {}
                raise AuthenticationError(detail.get("code", "unauthorized"),
                                          detail.get("message", "token refused"), status=401)
            errors = (body or {}).get("errors") or []
            if errors:
                err = error_from_graphql_errors(errors)
                err.status = status
                raise err
            raise GraphQLRequestError(f"http_{status}", response.text[:500], status=status)
        if not isinstance(body, dict):
            raise _Retry(InternalError("invalid_response", "the API answered something not JSON",
                                       status=status))
        data = body.get("data")
        errors = body.get("errors")
        if op.field is None:
            if errors:
                raise error_from_graphql_errors(errors)
            return op.parse(data)
        value = (data or {}).get(op.field)
        if value is None and errors:
            err = error_from_graphql_errors(errors)
            if err.retryable:
                raise _Retry(err)
            raise err
        if isinstance(value, dict) and value.get("__typename") in (
                "BadRequestError", "InternalError", "NotFoundError"):
            err = error_from_result(value)
            if isinstance(err, InternalError):
                raise _Retry(err)
            raise err
        return op.parse(value)

    # -------------------------------------------------------------- operations

    def _ledger(self, ledger: str | None) -> str:
        ledger = ledger or self.ledger_ik
        if not ledger:
            raise BadRequestError("invalid_input", "ledger: pass ledger= or set the client's "
                                  "ledger_ik")
        return ledger

    def _op_store_schema(self, schema: dict | str) -> _Op:
        if isinstance(schema, str):
            schema = json.loads(schema)
        document = {k: schema[k] for k in ("key", "name", "chartOfAccounts", "ledgerEntries")
                    if k in schema}
        return _Op(d.STORE_SCHEMA, {"schema": document}, "storeSchema",
                   lambda v: SchemaVersion.from_wire(v["schema"]), mutation=True)

    def _op_create_ledger(self, ik: str, name: str, schema_key: str,
                          balance_utc_offset: str | None) -> _Op:
        ledger: dict = {"name": name}
        if balance_utc_offset is not None:
            ledger["balanceUTCOffset"] = balance_utc_offset
        return _Op(d.CREATE_LEDGER, {"ik": ik, "ledger": ledger, "schema": {"key": schema_key}},
                   "createLedger",
                   lambda v: CreateLedgerResult(Ledger.from_wire(v["ledger"]), v["isIkReplay"]),
                   mutation=True)

    def _op_add_ledger_entry(self, ik, type, parameters, ledger, posted, tags, groups,
                             lines) -> _Op:
        # An ik chosen once per call: every retry of this call resends the same one.
        ik = ik or str(uuid.uuid4())
        entry = _entry_input(self._ledger(ledger), type, parameters, posted, tags, groups, lines)
        return _Op(d.ADD_LEDGER_ENTRY, {"ik": ik, "entry": entry}, "addLedgerEntry",
                   AddLedgerEntryResult.from_wire, mutation=True)

    def _op_reconcile_tx(self, type, parameters, external_ref, ledger, ik, lines) -> _Op:
        # No ik by default: the server keys the reconciliation by the tx's external id, so
        # retries (and other senders of the same tx) land on the same entry.
        entry = _entry_input(self._ledger(ledger), type, parameters, None, None, None, lines)
        if ik:
            entry["ik"] = ik
        variables: dict = {"entry": entry}
        if external_ref:
            variables["tx"] = {"externalId": external_ref}
        return _Op(d.RECONCILE_TX, variables, "reconcileTx", AddLedgerEntryResult.from_wire,
                   mutation=True)

    def _op_add_ledger_entries(self, entries: list[dict], ledger: str | None) -> _Op:
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
        return _Op(d.ADD_LEDGER_ENTRIES, {"entries": items}, "addLedgerEntries",
                   lambda v: [AddLedgerEntryResult.from_wire(r) for r in v["results"]],
                   mutation=True)

    def _op_get_schema(self, key: str, version: int | None) -> _Op:
        match: dict = {"key": key}
        if version is not None:
            match["version"] = version
        return _Op(d.GET_SCHEMA, {"schema": match}, "schema", SchemaVersion.from_wire)

    def _op_get_ledger(self, ik: str | None) -> _Op:
        return _Op(d.GET_LEDGER, {"ledger": {"ik": self._ledger(ik)}}, "ledger", Ledger.from_wire)

    def _op_list_ledgers(self) -> _Op:
        return _Op(d.LIST_LEDGERS, {}, "ledgers",
                   lambda v: [Ledger.from_wire(n) for n in v["nodes"]])

    def _op_get_ledger_account(self, path: str, ledger: str | None, at=None) -> _Op:
        # ``at``: a time, or a period meaning its last moment in the ledger's offset.
        return _Op(d.GET_LEDGER_ACCOUNT,
                   {"ledgerAccount": {"path": path, "ledger": {"ik": self._ledger(ledger)}},
                    "at": _posted(at)},
                   "ledgerAccount", LedgerAccount.from_wire)

    def _op_get_ledger_entry(self, ik: str | None, id: str | None, ledger: str | None) -> _Op:
        if id is not None:
            match: dict = {"id": id}
        elif ik is not None:
            match = {"ik": ik, "ledger": {"ik": self._ledger(ledger)}}
        else:
            raise BadRequestError("invalid_input", "pass ik= (with ledger=) or id=")
        return _Op(d.GET_LEDGER_ENTRY, {"ledgerEntry": match}, "ledgerEntry",
                   LedgerEntry.from_wire)

    def _op_query(self, document: str, variables: dict | None) -> _Op:
        return _Op(document, variables or {}, None, lambda data: data)


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
                retry = _Retry(TransportError("network_error", f"{type(exc).__name__}: {exc}"))
            except _Retry as exc:
                retry = exc
            if attempt >= self.max_retries:
                raise retry.error
            await asyncio.sleep(self._delay(attempt, retry.after))
            attempt += 1

    async def _run(self, op: _Op) -> Any:
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
                retry = _Retry(TransportError("network_error", f"{type(exc).__name__}: {exc}"))
            except _Retry as exc:
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

    async def reconcile_tx(self, type: str, parameters: dict | None = None,
                           external_ref: str | None = None, ledger: str | None = None,
                           ik: str | None = None,
                           lines: list[dict] | None = None) -> AddLedgerEntryResult:
        """Seed 000: post ``type`` for a synced external tx; amount and posted come from
        the tx (``external_ref`` names it when the entry type's lines do not)."""
        return await self._run(self._op_reconcile_tx(type, parameters, external_ref, ledger,
                                                     ik, lines))

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

    async def get_balance(self, path: str, ledger: str | None = None,
                          currency: str | None = None,
                          at: datetime | str | None = None) -> int:
        """``balance`` (own + children) of one account, in one currency."""
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
                retry = _Retry(TransportError("network_error", f"{type(exc).__name__}: {exc}"))
            except _Retry as exc:
                retry = exc
            if attempt >= self.max_retries:
                raise retry.error
            time.sleep(self._delay(attempt, retry.after))
            attempt += 1

    def _run(self, op: _Op) -> Any:
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
                retry = _Retry(TransportError("network_error", f"{type(exc).__name__}: {exc}"))
            except _Retry as exc:
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

    def reconcile_tx(self, type: str, parameters: dict | None = None,
                     external_ref: str | None = None, ledger: str | None = None,
                     ik: str | None = None, lines: list[dict] | None = None) -> AddLedgerEntryResult:
        return self._run(self._op_reconcile_tx(type, parameters, external_ref, ledger, ik, lines))

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

    def get_balance(self, path: str, ledger: str | None = None,
                    currency: str | None = None, at: datetime | str | None = None) -> int:
        return self.get_ledger_account(path, ledger, at).balance(currency)

    def get_ledger_entry(self, ik: str | None = None, *, id: str | None = None,
                         ledger: str | None = None) -> LedgerEntry:
        return self._run(self._op_get_ledger_entry(ik, id, ledger))
