"""Posting speed of the ledger engine: entries per second for single posts and for batches
of 1,000, beside pgbench's TPC-B on the same PostgreSQL as the ceiling of one transaction
per operation.

    python bench/post.py [--seconds 15] [--clients 2] [--compare-events] [--compare-holds]

``--compare-events`` runs the batch phase with events off and on alternately (on, off,
off, on) and prints the throughput with events on against off (``LEDGER_EVENTS``).
``--compare-holds`` runs it posted as holds and posted outright alternately (holds,
posts, posts, holds: the same deposits, ``add_ledger_holds`` against
``add_ledger_entries``) and prints holds against posts.

Uses DATABASE_URL, else an embedded PostgreSQL. Figures are ratios to pgbench measured in
the same run, so they compare across machines.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pgbench import drop_database, scratch_database, tpcb  # noqa: E402
from ledger import service  # noqa: E402
from ledger.db import Database  # noqa: E402
from ledger.migrate import upgrade  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.service import EntryRequest  # noqa: E402

SCHEMA = {
    "key": "bench-wallet",
    "chartOfAccounts": {"accounts": [
        {"key": "assets", "type": "asset", "children": [{"key": "bank"}]},
        {"key": "liabilities", "type": "liability", "children": [
            {"key": "users", "template": True, "children": [{"key": "available"}]}]}]},
    "ledgerEntries": {"types": [
        {"type": "deposit", "lines": [
            {"key": "bank", "account": {"path": "assets/bank"}, "amount": "{{amount}}"},
            {"key": "user", "account": {"path": "liabilities/users:{{user}}/available"}, "amount": "{{amount}}"}]},
        {"type": "transfer", "lines": [
            {"key": "from", "account": {"path": "liabilities/users:{{from}}/available"}, "amount": "-{{amount}}"},
            {"key": "to", "account": {"path": "liabilities/users:{{to}}/available"}, "amount": "{{amount}}"}],
         "conditions": [{"account": {"path": "liabilities/users:{{from}}/available"},
                         "postcondition": {"ownBalance": {"gte": "0"}}}]}]},
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed_run(clients: int, seconds: float, work) -> tuple[int, float]:
    """Run ``work(client, round)`` (returns entries posted) in threads for ``seconds``."""
    done = [0] * clients
    stop = time.monotonic() + seconds

    def loop(c):
        r = 0
        while time.monotonic() < stop:
            done[c] += work(c, r)
            r += 1
    threads = [threading.Thread(target=loop, args=(c,)) for c in range(clients)]
    start = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(done), time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--compare-events", action="store_true",
                    help="batches with events on against off, alternately, in this run")
    ap.add_argument("--compare-holds", action="store_true",
                    help="batches posted as holds against posted outright, alternately")
    args = ap.parse_args()

    keep = None
    settings = Settings.from_env()
    service.configure_events(settings.events)  # LEDGER_EVENTS=off: the whole run without
    server = settings.database_url
    if not server:
        from ledger.embedded import embedded_postgres
        keep = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
        log("starting an embedded PostgreSQL (set DATABASE_URL to bench a server)...")
        server = embedded_postgres(keep)

    log(f"[1/3] pgbench TPC-B, {args.clients} clients, {args.seconds:.0f}s ...")
    pg_tps = tpcb(server, int(args.seconds), args.clients)

    url = scratch_database(server, "ledger_bench")
    db = Database(url)
    try:
        upgrade(url)
        service.store_schema(db, SCHEMA)
        service.create_ledger(db, "bench", "Bench", "bench-wallet")
        users = 1000

        log(f"[2/3] single posts, {args.clients} clients, {args.seconds:.0f}s ...")

        def single(c, r):
            # transfers between distinct pairs: conditions checked, no shared hot row
            a, b = f"s{c}-{r % 50}", f"s{c}-{(r + 1) % 50}"
            if r < 50:
                service.add_ledger_entry(db, "bench", EntryRequest(
                    ik=f"seed-{c}-{r}", type="deposit", parameters={"user": a, "amount": "1000000"}))
            else:
                service.add_ledger_entry(db, "bench", EntryRequest(
                    ik=f"s-{c}-{r}", type="transfer", parameters={"from": a, "to": b, "amount": "1"}))
            return 1
        single_n, single_t = timed_run(args.clients, args.seconds, single)

        log(f"[3/3] batches of 1,000 deposits across {users} users, {args.clients} clients, {args.seconds:.0f}s ...")

        def requests(prefix, c, r):
            return [EntryRequest(ik=f"{prefix}-{c}-{r}-{i}", type="deposit",
                                 parameters={"user": f"u{c}-{i}", "amount": str(100 + i)})
                    for i in range(users)]

        def batch(c, r):
            reqs = requests("b", c, r)
            service.add_ledger_entries(db, "bench", reqs)
            return len(reqs)

        # Far in the future: no sweep releases one during the run.
        expires = datetime.now(timezone.utc) + timedelta(days=1)

        def held_batch(c, r):
            reqs = requests("h", c, r)
            service.add_ledger_holds(db, "bench", reqs, expires)
            return len(reqs)
        batch_n, batch_t = timed_run(args.clients, args.seconds, batch)
        compared = _alternate(args, "events on", "events off", (
            lambda: service.configure_events(True), lambda: service.configure_events(False)),
            batch) if args.compare_events else None
        service.configure_events(settings.events)
        held = _alternate(args, "holds", "posts", (held_batch, batch)) \
            if args.compare_holds else None
    finally:
        db.dispose()
        drop_database(url)
        if keep is not None:
            from ledger.embedded import stop_embedded_postgres
            stop_embedded_postgres(keep)

    _report(pg_tps, single_n / single_t, batch_n / batch_t, compared, held)


def _report(pg_tps: float, single_eps: float, batch_eps: float, compared, held) -> None:
    print(f"pgbench TPC-B (ceiling of 1 transaction per operation): {pg_tps:10.0f} tps")
    print(f"single posts:        {single_eps:10.0f} entries/s  = {single_eps / pg_tps:5.2f}x pgbench")
    print(f"batches of 1,000:    {batch_eps:10.0f} entries/s  = {batch_eps / pg_tps:5.2f}x pgbench"
          f"  (target >= 4x: {'met' if batch_eps >= 4 * pg_tps else 'NOT met'})")
    if compared:
        on, off = compared
        print(f"batches, events on:  {on:10.0f} entries/s; off: {off:10.0f} entries/s; "
              f"on/off = {on / off:.3f} (events cost {(1 - on / off) * 100:.1f}%)")
    if held:
        holds, posts = held
        print(f"batches as holds:    {holds:10.0f} entries/s; posted: {posts:10.0f} entries/s; "
              f"holds/posts = {holds / posts:.3f} (holds cost {(1 - holds / posts) * 100:.1f}%)")


def _alternate(args, first: str, second: str, variants: tuple, batch=None) -> tuple[float, float]:
    """Entries/s of two variants of the batch phase, alternately (first, second, second,
    first), so a drift of the machine's speed weighs on both alike. ``variants``: two
    ``work(client, round)`` functions, or, given ``batch``, two set-ups run before it."""
    done = {0: [0, 0.0], 1: [0, 0.0]}
    for n, which in enumerate((0, 1, 1, 0)):
        log(f"[{first} / {second}] batches, {(first, second)[which]}, {args.seconds:.0f}s ...")
        if batch is None:
            work = variants[which]
        else:
            variants[which]()
            work = batch
        count, elapsed = timed_run(args.clients, args.seconds,
                                   lambda c, r, n=n, work=work: work(c, 10_000 * (n + 1) + r))
        done[which][0] += count
        done[which][1] += elapsed
    return done[0][0] / done[0][1], done[1][0] / done[1][1]


if __name__ == "__main__":
    main()
