"""Where a `ledger up` runs, so that commands started in any folder find it.

`ledger up` writes a runtime record (data folder, URLs, port, pids) to ``runtime.json`` in
its data folder and to one file per data folder under the state folder
(``LEDGER_STATE_DIR``, else ``$XDG_STATE_HOME/ledger``, else ``~/.local/state/ledger``), and
removes both when it stops. A record whose process is gone (a `ledger up` that was
SIGKILLed) is ignored and cleaned up by whoever reads it.

Admin commands find their database here (`locate`): ``DATABASE_URL``; else the data folder
``--data-dir`` / ``LEDGER_DATA_DIR`` names, running or not; else ``./.ledger`` if it holds a
database; else the one running `ledger up` recorded. They never create a database.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ledger.settings import Settings

RECORD_NAME = "runtime.json"
# The API client `ledger up` creates on its first start, kept (0600) beside the database it
# belongs to, so the API commands of this machine's user work without `ledger login`.
CLIENT_NAME = "api-client.json"
DEFAULT_DATA_DIR = Path(".ledger")


def state_dir(settings: Settings) -> Path:
    return settings.state_dir or Path.home() / ".local" / "state" / "ledger"


def _state_record_path(settings: Settings, data_dir: Path) -> Path:
    # One file per data folder: two `ledger up` on two folders are both found.
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return state_dir(settings) / "up" / f"{digest}.json"


def _write_private(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The database URL may carry a password: readable by this user only, from the first byte.
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(value, fh, indent=2)
    os.replace(tmp, path)


def save_first_client(data_dir: Path, client_id: str, client_secret: str) -> Path:
    path = data_dir / CLIENT_NAME
    _write_private(path, {"client_id": client_id, "client_secret": client_secret})
    return path


def first_client(data_dir: Path) -> dict | None:
    """The credentials `save_first_client` kept in ``data_dir``, if it holds them."""
    try:
        values = json.loads((data_dir / CLIENT_NAME).read_text())
        return {"client_id": str(values["client_id"]),
                "client_secret": str(values["client_secret"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _process_started(pid: int) -> float | None:
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.Error:
        return None


@dataclass(frozen=True)
class Record:
    """What one `ledger up` recorded about itself."""

    values: dict
    path: Path

    @property
    def data_dir(self) -> Path:
        return Path(self.values["data_dir"])

    @property
    def pid(self) -> int:
        return int(self.values["pid"])

    @property
    def database_url(self) -> str:
        return self.values["database_url"]

    def alive(self) -> bool:
        """Its `ledger up` still runs (the same process, not a new one with a reused pid)."""
        started = _process_started(self.pid)
        return started is not None and abs(started - self.values.get("pid_started", 0)) < 1


def write_record(settings: Settings, values: dict) -> list[Path]:
    data_dir = Path(values["data_dir"])
    values = dict(values, pid=os.getpid(), pid_started=_process_started(os.getpid()),
                  started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    paths = [data_dir / RECORD_NAME, _state_record_path(settings, data_dir)]
    for path in paths:
        _write_private(path, values)
    return paths


def remove_record(settings: Settings, data_dir: Path) -> None:
    for path in (data_dir / RECORD_NAME, _state_record_path(settings, data_dir)):
        path.unlink(missing_ok=True)


def _read(path: Path) -> Record | None:
    try:
        values = json.loads(path.read_text())
        # A record without these is no record (a half-written or foreign file).
        int(values["pid"]), str(values["data_dir"]), str(values["database_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Record(values, path)


def running_in(data_dir: Path) -> Record | None:
    """The running `ledger up` of ``data_dir``, if any."""
    record = _read(data_dir / RECORD_NAME)
    return record if record is not None and record.alive() else None


def running_records(settings: Settings) -> list[Record]:
    """Every running `ledger up` recorded in the state folder; stale records are removed."""
    found = []
    folder = state_dir(settings) / "up"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = _read(path)
        if record is not None and record.alive():
            found.append(record)
        else:
            path.unlink(missing_ok=True)
    return found


def holds_database(data_dir: Path) -> bool:
    from ledger.embedded import PG_DIRNAME

    return (data_dir / PG_DIRNAME / "PG_VERSION").is_file()


class NotFound(Exception):
    """No database to work on; the message says where it looked."""


class NoneRunning(NotFound):
    """No `ledger up` runs (as opposed to several, where the caller must choose)."""


@dataclass(frozen=True)
class Located:
    """The database of an admin command: a URL to use as it is, or an embedded one under
    ``data_dir`` that no `ledger up` runs (the command starts it, and stops it after)."""

    data_dir: Path
    database_url: str | None
    record: Record | None = None


def locate(settings: Settings, data_dir: Path | None) -> Located:
    """``data_dir``: the folder ``--data-dir`` / ``LEDGER_DATA_DIR`` gave, None if neither."""
    if settings.database_url:
        return Located((data_dir or settings.data_dir).resolve(), settings.database_url)
    if data_dir is not None:
        folder = data_dir.expanduser().resolve()
        if (record := running_in(folder)) is not None:
            return Located(folder, record.database_url, record)
        if holds_database(folder):
            return Located(folder, None)
        raise NotFound(
            f"no database: DATABASE_URL is not set, and {folder} (--data-dir / LEDGER_DATA_DIR) "
            "holds none: no `ledger up` runs there and it has no embedded PostgreSQL. Start "
            f"`ledger up --data-dir {folder}` first, or set DATABASE_URL.")
    local = DEFAULT_DATA_DIR.resolve()
    if running_in(local) is None and holds_database(local):
        return Located(local, None)
    try:
        record = find_running(settings, None)
    except NoneRunning:
        raise NotFound(f"no database: DATABASE_URL is not set, {local} holds none, and no "
                       f"running `ledger up` is recorded in {state_dir(settings) / 'up'}. "
                       "Start `ledger up`, or point this command at the server with "
                       "DATABASE_URL or --data-dir.") from None
    return Located(record.data_dir, record.database_url, record)


def find_running(settings: Settings, data_dir: Path | None) -> Record:
    """The running `ledger up` that ``--data-dir`` names, else the one of ``./.ledger``,
    else the only one recorded; `NotFound` says where it looked."""
    if data_dir is not None:
        folder = data_dir.expanduser().resolve()
        if (record := running_in(folder)) is None:
            raise NoneRunning(f"no `ledger up` is running on {folder}")
        return record
    if (record := running_in(DEFAULT_DATA_DIR.resolve())) is not None:
        return record
    running = running_records(settings)
    if len(running) == 1:
        return running[0]
    if running:
        listed = ", ".join(str(r.data_dir) for r in running)
        raise NotFound(f"several `ledger up` are running ({listed}): choose one with "
                       "--data-dir or LEDGER_DATA_DIR")
    raise NoneRunning(f"no `ledger up` is running: none on {DEFAULT_DATA_DIR.resolve()}, and "
                   f"none recorded in {state_dir(settings) / 'up'}")


def version() -> str:
    """The installed version of this service (the distribution's metadata)."""
    from importlib import metadata

    try:
        return metadata.version("moneyledger")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"
