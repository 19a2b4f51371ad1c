"""The LEDGER_SECRET_KEY of a test run. Every process of a run (the API in threads,
workers, beat and CLI commands as children) shares one database, so they share the key its
stored secrets are encrypted with: set in the environment here, when the root conftest
imports this, for the children; handed to the settings the fixtures build by hand."""
from __future__ import annotations

import os

from cryptography.fernet import Fernet

from ledger.secrets import Keyring
from ledger.settings import Secret

SECRET_KEY = Secret(os.environ.setdefault("LEDGER_SECRET_KEY", Fernet.generate_key().decode()))
KEYRING = Keyring(SECRET_KEY)
