"""The Stripe link's settings: stored ones, and the deployment's settings that win over them."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.db import Database
from ledger.errors import BadRequestError
from ledger.ledgers import load_ledger
from ledger.reconcile.links import create_link_in
from ledger.schema.store import load_schema
from ledger.secrets import Keyring, encrypt_legacy
from ledger.settings import Secret, Settings
from ledger.stripe.model import DEFAULT_PARAMETERS, StripeSettings


def ensure_link(conn: Connection, link_id: str):
    link = conn.execute(sa.select(t.links).where(t.links.c.public_id == link_id)).first()
    if link is None:
        create_link_in(conn, link_id, "Stripe", link_id, "stripe")
        link = conn.execute(sa.select(t.links).where(t.links.c.public_id == link_id)).first()
    if link.kind != "stripe":
        raise BadRequestError("invalid_input", f"link {link_id!r} is a {link.kind} link, not a Stripe link", field="link")
    conn.execute(pg_insert(t.stripe_links).values(
        link_id=link.id, parameters=DEFAULT_PARAMETERS, updated=datetime.now(timezone.utc))
        .on_conflict_do_nothing())
    return link


def configure_stripe(db: Database, config: Settings, *, ledger_ik: str | None = None,
                     charge_entry_type: str | None = None, fee_entry_type: str | None = None,
                     parameters: dict[str, str] | None = None, api_key: str | None = None,
                     webhook_secret: str | None = None) -> StripeSettings:
    """Create or update the Stripe link's settings; arguments left None stay as they are
    (an empty entry type clears it). The link is ``config.stripe_link_id``."""
    link_id = config.stripe_link_id
    if parameters is not None:
        if not isinstance(parameters, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in parameters.items()):
            raise BadRequestError("invalid_input", "parameters: expected {\"user_id\": \"metadata.user_id\", ...}", field="parameters")
    for name, value in (("api_key", api_key), ("webhook_secret", webhook_secret)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise BadRequestError("invalid_input", f"{name}: expected a non-empty string", field=name)

    keyring = Keyring.of(config)

    def sealed(value: str | None) -> str | None:
        # Encrypted at rest (ledger/secrets.py); refused here, before anything is written,
        # when there is no LEDGER_SECRET_KEY to do it with.
        return keyring.encrypt(value) if value is not None else None

    def run(conn: Connection) -> None:
        link = ensure_link(conn, link_id)
        row = conn.execute(sa.select(t.stripe_links).where(t.stripe_links.c.link_id == link.id)
                           .with_for_update()).first()
        ledger = ledger_ik if ledger_ik is not None else row.ledger_ik
        for etype in (charge_entry_type, fee_entry_type):
            if etype and ledger is not None:
                schema = load_schema(conn, load_ledger(conn, ledger).id)
                if etype not in schema.entry_types:
                    raise BadRequestError("entry_type_not_found", f"no entry type {etype!r} in the schema of ledger {ledger!r}", field="entry_type")
        values = {k: v for k, v in {
            "ledger_ik": ledger_ik, "charge_entry_type": charge_entry_type,
            "fee_entry_type": fee_entry_type, "parameters": parameters,
            "api_key": sealed(api_key), "webhook_secret": sealed(webhook_secret),
            }.items() if v is not None}
        # An empty entry type turns that reconciliation off (txs are still synced).
        for name in ("charge_entry_type", "fee_entry_type"):
            if values.get(name) == "":
                values[name] = None
        conn.execute(t.stripe_links.update().where(t.stripe_links.c.link_id == link.id)
                     .values(updated=datetime.now(timezone.utc), **values))

    db.run(run)
    return load_settings(db, config)


def _stored(db: Database, keyring: Keyring, row, name: str) -> Secret | None:
    """The stored secret ``name`` of the link's row, decrypted (a legacy plain one is
    encrypted in place on the way, see ledger/secrets.py)."""
    stored = getattr(row, name) if row is not None else None
    if not stored:
        return None
    value = Secret(keyring.decrypt(stored))
    encrypt_legacy(db, t.stripe_links.c[name], t.stripe_links.c.link_id == row.link_id,
                   stored, keyring)
    return value


def load_settings(db: Database, config: Settings) -> StripeSettings:
    """The settings of the Stripe link ``config.stripe_link_id``: the stored ones, except
    that the deployment's API key, webhook secret and API base (``config``) win."""
    link_id = config.stripe_link_id
    with db.transaction() as conn:
        row = conn.execute(sa.select(t.stripe_links).join(t.links).where(
            t.links.c.public_id == link_id)).first()
    keyring = Keyring.of(config)
    # The deployment's own win; a stored one is decrypted only when none is set.
    api_key = config.stripe_api_key or _stored(db, keyring, row, "api_key")
    webhook_secret = config.stripe_webhook_secret or _stored(db, keyring, row, "webhook_secret")
    return StripeSettings(
        link_id=link_id,
        ledger_ik=row.ledger_ik if row is not None else None,
        charge_entry_type=row.charge_entry_type if row is not None else None,
        fee_entry_type=row.fee_entry_type if row is not None else None,
        parameters=dict(row.parameters) if row is not None else dict(DEFAULT_PARAMETERS),
        api_key=api_key, webhook_secret=webhook_secret,
        done_until=row.backfill_done_until if row is not None else None,
        api_base=config.stripe_api_base or None)


def missing_for_sync(settings: StripeSettings) -> list[str]:
    """What the link lacks before it can sync and reconcile charges, each with how to set
    it; empty when nothing is missing. Said before any work starts, so a command never
    reports "no problems" or draws progress for a link that cannot run."""
    missing = []
    if not settings.api_key:
        missing.append("an API key (STRIPE_API_KEY, or `ledger stripe configure --api-key`)")
    if not settings.ledger_ik:
        missing.append("a ledger to reconcile into (`ledger stripe configure --ledger IK`)")
    if not settings.charge_entry_type:
        missing.append("the entry type of a charge "
                       "(`ledger stripe configure --entry-type TYPE`)")
    return missing
