"""A real HTTP server receiving webhooks in a test: it verifies each delivery's Standard
Webhooks signature with its own copy of the endpoint's secret, and can be told to fail or
to hold requests."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    webhook_id: str
    headers: dict
    body: dict
    verified: bool
    answered: int
    raw: bytes = b""


@dataclass
class Receiver:
    secret: str | None = None
    fail_next: int = 0          # answer this many requests with 500 first
    always_fail: bool = False
    hold: threading.Event | None = None   # set: requests wait for it before answering
    requests: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handle(self, raw: bytes, headers: dict) -> int:
        verified = False
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(raw, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        with self.lock:
            if self.always_fail or self.fail_next > 0:
                self.fail_next = max(0, self.fail_next - 1)
                status = 500
            else:
                status = 200 if verified else 401
            self.requests.append(Received(headers.get("webhook-id", ""), headers,
                                          json.loads(raw), verified, status, raw))
        self.arrived.set()
        if self.hold is not None:
            self.hold.wait(60)
        return status

    def delivered(self) -> list[Received]:
        """Requests answered 2xx, in the order they arrived."""
        with self.lock:
            return [r for r in self.requests if r.answered == 200]

    def wait_delivered(self, count: int, seconds: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + seconds
        while len(self.delivered()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.delivered()


def start_receiver(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            status = receiver.handle(raw, {k.lower(): v for k, v in self.headers.items()})
            try:
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no")
            except OSError:
                pass  # the sender is gone (killed mid-delivery)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    return server
