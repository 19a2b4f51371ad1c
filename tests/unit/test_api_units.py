"""Small pieces of the API layer that need no server: scalars, ids, scopes, settings, the
CLI's environment substitution."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from api.auth import granted_scope
from api.cli.common import substitute_env
from api.graphql import scalars
from api.graphql.refs import account_id, parse_account_id
from ledger.settings import Settings
from ledger.errors import NotFoundError


@pytest.mark.parametrize("value, expected", [
    ("250", 250), ("-250", -250), ("0", 0), (12, 12), (str(2**120 - 1), 2**120 - 1)])
def test_int96_accepts_integers(value, expected):
    assert scalars._parse_int96(value) == expected


# Issue 12: only the canonical text (the ledger's rule, ledger/amounts.py) is an amount.
@pytest.mark.parametrize("value", [1.5, 2.0, "2.5", "1e3", True, None, "", "abc",
                                   str(2**120), "1" * 41, " 7 ", "+250", "00250", "-0", "7\n"])
def test_int96_refuses_everything_else(value):
    with pytest.raises(ValueError):
        scalars._parse_int96(value)


def test_int96_serializes_as_string():
    assert scalars._serialize_int96(-(2**100)) == str(-(2**100))


def test_datetime_wire_format():
    assert scalars.serialize_datetime(datetime(1234, 1, 1, 1, 1, 1, tzinfo=timezone.utc)) == \
        "1234-01-01T01:01:01.000Z"
    assert scalars._parse_datetime("1234-01-01T01:01:01") == \
        datetime(1234, 1, 1, 1, 1, 1, tzinfo=timezone.utc)
    assert scalars._parse_datetime("2024-01-01T02:00:00+02:00") == \
        datetime(2024, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        scalars._parse_datetime("yesterday")
    shifted = datetime(2024, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))
    assert scalars.serialize_datetime(shifted) == "2024-01-01T00:00:00.000Z"


@pytest.mark.parametrize("value", ["", "a\nb", "x" * 513, 5])
def test_safe_string_refusals(value):
    with pytest.raises(ValueError):
        scalars._parse_safe_string(value)


def test_account_id_round_trip():
    ident = account_id("ledger:ik/with\"odd chars", "liabilities/users:a/available")
    assert ident.startswith("lga_")
    assert parse_account_id(ident) == ("ledger:ik/with\"odd chars", "liabilities/users:a/available")
    for bad in ("lga_!!!", "nope", "lga_" + "e30"):
        with pytest.raises(NotFoundError):
            parse_account_id(bad)


@pytest.mark.parametrize("client, requested, granted", [
    ("write", None, "write"), ("write", "https://api.example/*", "write"),
    ("write", "read", "read"), ("read", "read", "read"), ("read", None, "read"),
    ("read", "write", None), ("write", "read write", "write")])
def test_granted_scope(client, requested, granted):
    assert granted_scope(client, requested) == granted


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@h/db")
    monkeypatch.setenv("LEDGER_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("LEDGER_MIGRATE_ON_START", "yes")
    s = Settings.from_env()
    assert (s.database_url, s.max_body_bytes, s.migrate_on_start) == ("postgresql://x@h/db", 2048, True)
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.delenv("LEDGER_MAX_BODY_BYTES")
    monkeypatch.delenv("LEDGER_MIGRATE_ON_START")
    s = Settings.from_env()
    assert (s.database_url, s.max_body_bytes, s.migrate_on_start) == (None, 1024 * 1024, None)


def test_env_substitution(monkeypatch):
    monkeypatch.setenv("BANK_LINK_ID", 'link "1"')
    missing: list = []
    doc = {"linkedAccount": {"linkId": "${BANK_LINK_ID}", "externalId": "${BANK_ACCOUNT_ID}"},
           "amount": "{{funding_amount}}", "list": ["${BANK_LINK_ID}-x", 3]}
    out = substitute_env(doc, Settings.from_env().environ, "", missing)
    assert out["linkedAccount"]["linkId"] == 'link "1"'
    assert out["amount"] == "{{funding_amount}}"
    assert out["list"] == ['link "1"-x', 3]
    assert missing == [("BANK_ACCOUNT_ID", "linkedAccount.externalId")]


def test_the_body_guard_read_is_handed_over_and_read_otherwise():
    import asyncio

    from starlette.requests import Request

    from api.middleware import BODY_KEY, Guard, request_body

    seen = []

    async def app(scope, receive, send):
        seen.append(await request_body(Request(scope, receive)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    class Metrics:
        def http_request(self, *args):
            pass

    chunks = [{"type": "http.request", "body": b'{"a":', "more_body": True},
              {"type": "http.request", "body": b" 1}", "more_body": False}]

    async def receive():
        return chunks.pop(0)

    async def send(message):
        pass

    scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": []}
    asyncio.run(Guard(app, Metrics(), max_bytes=1000, max_depth=10)(scope, receive, send))
    assert seen == [b'{"a": 1}'] and scope[BODY_KEY] == b'{"a": 1}'

    # Without Guard (no body in the scope) the request's own stream is read.
    chunks[:] = [{"type": "http.request", "body": b"xyz", "more_body": False}]
    bare = {"type": "http", "method": "POST", "path": "/", "headers": []}
    assert asyncio.run(request_body(Request(bare, receive))) == b"xyz"
