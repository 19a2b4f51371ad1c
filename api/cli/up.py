"""`ledger up`: the whole ledger on one machine.

Resolves the database and the broker (``DATABASE_URL`` / ``REDIS_URL``, else an embedded
PostgreSQL and Redis under the data folder, which survive restarts), runs the migrations,
creates an API client on the very first start (and, when LEDGER_SECRET_KEY is unset, the key
that encrypts stored secrets, in ``<data folder>/secret.key``), then runs three child processes: the API
(uvicorn, one process per core: LEDGER_API_PROCESSES), one Celery worker consuming every partition queue, and the single beat. It
watches them; Ctrl-C or SIGTERM stops all of them, and the embedded servers it started.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from ledger import service
from ledger.embedded import resolve_servers
from ledger.settings import Secret, Settings

REPO = Path(__file__).resolve().parents[2]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# A worker finishing its batch and the API draining requests take seconds; anything still
# running after this is killed so that `ledger up` always ends.
STOP_TIMEOUT_SECONDS = 30


def _say(message: str = "") -> None:
    print(message, flush=True)


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


def _redacted(url: str) -> str:
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


def _print_client(created, api: str) -> None:
    _say()
    _say("An API client was created (this is the only time its secret is shown):")
    _say(f"  client id:     {created.client_id}")
    _say(f"  client secret: {created.client_secret}")
    _say()
    _say("Use it from the CLI:")
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
    settings = _with_secret_key(settings, data_dir)
    stopping: list[int] = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    children: list[Child] = []
    keepalive = None
    code = 0
    try:
        resolved, keepalive = resolve_servers(replace(settings, data_dir=data_dir))
        code = _serve(resolved, host, port, children, stopping)
    except EmbeddedServerError as exc:
        _say(f"ledger: {exc}")
        code = 1
    finally:
        # From here on a second Ctrl-C must not leave things half-stopped.
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        if children:
            _say("ledger: stopping...")
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        # The API first, so nothing new is accepted while the worker finishes its batch.
        for group in (children[:1], children[1:]):
            for child in group:
                child.terminate()
            for child in group:
                child.wait_or_kill(deadline)
        if keepalive is not None:
            keepalive.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        _say("ledger: stopped.")
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


def _serve(settings: Settings, host: str, port: int, children: list[Child],
           stopping: list[int]) -> int:
    """Migrate, start the children (appending them to ``children`` as they start), and
    watch them until a stop signal (0) or until one of them dies (1)."""
    from ledger.migrate import upgrade

    data_dir, database_url = settings.data_dir, settings.database_url
    logs = data_dir / "logs"
    _say("ledger: running the migrations...")
    upgrade(database_url)
    api_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    created = _first_client(database_url)

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

    if not _wait_healthy(api_url, children[0], stopping):
        if stopping:
            return 0
        _say(f"ledger: the API did not come up; {children[0].log_path} ends with:\n"
             f"{children[0].tail()}")
        return 1
    if created is not None:
        _print_client(created, api_url)
    _say()
    _say(f"ledger: up. API      {api_url}  (GraphQL {api_url}/graphql, REST {api_url}/v1; "
         f"{settings.api_processes} processes)")
    _say(f"ledger:     docs     {api_url}/openapi.json and {api_url}/schema.graphql "
         "(with a token), README.md")
    _say(f"ledger:     data     {data_dir}")
    _say(f"ledger:     database {_redacted(database_url)}")
    _say(f"ledger:     broker   {_redacted(settings.redis_url)}")
    _say(f"ledger:     logs     {logs}/{{api,worker,beat}}.log")
    _say("ledger: Ctrl-C stops everything.")

    while not stopping:
        dead = [c for c in children if not c.running()]
        if dead:
            for c in dead:
                _say(f"ledger: the {c.name} exited (code {c.proc.returncode}); "
                     f"{c.log_path} ends with:\n{c.tail()}")
            return 1
        time.sleep(0.2)
    return 0
