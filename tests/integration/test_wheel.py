"""The wheel is the product: the Docker image installs it and nothing else from the source
tree (Dockerfile), and Docker is not available where the tests run, so this test is what
proves the image's contents.

It builds the wheel from a copy of the project (offline: no build isolation, so setuptools
comes from the dev extra), installs it into a fresh virtualenv outside the checkout and,
from an empty folder, runs what the image runs: `ledger --help`, `ledger migrate` on an
empty database, the API under uvicorn until /healthz answers, and the Celery app's import.

The virtualenv sees the system site-packages for the project's dependencies (installing
them would need the network and minutes); the project itself is in both places when it is
installed editable, so the test first proves that every module it runs, and the
distribution's metadata, come from the virtualenv's copy.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ledger.db import normalize_url
from ledger.migrate import alembic_config
from tests.serving import free_port, wait_healthy

REPO = Path(__file__).resolve().parents[2]
# The top-level packages the wheel ships (pyproject.toml, [tool.setuptools.packages.find]).
PACKAGES = ("api", "ledger", "ledger_sdk", "migrations", "workers")
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

    def heads(self) -> set[str]:
        engine = sa.create_engine(normalize_url(self.url), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return set(conn.exec_driver_sql("SELECT version_num FROM alembic_version")
                           .scalars())
        finally:
            engine.dispose()


def test_the_installed_wheel_runs_the_cli_migrations_api_and_workers(
        tmp_path, database_url, redis_url):
    wheel = build_wheel(tmp_path)
    assert_ships_every_source_file(wheel, tmp_path / "source")
    venv = make_venv(tmp_path, wheel)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HOME=str(elsewhere), REDIS_URL=redis_url,
               PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")

    found = json.loads(run([python, "-c", PROVENANCE, *PACKAGES], cwd=elsewhere, env=env))
    site = venv.resolve()
    outside = {name: path for name, path in found["modules"].items()
               if not Path(path).resolve().is_relative_to(site)}
    assert outside == {}, f"imported from outside the virtualenv: {outside}"
    assert Path(found["metadata"]).resolve().is_relative_to(site), found["metadata"]
    assert found["missing"] == [], "requirements of the wheel not installed"

    assert "migrate" in run([bin_dir / "ledger", "--help"], cwd=elsewhere, env=env)

    with Scratch(database_url) as scratch:
        env["DATABASE_URL"] = scratch.url
        run([bin_dir / "ledger", "migrate"], cwd=elsewhere, env=env)
        # Every migration of the checkout was applied: the ones the database's heads
        # descend from (dependencies included) are all there are.
        script = ScriptDirectory.from_config(alembic_config(scratch.url))
        applied = {r.revision for r in script.iterate_revisions(tuple(scratch.heads()), "base")}
        assert applied == {r.revision for r in script.walk_revisions()}

        port = free_port()
        log = tmp_path / "logs"
        log.mkdir()
        with open(log / "api.log", "w") as out:
            # `python -m uvicorn`: the console script of a dependency lives outside the
            # virtualenv, with the outside interpreter; the image has it on its PATH.
            api = subprocess.Popen(
                [str(python), "-m", "uvicorn", "api.app:app_from_env", "--factory",
                 "--host", "127.0.0.1", "--port", str(port)],
                cwd=elsewhere, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(api, url, log, seconds=30)
            assert httpx.get(f"{url}/healthz", timeout=5).json()["database"] == "ok"
        finally:
            api.terminate()
            api.wait(15)

        queues = run([python, "-c", "import workers.app as w; "
                      "print(sorted(q.name for q in w.app.conf.task_queues))"],
                     cwd=elsewhere, env=env)
        assert "ledger.post.maintenance" in queues and "ledger.post.0" in queues
