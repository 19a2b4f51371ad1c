"""GraphQL fuzzing: hypothesis-graphql generates queries and mutations from the served SDL
(/schema.graphql), with arguments inline or moved into variables. Whatever they ask, no
answer is a 5xx and no error is an ``InternalError``: a generated input is at worst merely
invalid, and must be refused as such (a 4xx, or a typed BadRequestError/NotFoundError)."""
from __future__ import annotations

import json
from typing import Any

import graphql
import hypothesis_graphql
import pytest
from hypothesis import given, strategies as st
from hypothesis_graphql import nodes

from tests.fuzz.conftest import FUZZ

# Text of every kind, NUL and lone surrogates included (sent as JSON escapes).
TEXT = st.text(st.characters(codec=None), max_size=30)


def _scalars() -> dict[str, st.SearchStrategy]:
    amounts = st.one_of(st.integers(-2**130, 2**130).map(str), TEXT)
    times = st.one_of(st.sampled_from(["2025", "2025-Q1", "2025-02", "2025-02-03",
                                       "2025-02-03T04", "2025-02-03T04:05:06Z", "9999-12-31"]),
                      TEXT)
    return {name: strategy.map(nodes.String) for name, strategy in {
        "Int96": amounts, "DateTime": times, "Date": times, "LastMoment": times,
        "Period": times, "SafeString": st.sampled_from(["fuzz", "fuzz-0"]) | TEXT,
        "JSON": st.sampled_from(["{}", "[]", "null"]) | TEXT}.items()}


def _type_node(type_: graphql.GraphQLInputType) -> graphql.TypeNode:
    if isinstance(type_, graphql.GraphQLNonNull):
        return graphql.NonNullTypeNode(type=_type_node(type_.of_type))
    if isinstance(type_, graphql.GraphQLList):
        return graphql.ListTypeNode(type=_type_node(type_.of_type))
    return graphql.NamedTypeNode(name=graphql.NameNode(value=type_.name))


def lift_variables(schema: graphql.GraphQLSchema, query: str) -> tuple[str, dict[str, Any]]:
    """The same operation with every field argument passed as a variable."""
    document = graphql.parse(query)
    type_info = graphql.TypeInfo(schema)
    definitions: list[graphql.VariableDefinitionNode] = []
    variables: dict[str, Any] = {}

    class Lift(graphql.Visitor):
        def enter_argument(self, node, *_):
            argument = type_info.get_argument()
            if argument is None:
                return None
            name = f"v{len(definitions)}"
            definitions.append(graphql.VariableDefinitionNode(
                variable=graphql.VariableNode(name=graphql.NameNode(value=name)),
                type=_type_node(argument.type)))
            variables[name] = graphql.value_from_ast_untyped(node.value)
            return graphql.ArgumentNode(name=node.name, value=graphql.VariableNode(
                name=graphql.NameNode(value=name)))

    edited = graphql.visit(document, graphql.TypeInfoVisitor(type_info, Lift()))
    operation = edited.definitions[0]
    lifted = graphql.OperationDefinitionNode(
        operation=operation.operation, name=operation.name, directives=operation.directives,
        variable_definitions=tuple(definitions), selection_set=operation.selection_set)
    return graphql.print_ast(graphql.DocumentNode(definitions=(lifted,))), variables


# Strings that reach past the first lookup: the fuzz ledger, its accounts and entries, and
# the shapes of hostile input issue 12 found (ids past bigint, NUL, lone surrogates, a
# pattern whose index range would end in a surrogate).
KNOWN = ["fuzz", "fuzz-0", "1", "liabilities/users:a/available", "liabilities/users:*/available",
         "liabilities/*", "assets/banks/user-cash", "USD", "user_funds_account"]
HOSTILE = ["99999999999999999999999", "-1", "a\x00b", "\ud800", "users:\ud7ff*",
           "liabilities/users:\x00*", "liabilities/users:a\udfff/available", "\U0010ffff*"]


def steer(value: Any) -> st.SearchStrategy:
    """``value`` with some of its strings swapped for known or hostile ones."""
    if isinstance(value, str):
        return st.one_of(st.just(value), st.sampled_from(KNOWN), st.sampled_from(HOSTILE))
    if isinstance(value, list):
        return st.tuples(*map(steer, value)).map(list)
    if isinstance(value, dict):
        return st.fixed_dictionaries({k: steer(v) for k, v in value.items()})
    return st.just(value)


def internal_errors(body: Any) -> list:
    """Every ``InternalError`` in an answer: in ``errors``, or a typed result in ``data``."""
    found = [e for e in body.get("errors") or []
             if (e.get("extensions") or {}).get("typename") == "InternalError"]

    def walk(value):
        if isinstance(value, dict):
            if value.get("__typename") == "InternalError" or value.get("code") == "internal_error":
                found.append(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(body.get("data"))
    return found


@pytest.fixture(scope="module")
def sdl(authed, fuzz_ledger) -> str:
    r = authed.get("/schema.graphql")
    assert r.status_code == 200
    return r.text


@pytest.fixture(scope="module")
def operations(sdl):
    schema = graphql.build_schema(sdl)
    scalars = _scalars()
    # Reads and writes drawn apart and alike often, each root field alone or with others:
    # an operation of many fields rarely gets one of them past its first lookup.
    reads = [hypothesis_graphql.queries(schema, fields=[name], custom_scalars=scalars)
             for name in schema.query_type.fields]
    writes = [hypothesis_graphql.mutations(schema, fields=[name], custom_scalars=scalars)
              for name in schema.mutation_type.fields]
    generated = st.one_of(*reads, *writes,
                          hypothesis_graphql.from_schema(schema, custom_scalars=scalars))
    return schema, generated


@FUZZ
@given(data=st.data())
def test_graphql_operation(data, operations, authed):
    schema, generated = operations
    query = data.draw(generated, label="query")
    variables: dict[str, Any] = {}
    if data.draw(st.integers(0, 3), label="inline") > 0:
        query, variables = lift_variables(schema, query)
        variables = data.draw(steer(variables), label="variables")
    # ASCII JSON: lone surrogates travel as escapes, as JSON.stringify would send them.
    r = authed.post("/graphql", content=json.dumps({"query": query, "variables": variables}),
                    headers={"content-type": "application/json"})
    assert r.status_code < 500, (query, variables, r.status_code, r.text[:500])
    assert not internal_errors(r.json()), (query, variables, r.text[:1000])
