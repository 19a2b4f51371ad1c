"""Entry requests refuse text the database cannot store, naming where it is."""
from __future__ import annotations

import pytest

from ledger.errors import BadRequestError
from ledger.service import EntryRequest

BASE = {"ik": "i", "type": "deposit", "parameters": {"user": "a", "amount": "1"}}


@pytest.mark.parametrize("change, field", [
    ({"ik": "i\x00"}, "entry.ik"),
    ({"type": "dep\ud800osit"}, "entry.type"),
    ({"parameters": {"user": "a\x00", "amount": "1"}}, "entry.parameters.user"),
    ({"parameters": {"user": "a", "amount": "1", "\x00": "x"}}, "entry.parameters.\\x00"),
    ({"tags": [{"key": "k", "value": "\udfff"}]}, "entry.tags.k"),
    ({"groups": {"g\x00": "v"}}, "entry.groups.g\\x00"),
    ({"lines": [{"key": "k", "description": "x\x00"}]}, "entry.lines[0].description"),
    ({"lines": [{"key": "k", "account": {"\ud800": 1}}]}, "entry.lines[0].account.\\ud800"),
])
def test_unstorable_text_is_refused_by_field(change, field):
    with pytest.raises(BadRequestError) as caught:
        EntryRequest.from_input({**BASE, **change})
    assert caught.value.code == "invalid_input"
    assert caught.value.field == field
    assert "cannot be stored" in caught.value.message


def test_any_other_text_is_kept():
    text = "ünïcødé \u2028 \U0001f4b8 \\u0000"
    request = EntryRequest.from_input({**BASE, "parameters": {"user": "a", "amount": "1",
                                                              "note": text},
                                       "tags": {"t": text}, "groups": [{"key": "g",
                                                                        "value": text}]})
    assert request.parameters["note"] == request.tags["t"] == request.groups["g"] == text


def test_tag_changes_and_new_ledgers_refuse_it_too():
    from ledger import service
    from ledger.history import entries

    with pytest.raises(BadRequestError) as caught:
        entries._changes({"ok": "v", "k": "\x00"}, "tags")
    assert caught.value.field == "tags.k"
    # Checked before the database is touched: no database is needed to see it refused.
    with pytest.raises(BadRequestError) as caught:
        service.create_ledger(None, "wallet-1", "Wallet \ud800", "wallet")
    assert caught.value.field == "ledger.name"
