"""Hypothesis stateful test: random deposits, transfers, fees, replays and bad requests
against an in-memory model, with the books checked against the database after every step."""
from __future__ import annotations

import secrets

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, consumes, initialize,
                                 invariant, rule)

from ledger import service
from ledger.errors import BadRequestError
from ledger.service import EntryRequest

USERS = ["ann", "bob", "cy"]
CURRENCIES = ["USD", "EUR"]
SIGN = {"asset": 1, "liability": -1, "income": -1, "expense": 1}


def schema_doc(key: str) -> dict:
    return {
        "key": key,
        "chartOfAccounts": {"defaultCurrencyMode": "multi", "accounts": [
            {"key": "assets", "type": "asset", "children": [
                {"key": "bank", "consistencyConfig": {"ownBalanceUpdates": "eventual"}}]},
            {"key": "liabilities", "type": "liability", "children": [
                {"key": "users", "template": True, "children": [{"key": "available"}]}]},
            {"key": "income", "type": "income", "children": [{"key": "fees"}]},
        ]},
        "ledgerEntries": {"types": [
            {"type": "deposit", "lines": [
                {"key": "bank", "account": {"path": "assets/bank"}, "amount": "{{amount}}",
                 "currency": {"code": "{{currency}}"}},
                {"key": "user", "account": {"path": "liabilities/users:{{user}}/available"},
                 "amount": "{{amount}}", "currency": {"code": "{{currency}}"}}]},
            {"type": "transfer", "lines": [
                {"key": "from", "account": {"path": "liabilities/users:{{from}}/available"},
                 "amount": "-{{amount}}", "currency": {"code": "{{currency}}"}},
                {"key": "to", "account": {"path": "liabilities/users:{{to}}/available"},
                 "amount": "{{amount}}", "currency": {"code": "{{currency}}"}}],
             "conditions": [{"account": {"path": "liabilities/users:{{from}}/available"},
                             "postcondition": {"ownBalance": {"gte": "0"}}}]},
            {"type": "fee", "lines": [
                {"key": "user", "account": {"path": "liabilities/users:{{user}}/available"},
                 "amount": "-{{fee}}", "currency": {"code": "{{currency}}"}},
                {"key": "income", "account": {"path": "income/fees"}, "amount": "{{fee}}",
                 "currency": {"code": "{{currency}}"}}],
             "conditions": [{"account": {"path": "liabilities/users:{{user}}/available"},
                             "precondition": {"ownBalance": {"gte": "{{fee}}"}}}]},
        ]},
    }


amounts = st.integers(min_value=0, max_value=10**30)
small = st.integers(min_value=1, max_value=500)


def make_machine(db, schema_key):
    class Books(RuleBasedStateMachine):
        posted = Bundle("posted")

        @initialize()
        def start(self):
            self.ledger = f"sm-{secrets.token_hex(5)}"
            service.create_ledger(db, self.ledger, "stateful", schema_key)
            self.balances: dict[tuple[str, str], int] = {}
            self.count = 0

        def _post(self, ik, type_, params):
            return service.add_ledger_entry(db, self.ledger, EntryRequest(ik=ik, type=type_, parameters=params))

        def _add(self, path, currency, amount):
            self.balances[(path, currency)] = self.balances.get((path, currency), 0) + amount

        def _user(self, user):
            return f"liabilities/users:{user}/available"

        @rule(target=posted, user=st.sampled_from(USERS), amount=amounts, currency=st.sampled_from(CURRENCIES))
        def deposit(self, user, amount, currency):
            ik = f"dep-{self.count}"
            self.count += 1
            params = {"user": user, "amount": str(amount), "currency": currency}
            result = self._post(ik, "deposit", params)
            assert not result.is_ik_replay
            self._add("assets/bank", currency, amount)
            self._add(self._user(user), currency, amount)
            return (ik, "deposit", params, result.entry.id)

        @rule(target=posted, a=st.sampled_from(USERS), b=st.sampled_from(USERS), amount=small,
              currency=st.sampled_from(CURRENCIES))
        def transfer(self, a, b, amount, currency):
            ik = f"tr-{self.count}"
            self.count += 1
            params = {"from": a, "to": b, "amount": str(amount), "currency": currency}
            if self.balances.get((self._user(a), currency), 0) - amount + (amount if a == b else 0) < 0:
                try:
                    self._post(ik, "transfer", params)
                except BadRequestError as exc:
                    assert exc.code == "condition_failed"
                    return (ik, None, params, None)
                raise AssertionError("an overdraft was posted")
            result = self._post(ik, "transfer", params)
            self._add(self._user(a), currency, -amount)
            self._add(self._user(b), currency, amount)
            return (ik, "transfer", params, result.entry.id)

        @rule(user=st.sampled_from(USERS), fee=small, currency=st.sampled_from(CURRENCIES))
        def fee(self, user, fee, currency):
            ik = f"fee-{self.count}"
            self.count += 1
            params = {"user": user, "fee": str(fee), "currency": currency}
            if self.balances.get((self._user(user), currency), 0) < fee:
                try:
                    self._post(ik, "fee", params)
                except BadRequestError as exc:
                    assert exc.code == "condition_failed"
                    return
                raise AssertionError("a fee overdrew a user")
            self._post(ik, "fee", params)
            self._add(self._user(user), currency, -fee)
            self._add("income/fees", currency, fee)

        @rule(entry=posted)
        def replay(self, entry):
            ik, type_, params, entry_id = entry
            if type_ is None:
                return  # a refused request left no ik behind: replaying it is a new attempt
            result = self._post(ik, type_, params)
            assert result.is_ik_replay and result.entry.id == entry_id

        @rule(entry=consumes(posted))
        def conflicting_reuse(self, entry):
            ik, type_, params, _ = entry
            if type_ is None:
                return
            changed = dict(params, amount=str(int(params["amount"]) + 1))
            try:
                self._post(ik, type_, changed)
            except BadRequestError as exc:
                assert exc.code == "ik_conflict"
            else:
                raise AssertionError("the same ik posted a different request")

        @rule(bad=st.sampled_from([
            ("deposit", {"user": "ann", "amount": "1.5", "currency": "USD"}, "invalid_amount"),
            ("deposit", {"user": "ann", "amount": str(2**120), "currency": "USD"}, "invalid_amount"),
            ("deposit", {"user": "ann", "currency": "USD"}, "missing_parameter"),
            ("nope", {}, "entry_type_not_found"),
            ("deposit", {"user": "a/b", "amount": "1", "currency": "USD"}, "invalid_parameter"),
        ]))
        def bad_request(self, bad):
            type_, params, code = bad
            try:
                self._post(f"bad-{self.count}", type_, params)
            except BadRequestError as exc:
                assert exc.code == code
            else:
                raise AssertionError("a bad request was posted")

        @rule()
        def rollup(self):
            service.rollup(db)

        @invariant()
        def books_hold(self):
            with db.transaction() as conn:
                rows = conn.execute(sa.text(
                    "SELECT a.path, a.type, x.currency, x.lines, b.own, "
                    "  (SELECT coalesce(sum(d.amount), 0) FROM balance_deltas d "
                    "   WHERE d.account_id = a.id AND d.currency = x.currency) AS pending "
                    "FROM accounts a JOIN ledgers g ON g.id = a.ledger_id "
                    "JOIN (SELECT account_id, currency, sum(amount) AS lines FROM lines "
                    "      GROUP BY account_id, currency) x ON x.account_id = a.id "
                    "LEFT JOIN balances b ON b.account_id = a.id AND b.currency = x.currency "
                    "WHERE g.ik = :l"), {"l": self.ledger}).all()
            equation: dict[str, int] = {}
            seen = {}
            for path, type_, currency, lines, own, pending in rows:
                lines, own, pending = int(lines), int(own or 0), int(pending)
                # every balance equals the sum of its lines (eventual: once deltas fold in)
                assert own + pending == lines, (path, currency, own, pending, lines)
                equation[currency] = equation.get(currency, 0) + SIGN[type_] * lines
                seen[(path, currency)] = lines
                if path.startswith("liabilities/users:"):
                    assert own >= 0, (path, currency, own)  # no condition ever crossed
            assert all(v == 0 for v in equation.values()), equation
            expected = {k: v for k, v in self.balances.items() if v or k in seen}
            assert {k: v for k, v in seen.items() if v or k in expected} == expected
            assert service.audit(db, self.ledger) == []

    return Books


def test_books_under_random_operations(db, unique):
    key = service.store_schema(db, schema_doc(unique("stateful"))).key
    machine = make_machine(db, key)
    machine.TestCase.settings = settings(
        max_examples=20, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    machine.TestCase().runTest()
