"""Run the Alembic migrations in ``migrations/``: the only way our tables are created."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations as _migrations
from ledger.db import normalize_url

MIGRATIONS = Path(_migrations.__file__).resolve().parent


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser treats % as interpolation; URLs may contain escaped characters.
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(url), revision)


def current(url: str) -> None:
    command.current(alembic_config(url))
