"""The wheel is the product: the Docker image installs it and nothing else from the source
tree (Dockerfile), and Docker is not available where the tests run, so this test is what
proves the image's contents.

It builds the wheel from a copy of the project (offline: no build isolation, so setuptools
comes from the dev extra), installs it into a fresh virtualenv outside the checkout and,
from an empty folder, runs what the image runs: `ledger --help`, the Celery app's import,
then the commands of docker-compose.yml's services themselves (`migrate` on an empty
database; `api`, `worker` and `beat` until each one's compose health check passes).

The virtualenv sees the system site-packages for the project's dependencies (installing
them would need the network and minutes); the project itself is in both places when it is
installed editable, so the test first proves that every module it runs, and the
distribution's metadata, come from the virtualenv's copy.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import sqlalchemy as sa
import yaml
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ledger.db import normalize_url
from ledger.migrate import alembic_config
from tests.serving import free_port

REPO = Path(__file__).resolve().parents[2]
# The top-level packages the wheel ships (pyproject.toml, [tool.setuptools.packages.find]).
PACKAGES = ("api", "ledger", "ledger_sdk", "migrations", "workers")
COMPOSE = REPO / "docker-compose.yml"
# The image's working directory (Dockerfile), where beat keeps its schedule.
IMAGE_HOME = "/var/lib/ledger"
# What the Docker build context leaves out (.dockerignore), plus what a build leaves behind.
NOT_SOURCES = shutil.ignore_patterns(".git", ".ci", ".ledger", ".venv", "__pycache__", "*.pyc",
                                     "*.egg-info", "build", "dist", "tests", "bench",
                                     ".pytest_cache", ".hypothesis")

# Run by the virtualenv's interpreter: where each package and the distribution's metadata
# were found, and which of the distribution's requirements are not installed.
PROVENANCE = """
import importlib, importlib.metadata as md, json, sys
from packaging.requirements import Requirement
dist = md.distribution("moneyledger")
missing = []
for text in dist.requires or []:
    req = Requirement(text)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    try:
        version = md.version(req.name)
    except md.PackageNotFoundError:
        missing.append(text)
        continue
    if version not in req.specifier:
        missing.append(f"{text} (installed: {version})")
print(json.dumps({
    "modules": {name: importlib.import_module(name).__file__ for name in sys.argv[1:]},
    "metadata": str(dist.locate_file("")),
    "missing": missing,
}))
"""


def run(args: list, cwd: Path, env: dict, timeout: float = 60) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the project: building in the checkout would leave build/
    there, whose stale files a later build would ship."""
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCES)
    dist = tmp / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", dist, source], cwd=tmp, env=dict(os.environ))
    (wheel,) = dist.glob("moneyledger-*.whl")
    return wheel


def assert_ships_every_source_file(wheel: Path, source: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    top = {name.split("/", 1)[0] for name in shipped}
    assert {t for t in top if not t.endswith(".dist-info")} == set(PACKAGES)
    expected = {p.relative_to(source).as_posix()
                for package in PACKAGES for p in (source / package).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert expected - shipped == set(), "files of the packages the wheel leaves out " \
        "(add them to [tool.setuptools.package-data] in pyproject.toml)"


def make_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
        cwd=tmp, env=dict(os.environ))
    python = venv / "bin" / "python"
    # pip of the system site-packages, run by the virtualenv's interpreter, installs into
    # the virtualenv; --ignore-installed so that it never touches an editable install of
    # the project outside it.
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
         wheel], cwd=tmp, env=dict(os.environ))
    return venv


class Scratch:
    """An empty database on the test run's server, dropped afterwards."""

    def __init__(self, database_url: str):
        self.name = f"{make_url(database_url).database}_wheel_{secrets.token_hex(3)}"
        self.url = make_url(database_url).set(database=self.name) \
            .render_as_string(hide_password=False)
        self.admin = sa.create_engine(normalize_url(database_url),
                                      isolation_level="AUTOCOMMIT", poolclass=NullPool)

    def __enter__(self) -> "Scratch":
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *_exc) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.dispose()

    def query(self, sql: str) -> set:
        engine = sa.create_engine(normalize_url(self.url), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return set(conn.exec_driver_sql(sql).scalars())
        finally:
            engine.dispose()


def add_console_scripts(venv: Path, names: tuple[str, ...] = ("celery", "uvicorn")) -> None:
    """In the image, the console scripts of the dependencies the compose commands call run
    the interpreter the wheel is installed in; here they live outside the virtualenv, with
    the outside interpreter, so the virtualenv gets its own, from the same entry points."""
    scripts = {ep.name: ep for ep in importlib.metadata.entry_points(group="console_scripts")
               if ep.name in names}
    for name in names:
        path = venv / "bin" / name
        path.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\n"
                        f"from {scripts[name].module} import {scripts[name].attr}\n"
                        f"sys.exit({scripts[name].attr}())\n")
        path.chmod(0o755)


class Compose:
    """The services of docker-compose.yml, their commands and health checks made to run on
    this machine: the API and the worker's metrics on free ports of 127.0.0.1, the image's
    working directory a temporary one, compose's `$$` a shell's `$`."""

    def __init__(self, port: int, home: Path):
        self.services = yaml.safe_load(COMPOSE.read_text())["services"]
        self.port, self.home = port, home
        self.worker_metrics_port = free_port()

    def local(self, text: str) -> str:
        return (text.replace("$$", "$").replace("0.0.0.0", "127.0.0.1")
                .replace("8000", str(self.port)).replace("9100", str(self.worker_metrics_port))
                .replace(IMAGE_HOME, str(self.home)))

    def command(self, service: str) -> list[str]:
        return [self.local(arg) for arg in self.services[service]["command"]]

    def health_check(self, service: str) -> list[str]:
        kind, *args = self.services[service]["healthcheck"]["test"]
        assert kind in ("CMD", "CMD-SHELL"), kind
        return ["sh", "-c", self.local(args[0])] if kind == "CMD-SHELL" \
            else [self.local(arg) for arg in args]


@contextmanager
def started(commands: dict[str, list[str]], cwd: Path, env: dict,
            logs: Path) -> Iterator[dict[str, subprocess.Popen]]:
    """Each command in its own process group, stopped (SIGTERM, then SIGKILL) with all its
    children at the end."""
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, command in commands.items():
            with open(logs / f"{name}.log", "w") as out:
                procs[name] = subprocess.Popen(command, cwd=cwd, env=env, stdout=out,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True)
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def wait_until_healthy(name: str, proc: subprocess.Popen, check: list[str], cwd: Path,
                       env: dict, logs: Path, seconds: float = 45) -> None:
    deadline = time.monotonic() + seconds
    while True:
        done = subprocess.run(check, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=30)
        if done.returncode == 0:
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(
                f"{name}: its health check {check} still fails ({done.returncode}: "
                f"{done.stdout}{done.stderr}); its log:\n{(logs / f'{name}.log').read_text()}")
        time.sleep(1)


def test_the_installed_wheel_runs_the_cli_and_the_compose_services(
        tmp_path, database_url, redis_url):
    wheel = build_wheel(tmp_path)
    assert_ships_every_source_file(wheel, tmp_path / "source")
    venv = make_venv(tmp_path, wheel)
    add_console_scripts(venv)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    elsewhere, logs = tmp_path / "elsewhere", tmp_path / "logs"
    elsewhere.mkdir()
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    # HOSTNAME as a container has it: the worker's health check names its node with it.
    env.update(HOME=str(elsewhere), HOSTNAME=socket.gethostname(), REDIS_URL=redis_url,
               LEDGER_API_PROCESSES="1", PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")

    found = json.loads(run([python, "-c", PROVENANCE, *PACKAGES], cwd=elsewhere, env=env))
    site = venv.resolve()
    outside = {name: path for name, path in found["modules"].items()
               if not Path(path).resolve().is_relative_to(site)}
    assert outside == {}, f"imported from outside the virtualenv: {outside}"
    assert Path(found["metadata"]).resolve().is_relative_to(site), found["metadata"]
    assert found["missing"] == [], "requirements of the wheel not installed"

    assert "migrate" in run(["ledger", "--help"], cwd=elsewhere, env=env)
    queues = run([python, "-c", "import workers.app as w; "
                  "print(sorted(q.name for q in w.app.conf.task_queues))"],
                 cwd=elsewhere, env=env)
    assert "ledger.post.maintenance" in queues and "ledger.post.0" in queues

    compose = Compose(free_port(), elsewhere)
    with Scratch(database_url) as scratch:
        env["DATABASE_URL"] = scratch.url
        run(compose.command("migrate"), cwd=elsewhere, env=env)
        # Every migration of the checkout was applied: the ones the database's heads
        # descend from (dependencies included) are all there are.
        script = ScriptDirectory.from_config(alembic_config(scratch.url))
        heads = tuple(scratch.query("SELECT version_num FROM alembic_version"))
        applied = {r.revision for r in script.iterate_revisions(heads, "base")}
        assert applied == {r.revision for r in script.walk_revisions()}
        # The old image could not run this one (it imports ledger_sdk, which it lacked).
        run(["ledger", "api-client", "create", "--name", "wheel-probe"], cwd=elsewhere, env=env)
        assert scratch.query("SELECT name FROM api_clients") == {"wheel-probe"}

        services = ("api", "worker", "beat")
        with started({s: compose.command(s) for s in services}, elsewhere, env, logs) as procs:
            for service in services:
                wait_until_healthy(service, procs[service], compose.health_check(service),
                                   elsewhere, env, logs)
            health = httpx.get(f"http://127.0.0.1:{compose.port}/healthz", timeout=5)
            assert health.json() == {"status": "ok", "database": "ok"}
            # The worker serves its metrics on the port the compose file gives it (empty
            # until it has posted a batch: its counters are made on first use).
            worker = httpx.get(f"http://127.0.0.1:{compose.worker_metrics_port}/metrics",
                               timeout=5)
            assert worker.status_code == 200, worker.text
            assert worker.headers["content-type"].startswith("text/plain")
