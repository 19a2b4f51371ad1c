"""`ledger up` in a subprocess, on a fresh data folder and with no DATABASE_URL / REDIS_URL:
embedded PostgreSQL and Redis, migrations, API, worker and beat. The wallet of seed 000
runs through it (schema, deposits, a guarded transfer, a retried request), it stops cleanly
on Ctrl-C, and a second start on the same folder finds its data again."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import json5
import psutil
import pytest

from tests.serving import free_port, wait_until_up

REPO = Path(__file__).resolve().parents[2]
WALLET = REPO / "tests" / "fixtures" / "seed000_wallet.jsonc"

pytestmark = pytest.mark.slow

STORE_SCHEMA = """mutation($schema: SchemaInput!) { storeSchema(schema: $schema) {
  __typename ... on StoreSchemaResult { schema { key } } ... on Error { code message } } }"""
CREATE_LEDGER = """mutation($ik: SafeString!, $ledger: CreateLedgerInput!,
  $schema: SchemaMatchInput) { createLedger(ik: $ik, ledger: $ledger, schema: $schema) {
  __typename ... on CreateLedgerResult { ledger { ik } } ... on Error { code message } } }"""
BALANCE = """query($a: LedgerAccountMatchInput!) { ledgerAccount(ledgerAccount: $a) {
  balance } }"""


class Up:
    """One `ledger up` process; its output is read line by line as it comes."""

    def __init__(self, data_dir: Path, port: int, log: Path):
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "REDIS_URL")}
        env["PYTHONUNBUFFERED"] = "1"
        self.log = log
        self.out = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "up", "--data-dir", str(data_dir),
             "--port", str(port)],
            cwd=REPO, env=env, stdout=self.out, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"

    def text(self) -> str:
        return self.log.read_text()

    def wait_up(self, timeout: float = 120) -> str:
        return wait_until_up(self, timeout)

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def interrupt(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        finally:
            self.out.close()

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in self.tree():
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass


def gql(up: Up, token: str, query: str, variables: dict) -> dict:
    r = httpx.post(f"{up.url}/graphql", json={"query": query, "variables": variables},
                   headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    return r.json()["data"]


def token_for(up: Up, client_id: str, secret: str) -> str:
    r = httpx.post(f"{up.url}/oauth2/token", data={"grant_type": "client_credentials"},
                   auth=(client_id, secret), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def balance(up: Up, token: str, ledger: str, user: str) -> str:
    return gql(up, token, BALANCE, {"a": {"path": f"liabilities/users:{user}/available",
                                          "ledger": {"ik": ledger}}})["ledgerAccount"]["balance"]


def test_ledger_up_runs_the_seed_000_wallet_and_stops_cleanly(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    up = Up(data_dir, port, tmp_path / "up1.log")
    processes: list[psutil.Process] = []
    try:
        text = up.wait_up()
        processes = up.tree()
        client_id = re.search(r"client id:\s+(\S+)", text).group(1)
        secret = re.search(r"client secret:\s+(\S+)", text).group(1)
        assert f"{up.url}/openapi.json" in text and str(data_dir) in text
        token = token_for(up, client_id, secret)
        h = {"Authorization": f"Bearer {token}"}

        # Step 1: the schema, a ledger, a deposit (asynchronously, through a worker).
        wallet = json5.loads(WALLET.read_text())
        assert gql(up, token, STORE_SCHEMA, {"schema": wallet})["storeSchema"]["schema"] \
            == {"key": "wallet"}
        gql(up, token, CREATE_LEDGER, {"ik": "wallet-1", "ledger": {"name": "Wallet"},
                                       "schema": {"key": "wallet"}})
        entries = f"{up.url}/v1/ledgers/wallet-1/entries"
        deposit = {"ik": "dep-alice-1", "type": "deposit",
                   "parameters": {"user_id": "alice", "amount": "250"}}
        r = httpx.post(entries, json=deposit, headers={**h, "Prefer": "wait=20"}, timeout=60)
        assert r.status_code == 200, r.text
        [job] = r.json()["jobs"]
        assert job["status"] == "posted"

        # Step 2: transfers guarded by the sender's balance; the second would overdraw.
        transfers = [{"ik": f"tr-{i}", "type": "transfer",
                      "parameters": {"from_id": "alice", "to_id": "bob", "amount": "200"}}
                     for i in (1, 2)]
        r = httpx.post(entries, json=transfers, headers={**h, "Prefer": "wait=20"},
                       timeout=60)
        assert r.status_code == 200, r.text
        first, second = r.json()["jobs"]
        assert first["status"] == "posted"
        assert second["status"] == "failed"
        assert second["error"]["code"] == "condition_failed"

        # Step 3: a retried request is the same job, not a second posting.
        again = httpx.post(entries, json=deposit, headers=h, timeout=30)
        assert again.status_code == 202 and again.json()["jobs"][0]["id"] == job["id"]
        assert balance(up, token, "wallet-1", "alice") == "50"
        assert balance(up, token, "wallet-1", "bob") == "200"
        status = httpx.get(f"{up.url}/v1/jobs/{job['id']}", headers=h).json()
        assert status["status"] == "posted" and status["entry"]["id"]

        # The API's /metrics counts the worker's jobs too: they share a metrics folder.
        page = httpx.get(f"{up.url}/metrics", headers=h, timeout=30).text
        posted = re.findall(r'^ledger_jobs_posted_total\{partition="\d+"\} (\S+)$', page, re.M)
        failed = re.findall(r'^ledger_jobs_failed_total\{partition="\d+"\} (\S+)$', page, re.M)
        assert sum(map(float, posted)) == 2 and sum(map(float, failed)) == 1, page
        assert "ledger_jobs_oldest_pending_seconds{" in page

        # One `ledger up` per data folder: a second one refuses to start.
        second = subprocess.run(
            [sys.executable, "-m", "api.cli", "up", "--data-dir", str(data_dir),
             "--port", str(free_port())], cwd=REPO, capture_output=True, text=True,
            timeout=60, env={k: v for k, v in os.environ.items()
                             if k not in ("DATABASE_URL", "REDIS_URL")})
        assert second.returncode == 1 and "already running" in second.stdout

        assert up.interrupt() == 0
        assert re.search(r"ledger: stopped in [0-9.]+s", up.text())
        assert not [p for p in processes if p.is_running()
                    and p.status() != psutil.STATUS_ZOMBIE], "a process outlived ledger up"
    finally:
        up.kill()

    # The data folder survives: a second start reuses it, with no new client.
    up = Up(data_dir, port, tmp_path / "up2.log")
    try:
        text = up.wait_up()
        assert "client secret" not in text
        token = token_for(up, client_id, secret)
        assert balance(up, token, "wallet-1", "alice") == "50"
        assert up.interrupt() == 0
    finally:
        up.kill()
