"""Depth, cost and mutation counts of GraphQL documents (api/graphql/limits.py), measured
on parsed documents against the served schema; nothing runs."""
from __future__ import annotations

import pytest
from graphql import get_operation_ast, parse

from api.graphql.execution import DocumentCache
from api.graphql.limits import (DEFAULT_PAGE, MAX_FRAGMENT_NESTING, MAX_PAGE, Limits,
                                TooComplex, analyze, check)
from api.graphql.schema import schema

SCHEMA = schema._schema


def measure(text: str, variables: dict | None = None):
    document = parse(text)
    return analyze(SCHEMA, document, get_operation_ast(document), variables)


def refusal(text: str, limits: Limits = Limits(), variables: dict | None = None) -> str:
    document = parse(text)
    with pytest.raises(TooComplex) as caught:
        check(SCHEMA, document, get_operation_ast(document), variables, limits)
    assert caught.value.code == "query_too_complex"
    return caught.value.message


def chain(levels: int) -> str:
    frags = " ".join(f"fragment F{i} on Query {{ __typename ...F{i + 1} ...F{i + 1} }}"
                     for i in range(levels))
    return f"query {{ ...F0 }} {frags} fragment F{levels} on Query {{ __typename }}"


@pytest.mark.timeout(30)
def test_a_doubling_fragment_chain_is_measured_once_per_fragment():
    # 2^60 walks would never end: finishing at all shows each fragment is walked once.
    found = measure(chain(60))
    assert found.depth == 1
    assert found.cost == 2 ** 61 - 1
    assert "costs" in refusal(chain(23))


def test_fragment_cycles_are_refused_not_recursed():
    assert "A -> A" in refusal("query { ...A } fragment A on Query { __typename ...A }")
    assert "A -> B -> C -> A" in refusal(
        "query { ...A } fragment A on Query { ...B } fragment B on Query { ...C } "
        "fragment C on Query { __typename ...A }")


def test_fragments_nested_past_the_bound_are_refused():
    levels = MAX_FRAGMENT_NESTING + 5
    frags = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(levels))
    text = f"query {{ ...F0 }} {frags} fragment F{levels} on Query {{ __typename }}"
    assert "levels deep" in refusal(text)


def test_depth_counts_fields_not_fragments():
    text = ("query { ledgers { nodes { ...L } } } "
            "fragment L on Ledger { ... on Ledger { ik } }")
    assert measure(text).depth == 3
    nested = "query { ledgers { nodes { ledgerAccounts { nodes { path } } } } }"
    assert measure(nested).depth == 5
    assert "nests 5 levels deep; the limit is 4" in refusal(nested, Limits(max_depth=4))


def test_connections_multiply_by_their_page_size():
    one = "query { ledgers(first: 5) { nodes { ik name } } }"
    # ledgers: 1 + 5 * (nodes: 1 + 2)
    assert measure(one).cost == 1 + 5 * 3
    default = "query { ledgers { nodes { ik } } }"
    assert measure(default).cost == 1 + DEFAULT_PAGE * 2
    by_variable = "query($n: Int) { ledgers(first: $n) { nodes { ik } } }"
    assert measure(by_variable, {"n": 2}).cost == 1 + 2 * 2
    assert measure(by_variable, {}).cost == 1 + DEFAULT_PAGE * 2
    # Sizes the resolver refuses anyway count as its largest page, not as a huge cost.
    huge = "query { ledgers(first: 1000000000) { nodes { ik } } }"
    assert measure(huge).cost == 1 + MAX_PAGE * 2


def test_nested_pages_multiply():
    text = ("query { ledgers(first: 10) { nodes { ledgerAccounts(first: 10) "
            "{ nodes { path } } } } }")
    # ledgerAccounts: 1 + 10 * (nodes: 1 + 1) = 21; nodes: 1 + 21; ledgers: 1 + 10 * 22
    assert measure(text).cost == 221


def test_every_alias_counts():
    one = 'query { ledger(ledger: {ik: "x"}) { ik } }'
    many = "query { " + " ".join(f'a{i}: ledger(ledger: {{ik: "x"}}) {{ ik }}'
                                 for i in range(800)) + " }"
    assert measure(many).cost == 800 * measure(one).cost
    message = refusal(many, Limits(max_cost=1000))
    assert "costs 1600" in message and "limit is 1000" in message


def test_mutations_are_counted_through_fragments():
    add = 'addLedgerEntry(entry: {ledger: {ik: "x"}, type: "t"}) { __typename }'
    text = ("mutation { a: " + add + " ...M ... on Mutation { c: " + add + " } } "
            "fragment M on Mutation { b: " + add + " }")
    assert measure(text).mutations == 3
    assert measure('query { ledger(ledger: {ik: "x"}) { ik } }').mutations == 0
    many = "mutation { " + " ".join(f"m{i}: {add}" for i in range(300)) + " }"
    assert "runs 300 mutations; the limit is 25" in refusal(many)


def test_unknown_fields_and_fragments_are_left_to_validation():
    assert measure("query { nope { deeper } ...Missing }").cost == 2


def test_documents_are_cached_by_text_within_bounds():
    cache = DocumentCache(size=2)
    first = cache.get("query { __typename }")
    assert cache.get("query { __typename }") is first
    cache.get("query A { __typename }")
    cache.get("query B { __typename }")
    assert cache.get("query { __typename }") is not first  # evicted, least recent
    broken = cache.get("query {")
    assert broken.document is None and broken.errors
