"""`ledger up`: the whole ledger on one machine.

Resolves the database and the broker (``DATABASE_URL`` / ``REDIS_URL``, else an embedded
PostgreSQL and Redis under the data folder, which survive restarts), runs the migrations,
creates an API client on the very first start (and, when LEDGER_SECRET_KEY is unset, the key
that encrypts stored secrets, in ``<data folder>/secret.key``), then runs four child processes: the API
(uvicorn, one process per core: LEDGER_API_PROCESSES), one Celery worker consuming every partition queue and the
maintenance queue, one for webhook deliveries, and the single beat. It
watches them; Ctrl-C, SIGTERM, SIGHUP (the terminal closed) or `ledger down` stop all of them,
and the embedded servers. A watchdog process stops the embedded servers if `ledger up` itself
is killed. While it runs, a runtime record (`api.cli.runtime`) tells `ledger status`,
`ledger down` and the admin commands where everything is.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import httpx

from api.cli import runtime
from api.cli.common import service
from ledger.embedded import WATCHDOG_DONE, Keepalive, postgres_pid, resolve_servers
from ledger.settings import Secret, Settings

REPO = Path(__file__).resolve().parents[2]
# SIGHUP: the terminal `ledger up` runs in was closed; that stops it like Ctrl-C.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _say(message: str = "") -> None:
    try:
        print(message, flush=True)
    except OSError:
        # The terminal is gone (SIGHUP): stopping must go on without anyone to tell.
        pass


def _die_with_parent() -> None:
    """In a child, before exec: get SIGTERM if `ledger up` dies without stopping us (say it
    is SIGKILLed), so no worker outlives it unseen. Linux only; elsewhere a no-op."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Child:
    name: str
    args: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None
    _log: object | None = field(default=None, repr=False)

    def start(self, env: dict) -> None:
        self._log = open(self.log_path, "ab")
        # Its own session: a Ctrl-C in the terminal reaches only us, and we stop the
        # children in order (API first, so nothing is accepted while the worker stops).
        self.proc = subprocess.Popen(self.args, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_parent)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        if self.running():
            self.proc.send_signal(signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> int | None:
        if self.proc is None:
            return None
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _say(f"ledger: {self.name} did not stop in time; killing it")
        # Pool children of a worker live in its session; leave nothing of it behind.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        code = self.proc.wait()
        if self._log is not None:
            self._log.close()
        return code

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])


def redacted(url: Optional[str]) -> Optional[str]:
    """A server URL fit to print: its password masked."""
    if not url:
        return url
    # Here, not at the top: SQLAlchemy takes a fifth of a second to import, and most
    # commands never need it.
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _first_client(database_url: str):
    """An API client, created only if the database has none at all (first start)."""
    from ledger.db import Database

    db = Database(database_url, pool_size=1, max_overflow=0)
    try:
        if service.list_clients(db, include_revoked=True):
            return None
        return service.create_client(db, "ledger up (first start)", "write")
    finally:
        db.dispose()


def _print_client(created, api: str, data_dir: Path) -> None:
    _say()
    _say("An API client was created:")
    _say(f"  client id:     {created.client_id}")
    _say(f"  client secret: {created.client_secret}")
    _say()
    _say(f"The `ledger` commands of this machine use it while `ledger up` runs (it is kept, "
         f"mode 0600, in {data_dir / runtime.CLIENT_NAME}). Elsewhere, log in with it:")
    _say(f"  ledger login --api-url {api} --client-id {created.client_id} "
         f"--client-secret {created.client_secret}")
    _say("or over HTTP:")
    _say(f"  TOKEN=$(curl -s -u {created.client_id}:{created.client_secret} "
         f"-d grant_type=client_credentials {api}/oauth2/token | "
         "python -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')")
    _say(f"  curl -H \"Authorization: Bearer $TOKEN\" {api}/graphql "
         "-H 'Content-Type: application/json' -d '{\"query\": \"{ __typename }\"}'")
    _say(f"  curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
         f"{api}/v1/ledgers/<ledger-ik>/entries "
         "-d '{\"ik\": \"e-1\", \"type\": \"deposit\", \"parameters\": {...}}'")
    _say("More clients: ledger api-client create --name NAME")


def _wait_healthy(url: str, api: Child, stopping: list, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not api.running() or stopping:
            return False
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _with_secret_key(settings: Settings, data_dir: Path) -> Settings:
    """LEDGER_SECRET_KEY, else the key kept in the data folder, made (mode 0600) on the
    first start: the key the stored secrets are encrypted with, handed to the children."""
    if settings.secret_key:
        return settings
    key = service.key_file_value(data_dir, create=True)
    _say(f"ledger: stored secrets are encrypted with the key in {data_dir / 'secret.key'} "
         "(keep it with the data: without it they cannot be read)")
    return replace(settings, secret_key=Secret(key))


def port_problem(host: str, port: int) -> str | None:
    """Why the API could not listen on ``host:port``, or None if it can. Checked before
    anything starts: a busy port found after the first client was printed would leave
    credentials for a server that never came up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As uvicorn binds: a port left in TIME_WAIT by a previous run is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"port {port} on {host} is already in use (another `ledger up` or "
                        "another server?); stop it, or choose another port with --port")
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


@dataclass
class Watchdog:
    """A process in its own session that stops the embedded servers `ledger up` runs if
    `ledger up` ends without stopping them (SIGKILL, a crash): it waits for the end of a
    pipe only we hold (`ledger.embedded.watchdog`)."""

    proc: subprocess.Popen | None = None
    servers: dict = field(default_factory=dict)

    def start(self, keepalive: Keepalive | None, log_path: Path) -> None:
        servers = self.servers = keepalive.servers() if keepalive is not None else {}
        if not servers:
            return
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ledger.embedded", json.dumps(servers)], cwd=REPO,
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def release(self) -> None:
        """We stopped the servers ourselves: the watchdog ends without touching them."""
        if self.proc is None:
            return
        try:
            self.proc.stdin.write(WATCHDOG_DONE)
            self.proc.stdin.close()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def main(settings: Settings, data_dir: Path = Path(".ledger"), host: str = "127.0.0.1",
         port: int = 8000) -> None:
    from ledger.embedded import EmbeddedServerError

    data_dir = Path(data_dir).expanduser().resolve()
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    # Held until we exit (the kernel drops it if we die): a second `ledger up` on the same
    # folder would start a second beat and a second worker on the same queues.
    lock = open(data_dir / "ledger-up.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        _say(f"ledger: another `ledger up` is already running on {data_dir}; stop it first, "
             "or give this one its own --data-dir")
        raise SystemExit(1) from None
    if problem := port_problem(host, port):
        _say(f"ledger: {problem}")
        raise SystemExit(1)
    settings = _with_secret_key(settings, data_dir)
    stopping: list[int] = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    children: list[Child] = []
    keepalive = None
    watchdog = Watchdog()
    code = 0
    try:
        # The lock says no other `ledger up` serves this folder: servers found running on it
        # were left by one that ended badly, and are ours to stop.
        resolved, keepalive = resolve_servers(replace(settings, data_dir=data_dir), adopt=True)
        watchdog.start(keepalive, data_dir / "logs" / "watchdog.log")
        code = _serve(resolved, host, port, children, stopping, watchdog)
    except EmbeddedServerError as exc:
        _say(f"ledger: {exc}")
        code = 1
    finally:
        _stop(settings, data_dir, children, keepalive, watchdog, stopping)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if code:
        raise SystemExit(code)


def _metrics_dir(settings: Settings) -> Path:
    """The folder the API's processes and the worker's pool children keep their metrics in
    (prometheus-client's multiprocess mode), so the API's /metrics counts them all. Ours
    under the data folder starts empty each run; one the environment names is left as is."""
    if settings.metrics_dir is not None:
        return settings.metrics_dir
    folder = settings.data_dir / "metrics"
    if folder.is_dir():
        for stale in folder.glob("*.db"):
            stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    return folder
def _stop(settings: Settings, data_dir: Path, children: list["Child"],
          keepalive: Keepalive | None, watchdog: Watchdog, stopping: list[int]) -> None:
    # From here on a second Ctrl-C must not leave things half-stopped.
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    runtime.remove_record(settings, data_dir)
    t0 = time.monotonic()
    if children:
        why = f" ({signal.Signals(stopping[0]).name})" if stopping else ""
        _say(f"ledger: stopping{why}...")
    deadline = time.monotonic() + settings.stop_timeout_seconds
    took = []
    # The API first, so nothing new is accepted while the worker finishes its batch.
    for group in (children[:1], children[1:]):
        t1 = time.monotonic()
        for child in group:
            child.terminate()
        for child in group:
            child.wait_or_kill(deadline)
        if group:
            took.append(f"{' and '.join(c.name for c in group)} {time.monotonic() - t1:.1f}s")
    t1 = time.monotonic()
    if keepalive is not None:
        keepalive.stop()
        took.append(f"embedded servers {time.monotonic() - t1:.1f}s")
    watchdog.release()
    detail = f" ({', '.join(took)})" if took else ""
    _say(f"ledger: stopped in {time.monotonic() - t0:.1f}s{detail}.")


def _write_record(settings: Settings, api_url: str, host: str, port: int,
                  children: list[Child], watchdog: Watchdog) -> None:
    """Where everything runs, for `ledger status`, `ledger down` and the admin commands."""
    data_dir = settings.data_dir
    pids = {c.name: c.proc.pid for c in children}
    pids["watchdog"] = watchdog.pid
    if watchdog.servers.get("postgres_data_dir"):
        pids["postgres"] = postgres_pid(data_dir)
    pids["redis"] = watchdog.servers.get("redis_pid")
    runtime.write_record(settings, {
        "data_dir": str(data_dir), "api_url": api_url, "host": host, "port": port,
        "database_url": settings.database_url, "redis_url": settings.redis_url,
        # What the environment did not name is embedded (the settings hold resolved URLs).
        "embedded": {"postgres": not settings.environ.get("DATABASE_URL"),
                     "redis": not settings.environ.get("REDIS_URL")},
        "pids": {name: pid for name, pid in pids.items() if pid},
        "logs": str(data_dir / "logs"), "version": runtime.version(),
        "partitions": settings.partitions, "queue_prefix": settings.queue_prefix,
        "stop_timeout_seconds": settings.stop_timeout_seconds})


def _serve(settings: Settings, host: str, port: int, children: list[Child],
           stopping: list[int], watchdog: Watchdog) -> int:
    """Migrate, start the children (appending them to ``children`` as they start), and
    watch them until a stop signal (0) or until one of them dies (1)."""
    from ledger.migrate import upgrade

    data_dir, database_url = settings.data_dir, settings.database_url
    logs = data_dir / "logs"
    _say("ledger: running the migrations...")
    upgrade(database_url)
    api_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    created = _first_client(database_url)
    if created is not None:
        runtime.save_first_client(data_dir, created.client_id, created.client_secret)

    env = settings.child_environ(PYTHONUNBUFFERED="1",
                                 LEDGER_SECRET_KEY=settings.secret_key.reveal())
    env["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir(settings))
    queues = settings.partition_queues() + [settings.maintenance_queue]
    py = sys.executable
    planned = [
        # One API process per core (LEDGER_API_PROCESSES); each sizes its own pool.
        Child("API", [py, "-m", "uvicorn", "api.app:app_from_env", "--factory", "--host", host,
                      "--port", str(port), "--workers", str(settings.api_processes)],
              logs / "api.log"),
        Child("worker", [py, "-m", "celery", "-A", "workers.app", "worker",
                         "--loglevel", "INFO", "--hostname", "ledger-up@%h",
                         "--concurrency", str(max(1, min(2, os.cpu_count() or 1))),
                         "--without-gossip", "--without-mingle", "-Q", ",".join(queues)],
              logs / "worker.log"),
        # Webhook deliveries in a worker of their own: a receiver that hangs holds one of
        # its processes for an attempt's timeout, never a process that posts or sweeps.
        Child("webhooks", [py, "-m", "celery", "-A", "workers.app", "worker",
                           "--loglevel", "INFO", "--hostname", "ledger-up-webhooks@%h",
                           "--concurrency", "2", "--without-gossip", "--without-mingle",
                           "-Q", settings.webhook_queue],
              logs / "webhooks.log"),
        Child("beat", [py, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", "INFO",
                       "--schedule", str(data_dir / "celerybeat-schedule"),
                       "--pidfile", str(data_dir / "celerybeat.pid")], logs / "beat.log"),
    ]
    # A pidfile left by a killed beat would stop the next beat from starting; only the beat
    # of `ledger up` on this folder writes this one, and none is running now.
    (data_dir / "celerybeat.pid").unlink(missing_ok=True)
    for child in planned:
        if stopping:
            return 0
        child.start(env)
        children.append(child)

    _write_record(settings, api_url, host, port, children, watchdog)
    if not _wait_healthy(api_url, children[0], stopping):
        if stopping:
            return 0
        _say(f"ledger: the API did not come up; {children[0].log_path} ends with:\n"
             f"{children[0].tail()}")
        return 1
    if created is not None:
        _print_client(created, api_url, data_dir)
    _say()
    _say(f"ledger: up. API      {api_url}  (GraphQL {api_url}/graphql, REST {api_url}/v1; "
         f"{settings.api_processes} processes)")
    _say(f"ledger:     docs     {api_url}/openapi.json and {api_url}/schema.graphql "
         "(with a token), README.md")
    _say(f"ledger:     dashboard {api_url}/ui (sign in with an API client's id and secret)")
    _say(f"ledger:     data     {data_dir}")
    _say(f"ledger:     database {redacted(database_url)}")
    _say(f"ledger:     broker   {redacted(settings.redis_url)}")
    _say(f"ledger:     logs     {logs}/{{api,worker,beat}}.log")
    _say("ledger: Ctrl-C (or `ledger down`) stops everything; `ledger status` shows it.")

    while not stopping:
        dead = [c for c in children if not c.running()]
        if dead:
            for c in dead:
                _say(f"ledger: the {c.name} exited (code {c.proc.returncode}); "
                     f"{c.log_path} ends with:\n{c.tail()}")
            return 1
        time.sleep(0.2)
    return 0
