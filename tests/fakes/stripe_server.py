"""A fake of the parts of the Stripe API the Stripe sync calls, served over HTTP on
127.0.0.1 so the real ``stripe`` package talks to it unchanged (``base_addresses``).

It keeps Stripe's semantics where our code depends on them: lists newest first (by
``created``, then id), ``limit`` 1..100, cursor pagination with ``starting_after`` and
``has_more``, ``created`` filters (``gt``/``gte``/``lt``/``lte`` or an exact value),
``expand[]=data.source`` on lists and ``expand[]=source`` on retrieval, no status filter,
balance transactions that are ``pending`` until they become ``available``, charges whose
``balance_transaction`` is null until they settle, payment intents naming their
``latest_charge`` (which names its ``payment_intent``), bearer-key
authentication and Stripe's error shape. Tests add charges and settle them through methods
of ``FakeStripe``; the server answers from the same state in its own thread.
"""
from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import stripe

API_KEY = "rk_test_fake_restricted_key"
WEBHOOK_SECRET = "whsec_fake_signing_secret"


def _nested(pairs: list[tuple[str, str]]) -> dict:
    """``created[gte]=1&expand[0]=data.source`` -> ``{"created": {"gte": "1"}, "expand": [...]}``."""
    out: dict = {}
    for key, value in pairs:
        m = re.match(r"^([^\[]+)((?:\[[^\]]*\])*)$", key)
        if not m:
            continue
        name, rest = m.group(1), re.findall(r"\[([^\]]*)\]", m.group(2))
        if not rest:
            out[name] = value
        elif rest[0] == "" or rest[0].isdigit():
            out.setdefault(name, []).append(value)
        else:
            out.setdefault(name, {})[rest[0]] = value
    return out


class FakeStripe:
    def __init__(self, api_key: str = API_KEY):
        self.api_key = api_key
        self.lock = threading.Lock()
        self.balance_transactions: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.payment_intents: dict[str, dict] = {}
        self.requests: list[tuple[str, dict]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ test controls

    def add_charge(self, amount: int, *, metadata: dict | None = None, fee: int = 0,
                   created: int | None = None, currency: str = "usd",
                   pending: bool = False, type: str = "charge") -> dict:
        """A succeeded charge and its balance transaction (pending until ``settle``)."""
        created = int(created if created is not None else time.time())
        charge_id = "ch_" + secrets.token_hex(12)
        txn_id = "txn_" + secrets.token_hex(12)
        charge = {"id": charge_id, "object": "charge", "amount": amount, "currency": currency,
                  "created": created, "metadata": dict(metadata or {}), "paid": True,
                  "status": "succeeded", "balance_transaction": txn_id, "livemode": False}
        day = 86400
        txn = {"id": txn_id, "object": "balance_transaction", "amount": amount,
               "currency": currency, "created": created, "fee": fee, "net": amount - fee,
               "fee_details": [{"amount": fee, "currency": currency, "type": "stripe_fee",
                                "description": "Stripe processing fees"}] if fee else [],
               "description": f"Charge {charge_id}", "reporting_category": type,
               "source": charge_id, "type": type,
               "status": "pending" if pending else "available",
               "available_on": created + (2 * day if pending else 0)}
        with self.lock:
            self.charges[charge_id] = charge
            self.balance_transactions[txn_id] = txn
        return {"charge": copy.deepcopy(charge), "balance_transaction": copy.deepcopy(txn)}

    def add_payment_intent(self, amount: int, *, metadata: dict | None = None, fee: int = 0,
                           unsettled: bool = False) -> dict:
        """A succeeded payment intent and its charge (``latest_charge``, not expanded, as
        Stripe sends it); ``unsettled``: the charge has no balance transaction yet."""
        made = (self.add_unsettled_charge(amount, metadata=metadata) if unsettled
                else self.add_charge(amount, metadata=metadata, fee=fee))
        charge = made["charge"]
        pi_id = "pi_" + secrets.token_hex(12)
        intent = {"id": pi_id, "object": "payment_intent", "amount": amount,
                  "amount_received": amount, "currency": charge["currency"],
                  "created": charge["created"], "latest_charge": charge["id"],
                  "metadata": dict(metadata or {}), "livemode": False,
                  "status": "processing" if unsettled else "succeeded"}
        with self.lock:
            self.charges[charge["id"]]["payment_intent"] = pi_id
            self.payment_intents[pi_id] = intent
        return {**made, "payment_intent": copy.deepcopy(intent),
                "charge": copy.deepcopy(self.charges[charge["id"]])}

    def add_unsettled_charge(self, amount: int, *, metadata: dict | None = None,
                             currency: str = "usd") -> dict:
        """A charge not settled yet (an ACH debit, say): ``status`` pending and
        ``balance_transaction`` null until ``settle_charge``."""
        charge_id = "ch_" + secrets.token_hex(12)
        charge = {"id": charge_id, "object": "charge", "amount": amount, "currency": currency,
                  "created": int(time.time()), "metadata": dict(metadata or {}), "paid": False,
                  "status": "pending", "balance_transaction": None, "livemode": False}
        with self.lock:
            self.charges[charge_id] = charge
        return {"charge": copy.deepcopy(charge), "balance_transaction": None}

    def settle_charge(self, charge_id: str, *, fee: int = 0) -> dict:
        """The unsettled charge succeeds: its balance transaction appears, available."""
        with self.lock:
            charge = self.charges[charge_id]
            txn_id = "txn_" + secrets.token_hex(12)
            now = int(time.time())
            txn = {"id": txn_id, "object": "balance_transaction", "amount": charge["amount"],
                   "currency": charge["currency"], "created": now, "fee": fee,
                   "net": charge["amount"] - fee, "fee_details": [],
                   "description": f"Charge {charge_id}", "reporting_category": "charge",
                   "source": charge_id, "type": "charge", "status": "available",
                   "available_on": now}
            charge.update(status="succeeded", paid=True, balance_transaction=txn_id)
            self.balance_transactions[txn_id] = txn
            if charge.get("payment_intent") in self.payment_intents:
                self.payment_intents[charge["payment_intent"]]["status"] = "succeeded"
            return copy.deepcopy(txn)

    def add_balance_transaction(self, amount: int, *, type: str, created: int | None = None,
                                currency: str = "usd", fee: int = 0) -> dict:
        created = int(created if created is not None else time.time())
        txn_id = "txn_" + secrets.token_hex(12)
        txn = {"id": txn_id, "object": "balance_transaction", "amount": amount,
               "currency": currency, "created": created, "fee": fee, "net": amount - fee,
               "fee_details": [], "description": type, "reporting_category": type,
               "source": None, "type": type, "status": "available", "available_on": created}
        with self.lock:
            self.balance_transactions[txn_id] = txn
        return copy.deepcopy(txn)

    def settle(self, txn_id: str) -> None:
        """The funds of a pending balance transaction become available, as Stripe does on
        ``available_on``."""
        with self.lock:
            txn = self.balance_transactions[txn_id]
            txn["status"] = "available"
            txn["available_on"] = min(txn["available_on"], int(time.time()))

    def event(self, type: str, obj: dict, *, event_id: str | None = None) -> dict:
        return {"id": event_id or "evt_" + secrets.token_hex(12), "object": "event",
                "api_version": "2024-06-20", "created": int(time.time()), "type": type,
                "livemode": False, "pending_webhooks": 1, "request": {"id": None},
                "data": {"object": copy.deepcopy(obj)}}

    @staticmethod
    def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
        """The Stripe-Signature header, computed by the stripe package's own helper."""
        return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)

    @staticmethod
    def sign_raw(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
        """The Stripe-Signature header for any bytes (the package's helper takes text only):
        Stripe's scheme, HMAC-SHA256 of ``<t>.<body>``, for bodies that are not UTF-8."""
        t = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={t},v1={mac}"

    # ------------------------------------------------------------------ server

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeStripe":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                fake._handle(self)

            def do_POST(self):
                self._reply(404, {"error": {"type": "invalid_request_error",
                                            "message": "the fake serves reads only"}})

            def _reply(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_" + secrets.token_hex(6))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-stripe",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def client(self, api_key: str | None = None) -> stripe.StripeClient:
        return stripe.StripeClient(api_key or self.api_key, base_addresses={"api": self.url},
                                   max_network_retries=0)

    # ------------------------------------------------------------------ handlers

    def _handle(self, handler) -> None:
        auth = handler.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}":
            handler._reply(401, {"error": {"type": "invalid_request_error",
                                           "message": "Invalid API Key provided"}})
            return
        parts = urlsplit(handler.path)
        params = _nested(parse_qsl(parts.query, keep_blank_values=True))
        with self.lock:
            self.requests.append((parts.path, params))
            m = re.match(r"^/v1/balance_transactions/([^/]+)$", parts.path)
            if parts.path == "/v1/balance_transactions":
                status, body = self._list(params)
            elif m:
                status, body = self._retrieve_txn(m.group(1), params)
            elif (m := re.match(r"^/v1/charges/([^/]+)$", parts.path)):
                charge = self.charges.get(m.group(1))
                status, body = (200, copy.deepcopy(charge)) if charge else self._missing(m.group(1))
            elif (m := re.match(r"^/v1/payment_intents/([^/]+)$", parts.path)):
                intent = self.payment_intents.get(m.group(1))
                status, body = (200, copy.deepcopy(intent)) if intent else self._missing(m.group(1))
            else:
                status, body = 404, {"error": {"type": "invalid_request_error",
                                               "message": f"Unrecognized request URL (GET: {parts.path})"}}
        handler._reply(status, body)

    @staticmethod
    def _missing(obj_id: str):
        return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                               "message": f"No such object: '{obj_id}'"}}

    def _expanded(self, txn: dict, expand: bool) -> dict:
        out = copy.deepcopy(txn)
        if expand and out["source"] in self.charges:
            out["source"] = copy.deepcopy(self.charges[out["source"]])
        return out

    def _retrieve_txn(self, txn_id: str, params: dict):
        txn = self.balance_transactions.get(txn_id)
        if txn is None:
            return self._missing(txn_id)
        return 200, self._expanded(txn, "source" in params.get("expand", []))

    def _list(self, params: dict):
        try:
            limit = int(params.get("limit", 10))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 100:
            return 400, {"error": {"type": "invalid_request_error", "param": "limit",
                                   "message": "Invalid integer: limit must be between 1 and 100"}}
        items = sorted(self.balance_transactions.values(),
                       key=lambda x: (x["created"], x["id"]), reverse=True)
        created = params.get("created")
        if isinstance(created, str):
            items = [x for x in items if x["created"] == int(created)]
        elif isinstance(created, dict):
            ops = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
                   "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
            for op, value in created.items():
                items = [x for x in items if ops[op](x["created"], int(value))]
        after = params.get("starting_after")
        if after:
            ids = [x["id"] for x in items]
            if after not in self.balance_transactions:
                return self._missing(after)
            # Stripe continues after the cursor object's place in the order, even if
            # the cursor itself falls outside the filter.
            cursor = self.balance_transactions[after]
            key = (cursor["created"], cursor["id"])
            items = [x for x in items if (x["created"], x["id"]) < key] if after not in ids \
                else items[ids.index(after) + 1:]
        page = items[:limit]
        expand = "data.source" in params.get("expand", [])
        return 200, {"object": "list", "url": "/v1/balance_transactions",
                     "has_more": len(items) > limit,
                     "data": [self._expanded(x, expand) for x in page]}
