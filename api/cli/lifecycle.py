"""``ledger status`` and ``ledger down``: the `ledger up` of any folder, from any folder,
found through its runtime record (`api.cli.runtime`)."""
from __future__ import annotations

import os
import signal
import time
from typing import Any, Optional

import typer

from api.cli import runtime
from api.cli.common import (EXIT_REFUSED, EXIT_TRANSIENT, EXIT_USAGE, DataDir, JsonOut,
                            emit_json, err, fail, out, run, service)
from api.cli.up import redacted
from ledger.settings import Settings

app = typer.Typer()


def _api_health(url: str) -> str:
    import httpx

    try:
        r = httpx.get(f"{url}/healthz", timeout=3)
    except httpx.HTTPError as exc:
        return f"unreachable at {url}/healthz ({type(exc).__name__})"
    return "healthy" if r.status_code == 200 else f"unhealthy (HTTP {r.status_code} from {url}/healthz)"


def _process(pid: Optional[int]) -> str:
    import psutil

    if not pid:
        return "not running"
    try:
        if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            return f"running (pid {pid})"
    except psutil.Error:
        pass
    return f"gone (was pid {pid})"


def _database(url: str, partitions: int) -> dict[str, Any]:
    """The server's version and the queue's backlog, or why they could not be read."""
    import sqlalchemy.exc

    from ledger.db import Database

    db = Database(url, pool_size=1, max_overflow=0)
    found: dict[str, Any] = {}
    try:
        with db.engine.connect() as conn:
            found["version"] = f"PostgreSQL {conn.exec_driver_sql('SHOW server_version').scalar()}"
        return dict(found, queue=service.queue_snapshot(db, partitions, with_failed=True).to_dict())
    except sqlalchemy.exc.ProgrammingError:
        return dict(found, error="the tables are missing: run `ledger migrate`")
    except sqlalchemy.exc.SQLAlchemyError as exc:
        return {"error": f"cannot reach the database at {redacted(url)}: "
                         f"{getattr(exc, 'orig', exc)}".strip()}
    finally:
        db.dispose()


def _redis_version(url: Optional[str]) -> str:
    if not url:
        return "-"
    import redis

    try:
        info = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).info("server")
    except (redis.RedisError, OSError) as exc:
        return f"unreachable at {redacted(url)} ({exc})"
    return f"Redis {info.get('redis_version', '?')}"


def _status(record: runtime.Record | None, database_url: str,
            partitions: int) -> dict[str, Any]:
    value: dict[str, Any] = {"version": runtime.version()}
    if record is not None:
        v = record.values
        pids = v.get("pids", {})
        value.update({
            "running": True, "pid": record.pid, "started": v.get("started"),
            "data_dir": v["data_dir"], "logs": v.get("logs"), "api_url": v.get("api_url"),
            "api": _api_health(v["api_url"]) if v.get("api_url") else "-",
            "processes": {name: _process(pid) for name, pid in pids.items()},
            "redis_url": redacted(v.get("redis_url")),
            "redis": _redis_version(v.get("redis_url")),
            "embedded": v.get("embedded", {}), "recorded_version": v.get("version")})
    else:
        value["running"] = False
    value["database_url"] = redacted(database_url)
    # The running `ledger up`'s partition count, since jobs are spread by it.
    if record is not None:
        partitions = int(record.values.get("partitions") or partitions)
    value["database"] = _database(database_url, partitions)
    return value


def _print_status(value: dict[str, Any]) -> None:
    def line(label: str, text: Any) -> None:
        out.print(f"  {label:<10} {text}", highlight=False, markup=False)

    if value["running"]:
        out.print(f"ledger up (pid {value['pid']}, since {value['started']}), version "
                  f"{value['recorded_version']}", highlight=False, markup=False)
        line("data", value["data_dir"])
        line("API", f"{value['api_url']}  {value['api']}")
        line("processes", ", ".join(f"{name} {state}"
                                    for name, state in value["processes"].items()))
    else:
        out.print(f"no `ledger up` recorded; the database of DATABASE_URL (version "
                  f"{value['version']} here):", highlight=False, markup=False)
    embedded = value.get("embedded", {})
    database = value["database"]
    line("database", f"{value['database_url']}  {database.get('version', '')}"
                     f"{' (embedded)' if embedded.get('postgres') else ''}")
    if value["running"]:
        line("broker", f"{value['redis_url']}  {value['redis']}"
                       f"{' (embedded)' if embedded.get('redis') else ''}")
        line("logs", value["logs"])
    if "error" in database:
        line("queue", database["error"])
        return
    queue = database["queue"]
    line("queue", f"{queue['pending']} jobs pending, lag {queue['lag_seconds']:.1f}s; "
                  f"{queue['failed_last_hour']} failed in the last hour; "
                  f"{queue['unfolded_deltas']} balance deltas waiting for the rollup")
    for p in queue["partitions"]:
        line("", f"partition {p['partition']}: {p['pending']} pending, "
                 f"oldest {p['oldest_seconds']:.1f}s")


@app.command("status")
def status(ctx: typer.Context, data_dir: DataDir = None, as_json: JsonOut = False):
    """What runs and where: the `ledger up` of this folder, of --data-dir, or the only one
    running; its processes, URLs, versions, and the posting queue (pending jobs per
    partition and how old the oldest is). Exits 1 when nothing runs."""

    def body():
        settings: Settings = ctx.obj
        try:
            record = runtime.find_running(settings, data_dir)
        except runtime.NotFound as exc:
            if not settings.database_url:
                fail(str(exc), EXIT_REFUSED)
            record = None
        value = _status(record, record.database_url if record else settings.database_url,
                        settings.partitions)
        if as_json:
            emit_json(value)
        else:
            _print_status(value)
        if "error" in value["database"] or (record is None):
            raise typer.Exit(EXIT_TRANSIENT if "error" in value["database"] else EXIT_REFUSED)

    run(body)


@app.command("down")
def down(ctx: typer.Context, data_dir: DataDir = None):
    """Stop a `ledger up` started in any folder (of --data-dir, of ./.ledger, or the only
    one running), as Ctrl-C in its terminal would, and wait until it has stopped."""

    def body():
        try:
            record = runtime.find_running(ctx.obj, data_dir)
        except runtime.NotFound as exc:
            err.print(f"{exc}: nothing to stop.", highlight=False, markup=False)
            return
        t0 = time.monotonic()
        try:
            os.kill(record.pid, signal.SIGTERM)
        except PermissionError:
            fail(f"not allowed to stop pid {record.pid} (started by another user)", EXIT_USAGE)
        except ProcessLookupError:
            return
        # Its own deadline for its processes (a record written before there was one: the
        # default), then time for the embedded servers to stop.
        allowed = float(record.values.get("stop_timeout_seconds",
                                          Settings.stop_timeout_seconds)) + 15
        deadline = t0 + allowed
        while record.alive():
            if time.monotonic() > deadline:
                fail(f"`ledger up` (pid {record.pid}) did not stop within "
                     f"{allowed:g}s; see its logs in {record.data_dir / 'logs'}",
                     EXIT_TRANSIENT)
            time.sleep(0.1)
        out.print(f"Stopped `ledger up` on {record.data_dir} in {time.monotonic() - t0:.1f}s.",
                  highlight=False, markup=False)

    run(body)
