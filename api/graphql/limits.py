"""Depth and cost of a GraphQL operation, measured on the document before anything runs.

One pass over the operation, each fragment measured once and remembered, so the work is
linear in the document: a chain of fragments that each spread the next one twice costs a
walk of each fragment, not 2^n walks. A fragment that spreads itself (directly or through
others) is refused here, before validation would, so nothing recurses without end.

The cost of a selection is the number of fields it would resolve: each field (every alias
counts: ``a: ledger {...} b: ledger {...}`` is two) is 1 plus its sub-selection times the
page size of the field, for the connection fields that take ``first``/``last`` (the
default page when neither is given). Mutation fields at the top are counted apart, since
each one is a posting.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import GraphQLNamedType, GraphQLSchema, OperationType, get_named_type
from graphql.language import (DocumentNode, FieldNode, FragmentDefinitionNode,
                              OperationDefinitionNode, SelectionSetNode, VariableNode)

# The ledger's page sizes (ledger/history, ledger/reconcile): what a connection field
# answers without `first`/`last`, and the most it answers with them.
DEFAULT_PAGE = 20
MAX_PAGE = 200
PAGE_ARGUMENTS = ("first", "last")
# Fragments spreading fragments this deep are no legitimate client's document; the bound
# keeps the analysis itself from recursing as deep as the document asks.
MAX_FRAGMENT_NESTING = 64

TOO_COMPLEX = "query_too_complex"


@dataclass(frozen=True)
class Limits:
    max_depth: int = 15
    max_cost: int = 50_000
    max_mutations: int = 25


@dataclass(frozen=True)
class Measure:
    depth: int = 0
    cost: int = 0
    width: int = 0  # fields at this level, through fragments: the mutations at the top

    def add(self, other: "Measure") -> "Measure":
        return Measure(max(self.depth, other.depth), self.cost + other.cost,
                       self.width + other.width)


@dataclass(frozen=True)
class Analysis:
    depth: int
    cost: int
    mutations: int


class TooComplex(Exception):
    """The operation is over a limit: answered 400 with code ``query_too_complex``."""

    code = TOO_COMPLEX

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class _Walker:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode,
                 variables: dict[str, Any] | None):
        self.schema = schema
        self.variables = variables or {}
        self.fragments: dict[str, FragmentDefinitionNode] = {
            d.name.value: d for d in document.definitions
            if isinstance(d, FragmentDefinitionNode)}
        self.measured: dict[str, Measure] = {}
        self.open: list[str] = []  # fragments being measured, innermost last

    def selection_set(self, node: SelectionSetNode | None,
                      parent: GraphQLNamedType | None) -> Measure:
        total = Measure()
        if node is None:
            return total
        for selection in node.selections:
            kind = selection.kind
            if kind == "field":
                total = total.add(self.field(selection, parent))
            elif kind == "inline_fragment":
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                total = total.add(self.selection_set(selection.selection_set, inner))
            elif kind == "fragment_spread":
                total = total.add(self.fragment(selection.name.value))
        return total

    def field(self, node: FieldNode, parent: GraphQLNamedType | None) -> Measure:
        fields = getattr(parent, "fields", None) or {}
        definition = fields.get(node.name.value)
        if node.selection_set is None:
            return Measure(depth=1, cost=1, width=1)
        child_type = get_named_type(definition.type) if definition is not None else None
        inner = self.selection_set(node.selection_set, child_type)
        pages = self.page_size(node, definition)
        return Measure(depth=1 + inner.depth, cost=1 + pages * inner.cost, width=1)

    def page_size(self, node: FieldNode, definition: Any) -> int:
        if definition is None or not any(a in definition.args for a in PAGE_ARGUMENTS):
            return 1
        size = None
        for argument in node.arguments or ():
            if argument.name.value not in PAGE_ARGUMENTS:
                continue
            value = argument.value
            if isinstance(value, VariableNode):
                given = self.variables.get(value.name.value)
            else:
                given = getattr(value, "value", None)
            try:
                number = int(given)
            except (TypeError, ValueError):
                continue
            size = max(size or 0, min(max(number, 0), MAX_PAGE))
        return DEFAULT_PAGE if size is None else size

    def fragment(self, name: str) -> Measure:
        if name in self.measured:
            return self.measured[name]
        if name in self.open:
            cycle = " -> ".join(self.open[self.open.index(name):] + [name])
            raise TooComplex(f"fragment {name} spreads itself ({cycle})")
        definition = self.fragments.get(name)
        if definition is None:
            return Measure()  # validation names the unknown fragment
        if len(self.open) >= MAX_FRAGMENT_NESTING:
            raise TooComplex(f"fragments spread fragments more than {MAX_FRAGMENT_NESTING} "
                             "levels deep")
        self.open.append(name)
        try:
            parent = self.schema.get_type(definition.type_condition.name.value)
            found = self.measured[name] = self.selection_set(definition.selection_set, parent)
        finally:
            self.open.pop()
        return found


def analyze(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode,
            variables: dict[str, Any] | None = None) -> Analysis:
    """Depth, cost and top-level mutation count of ``operation``; raises `TooComplex` for a
    fragment cycle."""
    walker = _Walker(schema, document, variables)
    root = schema.get_root_type(operation.operation)
    measure = walker.selection_set(operation.selection_set, root)
    mutations = measure.width if operation.operation == OperationType.MUTATION else 0
    return Analysis(depth=measure.depth, cost=measure.cost, mutations=mutations)


def check(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode,
          variables: dict[str, Any] | None, limits: Limits) -> Analysis:
    """The analysis of ``operation``, or `TooComplex` naming the measure and its limit."""
    found = analyze(schema, document, operation, variables)
    if found.depth > limits.max_depth:
        raise TooComplex(f"the query nests {found.depth} levels deep; the limit is "
                         f"{limits.max_depth}")
    if found.cost > limits.max_cost:
        raise TooComplex(f"the query costs {found.cost}; the limit is {limits.max_cost} "
                         f"(each field counts once per alias, times the page size of the "
                         f"connections above it: ask for smaller pages or fewer fields)")
    if found.mutations > limits.max_mutations:
        raise TooComplex(f"the request runs {found.mutations} mutations; the limit is "
                         f"{limits.max_mutations} a request")
    return found
