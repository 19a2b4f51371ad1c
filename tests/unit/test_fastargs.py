"""api.graphql.fastargs builds the same input objects as Strawberry's own conversion, for
every input type the fields it takes over can receive, and does take those fields."""
from __future__ import annotations

from datetime import datetime, timezone

from graphql import GraphQLInputObjectType, GraphQLList, GraphQLNonNull, GraphQLScalarType
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.types.arguments import convert_arguments

from api.graphql import fastargs
from api.graphql.schema import schema

SCALARS = {
    "String": st.text(max_size=8),
    "SafeString": st.text(alphabet="abc-_:1", min_size=1, max_size=8),
    "ID": st.text(alphabet="0123456789", min_size=1, max_size=6),
    "Int": st.integers(-2**31, 2**31 - 1),
    "Int96": st.integers(-2**95, 2**95),
    "Boolean": st.booleans(),
    "DateTime": st.datetimes(timezones=st.just(timezone.utc)),
    "LastMoment": st.text(alphabet="0123456789-QT:Z", min_size=1, max_size=10),
    "JSON": st.recursive(st.none() | st.integers() | st.text(max_size=4),
                         lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                         max_leaves=6),
}


def coerced(type_, depth: int = 0):
    """Values of the GraphQL input type ``type_`` as graphql-core hands them to a resolver
    (scalars parsed, input objects as dicts by GraphQL field name, optional fields absent
    or null)."""
    if isinstance(type_, GraphQLNonNull):
        return _value(type_.of_type, depth)
    return st.none() | _value(type_, depth)


def _value(type_, depth: int):
    if isinstance(type_, GraphQLList):
        return st.lists(coerced(type_.of_type, depth + 1), max_size=3)
    if isinstance(type_, GraphQLScalarType):
        return SCALARS[type_.name]
    assert isinstance(type_, GraphQLInputObjectType), type_
    required, optional = {}, {}
    for name, field in type_.fields.items():
        if isinstance(field.type, GraphQLNonNull):
            required[name] = coerced(field.type, depth + 1)
        elif depth < 4:
            optional[name] = coerced(field.type, depth + 1)
    return st.fixed_dictionaries(required, optional=optional)


def _strawberry_field(type_name: str, field_name: str):
    definition = schema.get_type_by_name(type_name)
    return next(f for f in definition.fields
                if schema.config.name_converter.from_field(f) == field_name)


def _args_strategy(field) -> st.SearchStrategy:
    required, optional = {}, {}
    for name, arg in field.args.items():
        (required if isinstance(arg.type, GraphQLNonNull) else optional)[name] = coerced(arg.type)
    return st.fixed_dictionaries(required, optional=optional)


def test_every_named_field_is_taken_over():
    # A Strawberry upgrade that made one of them ineligible would quietly put it back on
    # the slow path: this says so.
    assert fastargs.install(schema) == [f"{t}.{f}" for t, f in fastargs.FIELDS]
    for type_name, field_name in fastargs.FIELDS:
        resolve = schema._schema.get_type(type_name).fields[field_name].resolve
        assert resolve.__module__ == fastargs.__name__


@st.composite
def field_and_args(draw):
    type_name, field_name = draw(st.sampled_from(fastargs.FIELDS))
    graphql_field = schema._schema.get_type(type_name).fields[field_name]
    return type_name, field_name, draw(_args_strategy(graphql_field))


@settings(max_examples=300, deadline=None)
@given(field_and_args())
def test_arguments_convert_as_strawberry_converts_them(case):
    type_name, field_name, args = case
    field = _strawberry_field(type_name, field_name)
    converters = fastargs.Converters(schema)
    theirs = convert_arguments(args, field.arguments, scalar_registry=converters.scalars,
                               config=schema.config)
    ours = {}
    for argument in field.arguments:
        name = schema.config.name_converter.from_argument(argument)
        if name in args:
            ours[argument.python_name] = converters.of(argument.type)(args[name])
    assert ours == theirs


def test_a_default_list_is_copied_not_shared():
    # graphql-core hands the same default to every request that omits the argument.
    converters = fastargs.Converters(schema)
    field = _strawberry_field("Mutation", "addLedgerEntry")
    entry_type = next(a for a in field.arguments if a.python_name == "entry").type
    tags = [{"key": "k", "value": "v"}]
    entry = converters.of(entry_type)({"type": "t", "tags": tags})
    assert entry.tags[0].key == "k" and entry.tags is not tags
    assert entry.ledger is None and entry.lines is None and entry.parameters is None
    # A list of scalars is copied too.
    from strawberry.types.base import StrawberryList

    names = ["a", "b"]
    assert converters.of(StrawberryList(str))(names) == names
    assert converters.of(StrawberryList(str))(names) is not names


def test_types_strawberry_must_keep_are_refused():
    import enum

    import strawberry

    @strawberry.enum
    class Colour(enum.Enum):
        RED = "red"

    @strawberry.input
    class Paint:
        colour: Colour

    try:
        fastargs.Converters(schema).of(Paint)
    except fastargs.Unsupported:
        pass
    else:
        raise AssertionError("an enum field must stay with Strawberry")


def test_a_time_argument_is_passed_as_parsed():
    converters = fastargs.Converters(schema)
    field = _strawberry_field("Mutation", "addLedgerEntry")
    entry_type = next(a for a in field.arguments if a.python_name == "entry").type
    when = datetime(2025, 1, 2, tzinfo=timezone.utc)
    assert converters.of(entry_type)({"posted": when}).posted is when

