"""End-to-end speed of asynchronous posting: entries accepted by the REST API (batches of
1,000) until posted by a Celery worker, beside pgbench's TPC-B on the same PostgreSQL.

    python bench/pipeline.py [--seconds 20] [--clients 2] [--concurrency 2]
                             [--workers 1] [--api-processes 1]

Runs the real processes: the API (uvicorn, --api-processes) and the workers (`celery
worker`: one on every partition queue, or --workers splitting the partitions between them
through LEDGER_WORKER_PARTITIONS, the first also on the maintenance queue), on DATABASE_URL / REDIS_URL or else embedded servers, in a scratch database that is
dropped at the end. Prints progress while it runs, then entries/s from the first accepted
job to the last posted one, pgbench's tps (half its time measured before the pipeline runs,
half after, so a machine whose speed drifts during the run weighs on both figures alike)
and the ratio (target >= 4x), the lag from acceptance to posting (p50, p95) and the
worker's peak memory. The flood makes a backlog, so it then submits at half the measured
rate for --steady-seconds and prints the lag of a pipeline that keeps up.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.pgbench import drop_database, scratch_database, tpcb  # noqa: E402
from ledger import clients, service  # noqa: E402
from ledger.db import Database  # noqa: E402
from ledger.migrate import upgrade  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from tests import serving  # noqa: E402

BATCH = 1000
# A hot bank account every deposit touches, eventually consistent as it would be in
# production (DESIGN.md, "Consistency"); users strong, each deposit guarded by a cap.
SCHEMA = {
    "key": "bench-pipeline",
    "chartOfAccounts": {
        "assets": {"bank": {"consistencyConfig": {"ownBalanceUpdates": "eventual"}}},
        "liabilities": {"users": {"template": True, "available": {}}},
    },
    "ledgerEntries": {"types": [
        {"type": "deposit",
         "lines": [
             {"key": "bank", "account": {"path": "assets/bank"}, "amount": "{{amount}}"},
             {"key": "user", "account": {"path": "liabilities/users:{{user}}/available"},
              "amount": "{{amount}}"}],
         "conditions": [{"account": {"path": "liabilities/users:{{user}}/available"},
                         "postcondition": {"ownBalance": {"lte": "1000000000000"}}}]},
    ]},
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=open(log_path, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(base: str, api: subprocess.Popen, log_path: Path) -> None:
    """Until the API at ``base`` answers /healthz; exits naming its log if it never does."""
    try:
        serving.wait_healthy(api, base, log_path.parent)
    except AssertionError:
        sys.exit(f"the API did not start; see {log_path}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def tree_memory(pid: int) -> tuple[int, int]:
    """(largest single process, whole tree) memory in bytes. PSS, not RSS: forked pool
    children share most of their pages with the main process, and RSS would count those
    pages once per process."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
        sizes = []
        for p in procs:
            try:
                sizes.append(p.memory_full_info().pss)
            except (psutil.AccessDenied, AttributeError):
                sizes.append(p.memory_info().rss)
    except psutil.NoSuchProcess:
        return 0, 0
    return max(sizes), sum(sizes)


def tree_cpu(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
        return sum(sum(p.cpu_times()[:2]) for p in procs)
    except psutil.NoSuchProcess:
        return 0.0


def postgres_cpu(database: str) -> float:
    """CPU seconds of the server processes serving ``database`` (this machine only)."""
    total = 0.0
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if cmd.startswith("postgres:") and f" {database} " in f" {cmd} ":
                total += sum(p.cpu_times()[:2])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _forget_queues(redis_url: str, prefix: str) -> None:
    """Delete this run's queues and bindings: the broker may be shared."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


STEADY_BATCH = 100


def deposits(prefix: str, r: int, size: int, users: int, amount=None) -> list[dict]:
    """Request ``r`` of a submitter: ``size`` deposits spread over the users."""
    return [{"ik": f"{prefix}-{r}-{i}", "type": "deposit",
             "parameters": {"user": f"u{(r * size + i) % users}",
                            "amount": amount or str(1 + i)}} for i in range(size)]


def submit(http: httpx.Client, base: str, body: list[dict]) -> None:
    resp = http.post(f"{base}/v1/ledgers/bench/entries", json=body)
    if resp.status_code != 202:
        raise SystemExit(f"submission refused: {resp.status_code} {resp.text[:300]}")


def pending_jobs(db: Database) -> int:
    # The partial index holds just the pending jobs, so counting them costs the database
    # little however many jobs have finished.
    with db.transaction() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) FROM posting_jobs WHERE status = 'pending'")).scalar()


def steady_lag(db: Database, base: str, headers: dict, rate: float,
               args) -> tuple[float, float, float]:
    """Submit ``rate`` entries/s in requests of STEADY_BATCH for ``args.steady_seconds``,
    wait until all are posted, and return (rate, lag p50, lag p95) in seconds."""
    log(f"[3/4] submitting {rate:.0f} entries/s (half the rate just measured) in requests "
        f"of {STEADY_BATCH} for {args.steady_seconds:.0f}s: the lag when the pipeline "
        "keeps up ...")
    interval = STEADY_BATCH * args.clients / rate
    stop_at = time.monotonic() + args.steady_seconds

    def submitter(c: int) -> None:
        with httpx.Client(timeout=120, headers=headers) as http:
            r, due = 0, time.monotonic() + interval * c / args.clients
            while due < stop_at:
                time.sleep(max(0.0, due - time.monotonic()))
                submit(http, base, deposits(f"steady-{c}", r, STEADY_BATCH, args.users, "1"))
                r, due = r + 1, due + interval

    threads = [threading.Thread(target=submitter, args=(c,), daemon=True)
               for c in range(args.clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    deadline = time.monotonic() + 120
    while pending_jobs(db):
        if time.monotonic() > deadline:
            # A lag over finished jobs only would hide the ones that never finished.
            sys.exit("jobs still pending 120 s after the steady phase: the worker fell "
                     "behind or stopped")
        time.sleep(0.5)
    with db.transaction() as conn:
        p50, p95 = conn.execute(sa.text(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY finished - created), "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY finished - created) "
            "FROM posting_jobs WHERE ik LIKE 'steady-%'")).one()
    return rate, p50.total_seconds(), p95.total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20, help="how long to submit")
    ap.add_argument("--clients", type=int, default=2, help="concurrent submitters")
    ap.add_argument("--concurrency", type=int, default=2, help="processes of each worker")
    ap.add_argument("--workers", type=int, default=1,
                    help="workers, each on its own share of the partitions")
    ap.add_argument("--api-processes", type=int, default=1, help="uvicorn --workers")
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--steady-seconds", type=float, default=10,
                    help="then submit at half the measured rate for this long, to measure "
                         "the lag of a pipeline that keeps up (0: skip)")
    ap.add_argument("--pgbench-seconds", type=int, default=20,
                    help="pgbench's time in all, half before the pipeline, half after")
    args = ap.parse_args()

    settings = Settings.from_env()
    tmp = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    server = settings.database_url or ""
    redis_url = settings.redis_url or ""
    embedded_redis = None
    if not server:
        from ledger.embedded import embedded_postgres
        log("starting an embedded PostgreSQL (set DATABASE_URL to bench a server)...")
        server = embedded_postgres(tmp)
    if not redis_url:
        from ledger.embedded import embedded_redis as start_redis
        embedded_redis = start_redis(tmp)
        redis_url = embedded_redis.redis_url

    half = max(1, args.pgbench_seconds // 2)
    log(f"[1/4] pgbench TPC-B, {args.clients} clients, {half}s, before the pipeline ...")
    pg_before = tpcb(server, half, args.clients)

    url = scratch_database(server, "ledger_pipeline_bench")
    prefix = f"bench-{secrets.token_hex(3)}"
    procs: list[subprocess.Popen] = []
    db = Database(url)
    try:
        upgrade(url)
        service.store_schema(db, SCHEMA)
        service.create_ledger(db, "bench", "Bench", SCHEMA["key"])
        created = clients.create_client(db, "bench")
        # A scratch database: the API stores its token signing key encrypted, so it needs
        # a key even when the environment names none.
        key = settings.secret_key.reveal() if settings.secret_key else service.generate_key()
        env = settings.child_environ(DATABASE_URL=url, REDIS_URL=redis_url,
                                     LEDGER_QUEUE_PREFIX=prefix, PYTHONPATH=str(ROOT),
                                     LEDGER_SECRET_KEY=key)
        procs, base, headers = _start_pipeline(env, created, tmp, args)
        run = _measure(db, url, base, headers, procs, tmp, args)
        if args.steady_seconds > 0:
            run["steady"] = steady_lag(db, base, headers, run["eps"] / 2, args)
    finally:
        for p in procs:
            stop(p)
        db.dispose()
        drop_database(url)
        _forget_queues(redis_url, prefix)

    log(f"[4/4] pgbench TPC-B, {args.clients} clients, {half}s, after the pipeline ...")
    pg_after = tpcb(server, half, args.clients)
    if embedded_redis is not None:
        embedded_redis.stop(save=False)
    if not settings.database_url:
        from ledger.embedded import stop_embedded_postgres
        stop_embedded_postgres(tmp)

    # Logs are kept only when something went wrong (the exits above name the folder).
    shutil.rmtree(tmp, ignore_errors=True)
    _print_report(run, pg_before, pg_after)


def _start_pipeline(env: dict, created, tmp: Path, args) -> tuple[list, str, dict]:
    """Start the API and the workers; wait until the API answers. Returns (processes: the
    API, then the workers; base URL; authorization headers)."""
    port = free_port()
    py = sys.executable
    api = start([py, "-m", "uvicorn", "api.app:app_from_env", "--factory", "--port", str(port),
                 "--workers", str(args.api_processes), "--log-level", "warning"],
                {**env, "LEDGER_API_PROCESSES": str(args.api_processes)}, tmp / "api.log")
    workers = [start([py, "-m", "celery", "-A", "workers.app", "worker", "--loglevel",
                      "WARNING", "--concurrency", str(args.concurrency), "--without-gossip",
                      "--without-mingle", "--without-heartbeat", "--hostname", f"w{i}@%h"],
                     {**env, **share}, tmp / f"worker{i}.log")
               for i, share in enumerate(worker_shares(args.workers,
                                                       Settings.from_env(env).partitions))]
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, api, tmp / "api.log")
    token = httpx.post(f"{base}/oauth2/token", data={"grant_type": "client_credentials"},
                       auth=(created.client_id, created.client_secret)).json()["access_token"]
    time.sleep(2 + args.workers)  # the workers connect to the broker
    return [api, *workers], base, {"Authorization": f"Bearer {token}"}


def worker_shares(workers: int, partitions: int) -> list[dict]:
    """The environment of each worker: a contiguous share of the partitions, the
    maintenance queue on the first. One worker: every partition, as `ledger up` runs it."""
    if workers <= 1:
        return [{}]
    if workers > partitions:
        sys.exit(f"--workers {workers}: more workers than the {partitions} partitions")
    shares = []
    for i in range(workers):
        first, last = i * partitions // workers, (i + 1) * partitions // workers - 1
        shares.append({"LEDGER_WORKER_PARTITIONS": f"{first}-{last}",
                       "LEDGER_WORKER_MAINTENANCE": "true" if i == 0 else "false"})
    return shares


def _measure(db: Database, url: str, base: str, headers: dict, procs: list, tmp: Path,
             args) -> dict:
    """Submit from ``args.clients`` threads for ``args.seconds``, log progress until every
    job is done, and return what was measured."""
    api, *workers = procs
    accepted = [0] * args.clients
    peak = {"one": 0, "all": 0}
    stop_at = time.monotonic() + args.seconds

    def submitter(c: int) -> None:
        with httpx.Client(timeout=120, headers=headers) as http:
            r = 0
            while time.monotonic() < stop_at:
                submit(http, base, deposits(str(c), r, BATCH, args.users))
                accepted[c] += BATCH
                r += 1

    log(f"[2/4] submitting batches of {BATCH} with {args.clients} clients for "
        f"{args.seconds:.0f}s; {args.api_processes} API process(es), {args.workers} "
        f"worker(s) of concurrency {args.concurrency} ...")
    threads = [threading.Thread(target=submitter, args=(c,), daemon=True)
               for c in range(args.clients)]
    database = url.rsplit("/", 1)[-1].split("?")[0]
    cpu0 = (tree_cpu(api.pid), sum(tree_cpu(w.pid) for w in workers))
    t0 = time.monotonic()
    for th in threads:
        th.start()
    last = (t0, 0)
    pg_cpu = 0.0
    while True:
        time.sleep(1)
        pending = pending_jobs(db)
        sizes = [tree_memory(w.pid) for w in workers]
        one, total = max(m[0] for m in sizes), sum(m[1] for m in sizes)
        peak["one"], peak["all"] = max(peak["one"], one), max(peak["all"], total)
        done = sum(accepted) - pending
        now = time.monotonic()
        rate = (done - last[1]) / (now - last[0])
        last = (now, done)
        pg_cpu = max(pg_cpu, postgres_cpu(database))
        log(f"  {now - t0:5.1f}s  accepted {sum(accepted):>7}  posted/failed {done:>7}  "
            f"pending {pending:>6}  {rate:8.0f}/s  worker memory "
            f"{peak['all'] / 2**20:.0f} MB")
        if any(w.poll() is not None for w in workers):
            sys.exit(f"a worker died; see {tmp}/worker*.log")
        if all(not th.is_alive() for th in threads) and pending == 0 \
                and done >= sum(accepted):
            break
    cpu = (tree_cpu(api.pid) - cpu0[0], sum(tree_cpu(w.pid) for w in workers) - cpu0[1],
           pg_cpu)
    with db.transaction() as conn:
        first, last_posted, total, failed, p50, p95 = conn.execute(sa.text(
            "SELECT min(created), max(finished), count(*), "
            "count(*) FILTER (WHERE status = 'failed'), "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY finished - created), "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY finished - created) "
            "FROM posting_jobs")).one()
    span = (last_posted - first).total_seconds()
    return {"total": total, "failed": failed, "span": span, "eps": total / span, "p50": p50,
            "p95": p95, "cpu": cpu, "peak": peak, "steady": None,
            "topology": f"{args.api_processes} API process(es), {args.workers} worker(s) of "
                        f"{args.concurrency} process(es)"}


def _print_report(run: dict, pg_before: float, pg_after: float) -> None:
    pg_tps = (pg_before + pg_after) / 2
    eps, total, peak, cpu, steady = run["eps"], run["total"], run["peak"], run["cpu"], run["steady"]
    ratio = eps / pg_tps
    print(f"topology: {run['topology']}")
    print(f"entries accepted and posted: {total} ({run['failed']} failed) in {run['span']:.1f}s")
    print(f"end to end (API accept -> posted): {eps:10.0f} entries/s")
    print(f"pgbench TPC-B, same PostgreSQL:    {pg_tps:10.0f} tps  (before {pg_before:.0f}, "
          f"after {pg_after:.0f})")
    print(f"ratio: {ratio:.2f}x  (target >= 4x: {'met' if ratio >= 4 else 'NOT met'})")
    print(f"lag accept -> posted: p50 {run['p50'].total_seconds():.2f}s  "
          f"p95 {run['p95'].total_seconds():.2f}s"
          "  (a backlog: the bench submits faster than the pipeline posts)")
    if steady is not None:
        print(f"lag at {steady[0]:.0f} entries/s, half that rate, in requests of "
              f"{STEADY_BATCH}: p50 {steady[1]:.2f}s  p95 {steady[2]:.2f}s")
    print(f"worker memory peak (PSS): {peak['all'] / 2**20:.0f} MB for mains + pools, largest "
          f"process {peak['one'] / 2**20:.0f} MB (limit 250 MB)")
    k = total / 1000
    print(f"CPU seconds per 1,000 entries: API {cpu[0] / k:.3f}, worker {cpu[1] / k:.3f}, "
          f"PostgreSQL (this database's sessions, approx.) {cpu[2] / k:.3f}")


if __name__ == "__main__":
    main()
