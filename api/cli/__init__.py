"""The ``ledger`` command line (``ledger = "api.cli:app"``)."""
from api.cli.root import app

__all__ = ["app"]
