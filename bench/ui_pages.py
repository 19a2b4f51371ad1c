"""How fast the dashboard's pages answer on a large ledger: ``--lines`` lines (200,000 by
default: half as many two-line entries, deposits and transfers between ``--users`` users over
a year), then each page requested through the app in process, the median of ``--runs``.

    python bench/ui_pages.py [--lines 200000] [--users 500] [--runs 5]

On DATABASE_URL's server (a scratch database, dropped at the end). The issue's target is
under 100 ms a page."""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from api.app import create_app  # noqa: E402
from bench.pgbench import drop_database, scratch_database  # noqa: E402
from ledger import clients, service  # noqa: E402
from ledger.commands import EntryRequest  # noqa: E402
from ledger.db import Database  # noqa: E402
from ledger.migrate import upgrade  # noqa: E402
from ledger.settings import Secret, Settings  # noqa: E402

USER = "liabilities/users:{{user}}/available"
SCHEMA = {
    "key": "bench-ui",
    "chartOfAccounts": {"assets": {"bank": {}}, "liabilities": {"users": {"template": True, "available": {}}}},
    "ledgerEntries": {"types": [
        {"type": "deposit", "description": "{{user}} deposits {{amount}}",
         "lines": [{"key": "bank", "account": {"path": "assets/bank"}, "amount": "{{amount}}"},
                   {"key": "user", "account": {"path": USER}, "amount": "{{amount}}"}]},
        {"type": "transfer",
         "lines": [{"key": "from", "account": {"path": "liabilities/users:{{from}}/available"},
                    "amount": "-{{amount}}"},
                   {"key": "to", "account": {"path": "liabilities/users:{{to}}/available"},
                    "amount": "{{amount}}"}]},
    ]},
}
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


def fill(db: Database, ledger: str, entries: int, users: int) -> None:
    step = timedelta(seconds=365 * 86400 / entries)
    batch = []
    for n in range(entries):
        user = f"u{n % users}"
        if n % 3 == 2:
            request = EntryRequest(ik=f"e{n}", type="transfer", posted=START + n * step,
                                   parameters={"from": user, "to": f"u{(n + 7) % users}",
                                               "amount": "1"})
        else:
            request = EntryRequest(ik=f"e{n}", type="deposit", posted=START + n * step,
                                   parameters={"user": user, "amount": str(100 + n % 50)})
        batch.append(request)
        if len(batch) == 1000:
            service.add_ledger_entries(db, ledger, batch)
            batch = []
    if batch:
        service.add_ledger_entries(db, ledger, batch)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    settings = Settings.from_env()
    url = scratch_database(settings.database_url, "bench_ui")
    db = Database(url)
    try:
        upgrade(url)
        service.store_schema(db, SCHEMA)
        service.create_ledger(db, "big", "Big", "bench-ui")
        started = time.monotonic()
        fill(db, "big", args.lines // 2, args.users)
        print(f"posted {args.lines // 2:,} entries in {time.monotonic() - started:.0f} s")
        # What autovacuum does to a ledger that grew over time: right after a bulk load the
        # planner's statistics still describe empty tables (an account's page of lines then
        # took 90 ms instead of 1).
        with db.transaction() as conn:
            conn.execute(sa.text("ANALYZE"))
        client = clients.create_client(db, "bench", "write")
        # The scratch database's signing key is sealed with this key (a fresh one if unset).
        key = settings.secret_key or Secret(service.generate_key())
        app = create_app(Settings(database_url=url, secret_key=key), db=db)
        browser = TestClient(app)
        signed = browser.post("/ui/signin", data={"client_id": client.client_id,
                                                  "client_secret": client.client_secret},
                              follow_redirects=False)
        assert signed.status_code == 303, signed.text[:300]
        entry = service.get_ledger_entry(db, ledger_ik="big", ik=f"e{args.lines // 4}")
        pages = {
            "ledgers": "/ui/ledgers",
            "ledger (chart tree)": "/ui/ledgers/big",
            "ledger at a date": "/ui/ledgers/big?at=2025-06-30",
            "account (daily chart)": "/ui/ledgers/big/account?path=liabilities/users:u1/available",
            "account (monthly)": "/ui/ledgers/big/account?path=liabilities/users:u1/available&scale=monthly",
            "account assets/bank": "/ui/ledgers/big/account?path=assets/bank",
            "entry": f"/ui/ledgers/big/entries/{entry.id}",
            "schema": "/ui/ledgers/big/schema",
            "jobs": "/ui/ledgers/big/jobs",
            "reconciliation": "/ui/ledgers/big/reconciliation",
            "search (entry ik)": "/ui/search?ledger=big&q=e1234",
            "search (path prefix)": "/ui/search?ledger=big&q=liabilities/users:u1",
        }
        for name, path in pages.items():
            times = []
            for _ in range(args.runs + 1):
                t0 = time.perf_counter()
                r = browser.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200 and not r.history, (path, r.status_code, r.text[:300])
            print(f"{name:28} {statistics.median(times[1:]):7.1f} ms")
    finally:
        db.dispose()
        drop_database(url)


if __name__ == "__main__":
    main()
