"""Synchronous posting through the running API, over HTTP from a separate process, beside
pgbench's TPC-B on the same PostgreSQL (issue 11).

    python bench/api.py [--seconds 6] [--clients 1,8,32,128] [--processes N]
                        [--workloads deposit,hot,rest,balance] [--url URL --client-id ID
                        --client-secret SECRET]

Without --url it starts the API itself (`uvicorn --factory --workers N`, N = --processes,
default LEDGER_API_PROCESSES or the core count) and one Celery worker (for `Prefer: wait`) on
DATABASE_URL / REDIS_URL or else embedded servers, in a scratch database dropped at the end.
With --url it benches that API with the client it is given (the REST cell then needs that
deployment's workers).

For each workload and each number of concurrent clients (one connection each) it prints
entries/s, latency p50/p95/p99, and the CPU milliseconds per request the API processes (when
it started them) and a local PostgreSQL spent, which vary far less from run to run than the
rates on a shared machine:
- deposit: GraphQL `addLedgerEntry`, deposits spread over 1,000 users;
- hot: GraphQL transfers from one hot sender under a `gte 0` postcondition; afterwards the
  sender's balance is read and must equal what it was funded minus what was posted, never
  below zero;
- rest: `POST /v1/ledgers/{ik}/entries`, one entry, `Prefer: wait=10`;
- balance: an authenticated GraphQL read of one account's balance;
- typename (not run by default): an authenticated `{ __typename }`, the request path alone.

The load comes from `wrk` (a Lua script per cell) when installed, which costs the machine
little CPU; else from asyncio + httpx in this process. pgbench TPC-B (2 clients) runs half
before the cells and half after; every figure is also printed as a ratio to it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench.pgbench import drop_database, scratch_database, tpcb  # noqa: E402
from bench.pipeline import free_port, log, start, stop, wait_healthy  # noqa: E402
from bench.post import SCHEMA as WALLET  # noqa: E402
from ledger.settings import Settings  # noqa: E402

LEDGER = "bench-api"
USERS = 1000
HOT_FUNDS = 10**12
# The wallet of bench/post.py under its own key.
SCHEMA = {**WALLET, "key": "bench-api"}
ADD = ("mutation($ik: SafeString!, $e: LedgerEntryInput!) { addLedgerEntry(ik: $ik, entry: $e)"
       " { __typename ... on Error { code } } }")
BALANCE = ("query($a: LedgerAccountMatchInput!) { ledgerAccount(ledgerAccount: $a) "
           "{ ownBalance } }")
STORE = ("mutation($s: SchemaInput!) { storeSchema(schema: $s) { __typename "
         "... on Error { code message } } }")
CREATE = ("mutation($ik: SafeString!, $l: CreateLedgerInput!, $s: SchemaMatchInput) { "
          "createLedger(ik: $ik, ledger: $l, schema: $s) { __typename "
          "... on Error { code message } } }")


@dataclass
class Cell:
    workload: str
    clients: int
    ok: int = 0
    bad: int = 0
    seconds: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    # CPU seconds the API processes and PostgreSQL's spent during the cell (None: unknown).
    api_cpu: float | None = None
    pg_cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


# ------------------------------------------------------------------ what each request sends

def _gql(query: str, variables: dict) -> str:
    return json.dumps({"query": query, "variables": variables})


def request_template(workload: str, run: str) -> tuple[str, str, dict, str, str]:
    """(method, path, headers, body with %s for a unique ik and %d for a user, the text a
    success answer contains). The body is a printf template so wrk's Lua and the Python
    clients send the same bytes."""
    gql = {"Content-Type": "application/json"}
    if workload == "deposit":
        body = _gql(ADD, {"ik": "@IK@", "e": {"ledger": {"ik": LEDGER}, "type": "deposit",
                                              "parameters": {"user": "u@USER@", "amount": "100"}}})
        return "POST", "/graphql", gql, body, "AddLedgerEntryResult"
    if workload == "hot":
        body = _gql(ADD, {"ik": "@IK@", "e": {"ledger": {"ik": LEDGER}, "type": "transfer",
                                              "parameters": {"from": f"hot-{run}",
                                                             "to": "u@USER@", "amount": "1"}}})
        return "POST", "/graphql", gql, body, "AddLedgerEntryResult"
    if workload == "rest":
        body = json.dumps({"ik": "@IK@", "type": "deposit",
                           "parameters": {"user": "u@USER@", "amount": "100"}})
        return ("POST", f"/v1/ledgers/{LEDGER}/entries", {**gql, "Prefer": "wait=10"}, body,
                '"status":"posted"')
    if workload == "typename":
        return "POST", "/graphql", gql, _gql("{ __typename }", {}), "Query"
    if workload == "balance":
        body = _gql(BALANCE, {"a": {"path": "liabilities/users:u7/available",
                                    "ledger": {"ik": LEDGER}}})
        return "POST", "/graphql", gql, body, "ownBalance"
    raise SystemExit(f"unknown workload {workload!r}")


def _fill(body: str, ik: str, user: int) -> str:
    return body.replace("@IK@", ik).replace("@USER@", str(user))


# ------------------------------------------------------------------ load generators

WRK_SCRIPT = r"""
local threads = {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  ok, bad, n = 0, 0, 0
  wrk.method = "%(method)s"
  wrk.headers["Authorization"] = "Bearer %(token)s"
%(headers)s
end
function request()
  n = n + 1
  local body = string.gsub(string.gsub(%(body)s, "@IK@", "%(run)s-" .. id .. "-" .. n),
                           "@USER@", tostring(n %% %(users)d))
  return wrk.format(nil, nil, nil, body)
end
function response(status, headers, body)
  if status < 300 and string.find(body, %(marker)s, 1, true) then ok = ok + 1
  else bad = bad + 1 end
end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\n", summary.duration, o, b,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def run_wrk(base: str, token: str, cell: Cell, run: str, seconds: float, tmp: Path) -> None:
    method, path, headers, body, marker = request_template(cell.workload, run)
    script = tmp / f"{run}.lua"
    script.write_text(WRK_SCRIPT % {
        "method": method, "token": token, "run": run, "users": USERS,
        "headers": "\n".join(f'  wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
        "body": _lua_string(body), "marker": _lua_string(marker)})
    threads = min(cell.clients, 2)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(cell.clients), "-d",
                          f"{seconds:g}s", "--timeout", "30s", "-s", str(script),
                          base + path], capture_output=True, text=True, check=True).stdout
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk said:\n{out}")
    duration, ok, bad, p50, p95, p99 = (int(v) for v in line.split()[1:])
    cell.seconds, cell.ok, cell.bad = duration / 1e6, ok, bad
    cell.p50, cell.p95, cell.p99 = p50 / 1000, p95 / 1000, p99 / 1000


def run_httpx(base: str, token: str, cell: Cell, run: str, seconds: float) -> None:
    method, path, headers, body, marker = request_template(cell.workload, run)
    headers = {**headers, "Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    counts = {"ok": 0, "bad": 0}

    async def client(c: int, stop_at: float) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                     timeout=30) as http:
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                content = _fill(body, f"{run}-{c}-{n}", n % USERS)
                t0 = time.perf_counter()
                r = await http.request(method, path, content=content)
                latencies.append(time.perf_counter() - t0)
                counts["ok" if r.status_code < 300 and marker in r.text else "bad"] += 1

    async def main() -> float:
        t0 = time.monotonic()
        await asyncio.gather(*(client(c, t0 + seconds) for c in range(cell.clients)))
        return time.monotonic() - t0

    cell.seconds = asyncio.run(main())
    cell.ok, cell.bad = counts["ok"], counts["bad"]
    latencies.sort()
    if latencies:
        pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
        cell.p50, cell.p95, cell.p99 = pick(0.50), pick(0.95), pick(0.99)


# ------------------------------------------------------------------ setup over HTTP

def graphql(base: str, token: str, query: str, variables: dict) -> dict:
    r = httpx.post(f"{base}/graphql", headers={"Authorization": f"Bearer {token}"},
                   json={"query": query, "variables": variables}, timeout=60)
    if r.status_code != 200 or r.json().get("errors"):
        raise SystemExit(f"{query[:40]}...: {r.status_code} {r.text[:300]}")
    return r.json()["data"]


def get_token(base: str, client_id: str, secret: str) -> str:
    r = httpx.post(f"{base}/oauth2/token", data={"grant_type": "client_credentials"},
                   auth=(client_id, secret), timeout=30)
    if r.status_code != 200:
        raise SystemExit(f"no token: {r.status_code} {r.text[:200]}")
    return r.json()["access_token"]


def prepare_ledger(base: str, token: str, run: str) -> None:
    schema = dict(SCHEMA, key=f"{SCHEMA['key']}-{run}")
    graphql(base, token, STORE, {"s": schema})
    answer = graphql(base, token, CREATE, {"ik": LEDGER, "l": {"name": "Bench API"},
                                           "s": {"key": schema["key"]}})["createLedger"]
    # A second run against the same --url finds the ledger made by the first (under that
    # run's schema key, with the same accounts and entry types): bench it again.
    if answer["__typename"] != "CreateLedgerResult" and answer.get("code") != "ik_conflict":
        raise SystemExit(f"createLedger: {answer}")


def fund_hot_sender(base: str, token: str, sender: str) -> None:
    entry = {"ledger": {"ik": LEDGER}, "type": "deposit",
             "parameters": {"user": sender, "amount": str(HOT_FUNDS)}}
    answer = graphql(base, token, ADD, {"ik": f"fund-{sender}", "e": entry})["addLedgerEntry"]
    if answer["__typename"] != "AddLedgerEntryResult":
        raise SystemExit(f"funding {sender}: {answer}")


def balance(base: str, token: str, user: str) -> int:
    data = graphql(base, token, BALANCE, {"a": {"path": f"liabilities/users:{user}/available",
                                                "ledger": {"ik": LEDGER}}})
    return int(data["ledgerAccount"]["ownBalance"])


def check_hot_sender(base: str, token: str, sender: str, cell: Cell) -> str:
    """The sender's balance must be what it was funded minus one per transfer posted, and
    never below zero: no `gte 0` condition crossed."""
    left = balance(base, token, sender)
    if left < 0:
        raise SystemExit(f"CONDITION CROSSED: {sender} holds {left}")
    # Answers counted as failures may still have posted (a timeout), and so may the one
    # request per client still in flight when the cell's time ran out.
    posted = HOT_FUNDS - left
    if not cell.ok <= posted <= cell.ok + cell.bad + cell.clients:
        raise SystemExit(f"{sender}: {posted} transfers posted, {cell.ok} answered posted")
    return f"balance {left} >= 0, {posted} posted"


# ------------------------------------------------------------------ the run

def cpu_by_process(processes: list[psutil.Process]) -> dict[int, float]:
    """CPU seconds each process has used so far, by pid."""
    used = {}
    for proc in processes:
        try:
            times = proc.cpu_times()
        except psutil.Error:  # exited meanwhile
            continue
        used[proc.pid] = times.user + times.system
    return used


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """What the processes spent between two readings: a process started meanwhile counts
    whole; one that exited meanwhile (a database backend closed) is lost, as to `ps`."""
    return sum(used - before.get(pid, 0.0) for pid, used in after.items())


def api_processes(api: subprocess.Popen | None) -> list[psutil.Process]:
    """The API's uvicorn processes (the supervisor and its workers)."""
    if api is None:
        return []
    root = psutil.Process(api.pid)
    return [root, *root.children(recursive=True)]


def postgres_processes() -> list[psutil.Process]:
    """PostgreSQL's processes on this machine (none when the server is elsewhere)."""
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] in ("postgres", "postmaster")]


def run_cells(base: str, token: str, args, tmp: Path,
              api: subprocess.Popen | None = None) -> list[Cell]:
    use_wrk = shutil.which("wrk") is not None and not args.httpx
    log(f"load from {'wrk' if use_wrk else 'asyncio + httpx in this process'}")
    cells = []
    for workload in args.workloads:
        for clients in args.clients:
            cell = Cell(workload, clients)
            run = f"{workload}{clients}-{secrets.token_hex(3)}"
            if workload == "hot":
                fund_hot_sender(base, token, f"hot-{run}")
            api_before = cpu_by_process(api_processes(api))
            pg_before = cpu_by_process(postgres_processes())
            if use_wrk:
                run_wrk(base, token, cell, run, args.seconds, tmp)
            else:
                run_httpx(base, token, cell, run, args.seconds)
            if api is not None:
                cell.api_cpu = cpu_spent(api_before, cpu_by_process(api_processes(api)))
            if pg_before:
                cell.pg_cpu = cpu_spent(pg_before, cpu_by_process(postgres_processes()))
            note = check_hot_sender(base, token, f"hot-{run}", cell) if workload == "hot" else ""
            log(f"  {workload:8} {clients:4} clients: {cell.rate:8.0f}/s  p50 {cell.p50:7.1f} ms"
                f"  p95 {cell.p95:7.1f}  p99 {cell.p99:7.1f}  failed {cell.bad}  {note}")
            cells.append(cell)
    return cells


def start_api(settings: Settings, url: str, redis_url: str, tmp: Path, args):
    """API processes and one worker on the scratch database. Returns (processes, base,
    client id, secret)."""
    from ledger import service
    from ledger.db import Database
    from ledger.migrate import upgrade

    upgrade(url)
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        created = service.create_client(db, "bench api", "write")
    finally:
        db.dispose()
    prefix = f"bench-api-{secrets.token_hex(3)}"
    env = settings.child_environ(DATABASE_URL=url, REDIS_URL=redis_url, PYTHONPATH=str(ROOT),
                                 LEDGER_QUEUE_PREFIX=prefix,
                                 LEDGER_API_PROCESSES=str(args.processes),
                                 LEDGER_SECRET_KEY=(settings.secret_key.reveal()
                                                    if settings.secret_key
                                                    else service.generate_key()))
    port, py = free_port(), sys.executable
    api = start([py, "-m", "uvicorn", "api.app:app_from_env", "--factory", "--port", str(port),
                 "--workers", str(args.processes), "--log-level", "warning",
                 "--no-access-log"], env, tmp / "api.log")
    worker = start([py, "-m", "celery", "-A", "workers.app", "worker", "--loglevel", "WARNING",
                    "--concurrency", "1", "--without-gossip", "--without-mingle",
                    "--without-heartbeat", "-Q",
                    ",".join([f"{prefix}.{p}" for p in range(settings.partitions)]
                             + [f"{prefix}.maintenance", f"{prefix}.webhooks"])],
                   env, tmp / "worker.log")
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, api, tmp / "api.log")
    return [api, worker], base, created.client_id, created.client_secret


def report(cells: list[Cell], pg: tuple[float, float], args) -> None:
    tps = sum(pg) / 2
    print(f"pgbench TPC-B, 2 clients, same PostgreSQL: {tps:.0f} tps (before {pg[0]:.0f}, "
          f"after {pg[1]:.0f})")
    print(f"API processes: {args.processes}; {args.seconds:g}s per cell; ratio = entries "
          "(or reads) per second / pgbench tps")
    print(f"{'workload':10} {'clients':>7} {'per s':>9} {'ratio':>7} {'p50 ms':>8} "
          f"{'p95 ms':>8} {'p99 ms':>8} {'failed':>7} {'API cpu':>8} {'PG cpu':>7}")
    for c in cells:
        print(f"{c.workload:10} {c.clients:7} {c.rate:9.0f} {c.rate / tps:6.2f}x {c.p50:8.1f} "
              f"{c.p95:8.1f} {c.p99:8.1f} {c.bad:7} {_per_request(c.api_cpu, c):>8} "
              f"{_per_request(c.pg_cpu, c):>7}")
    print("API cpu / PG cpu: CPU milliseconds per answered request that the API processes / "
          "PostgreSQL spent during the cell")


def _per_request(seconds: float | None, cell: Cell) -> str:
    return "-" if seconds is None or not cell.ok else f"{seconds * 1000 / cell.ok:.2f}"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=6, help="per cell")
    ap.add_argument("--clients", default="1,8,32,128", help="concurrent clients, comma-separated")
    ap.add_argument("--workloads", default="deposit,hot,rest,balance")
    ap.add_argument("--processes", type=int, default=None,
                    help="API processes (default LEDGER_API_PROCESSES, else the core count)")
    ap.add_argument("--pgbench-seconds", type=int, default=10,
                    help="pgbench's time in all, half before the cells, half after")
    ap.add_argument("--httpx", action="store_true", help="asyncio + httpx even if wrk is here")
    ap.add_argument("--url", help="bench this running API instead of starting one")
    ap.add_argument("--client-id")
    ap.add_argument("--client-secret")
    args = ap.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    args.workloads = args.workloads.split(",")
    return args


def main() -> None:
    args = parse_args()
    settings = Settings.from_env()
    args.processes = args.processes or settings.api_processes
    tmp = Path(tempfile.mkdtemp(prefix="ledger-bench-api-"))
    server, redis_url, embedded_redis = settings.database_url, settings.redis_url, None
    if not server:
        from ledger.embedded import embedded_postgres
        log("starting an embedded PostgreSQL (set DATABASE_URL to bench a server)...")
        server = embedded_postgres(tmp)
    if not args.url and not redis_url:
        from ledger.embedded import embedded_redis as start_redis
        embedded_redis = start_redis(tmp)
        redis_url = embedded_redis.redis_url
    half = max(1, args.pgbench_seconds // 2)
    log(f"[1/3] pgbench TPC-B, 2 clients, {half}s ...")
    pg_before = tpcb(server, half, 2)
    procs, url = [], None
    try:
        if args.url:
            base, client_id, secret = args.url.rstrip("/"), args.client_id, args.client_secret
        else:
            url = scratch_database(server, "ledger_api_bench")
            log(f"starting {args.processes} API process(es) and a worker ...")
            procs, base, client_id, secret = start_api(settings, url, redis_url, tmp, args)
        token = get_token(base, client_id, secret)
        prepare_ledger(base, token, secrets.token_hex(3))
        log(f"[2/3] {len(args.workloads)} workloads x {len(args.clients)} client counts, "
            f"{args.seconds:g}s each ...")
        cells = run_cells(base, token, args, tmp, procs[0] if procs else None)
    finally:
        for p in procs:
            stop(p)
        if url:
            drop_database(url)
    log(f"[3/3] pgbench TPC-B, 2 clients, {half}s ...")
    pg_after = tpcb(server, half, 2)
    if embedded_redis is not None:
        embedded_redis.stop(save=False)
    if not settings.database_url:
        from ledger.embedded import stop_embedded_postgres
        stop_embedded_postgres(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    report(cells, (pg_before, pg_after), args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
