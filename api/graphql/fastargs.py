"""The arguments of the hottest fields (posting, and the balance read with its balance
fields), turned into our input types by converters made once per type.

Strawberry converts a resolver's arguments on every call by walking the input types
afresh: each field's GraphQL name worked out again (camel-casing it), its annotation
resolved, its kind looked up. For `addLedgerEntry` that was a tenth of a post's CPU under
32 concurrent posts. A converter here does the same conversion with all of that decided
once: graphql-core has already coerced and validated the values (the scalars parsed, the
required fields present), and what is left is building the input dataclasses, nullable
fields not given set to None, lists copied, exactly as Strawberry builds them
(tests/unit/test_fastargs.py compares the two). A type it does not handle (an enum, a
Strawberry ``Maybe``, a type with its own ``from_input``) leaves the field to Strawberry.

The resolvers of the fields taken over here are called with graphql-core's resolve info
instead of Strawberry's ``Info``: they read ``info.context`` and ``info.field_name`` only,
which both have. Only fields named in ``FIELDS`` are taken over, for that reason. The parent
value goes to ``self`` and to a ``root`` or ``parent`` parameter, as Strawberry passes it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from strawberry.scalars import is_scalar
from strawberry.types import base
from strawberry.types.base import StrawberryList, StrawberryOptional, has_object_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

# Strawberry's Maybe (a subclass of its Optional) came in a later release than the oldest we
# accept; isinstance(x, ()) is always false.
_MAYBE = getattr(base, "StrawberryMaybe", ())

# (GraphQL type, field): the fields whose resolvers read only info.context and
# info.field_name (see the module's docstring): the posts, and the balance read with the
# balances it selects (the SDK's get_balance reads the plural ones).
FIELDS = (("Mutation", "addLedgerEntry"), ("Mutation", "addLedgerEntries"),
          ("Query", "ledgerAccount"), ("LedgerAccount", "ownBalance"),
          ("LedgerAccount", "childBalance"), ("LedgerAccount", "balance"),
          ("LedgerAccount", "ownBalances"), ("LedgerAccount", "childBalances"),
          ("LedgerAccount", "balances"))

Convert = Callable[[Any], Any]


class Unsupported(Exception):
    """A type this module leaves to Strawberry."""


def _leaf(value: Any) -> Any:
    return value


def _leaf_list(value: Any) -> Any:
    # Copied, as Strawberry does: graphql-core hands the same default list to every request
    # that leaves the argument out.
    if value is None or value is UNSET:
        return value
    return list(value)


class Converters:
    """The converters of one Strawberry schema's input types, made as they are needed."""

    def __init__(self, strawberry_schema):
        self.config = strawberry_schema.config
        self.scalars = strawberry_schema.schema_converter.scalar_registry
        self._inputs: dict[type, Convert] = {}

    def of(self, type_: Any) -> Convert:
        if isinstance(type_, _MAYBE):
            raise Unsupported("Maybe")
        if isinstance(type_, StrawberryOptional):
            return self.of(type_.of_type)
        if isinstance(type_, LazyType):
            return self.of(type_.resolve_type())
        if isinstance(type_, StrawberryList):
            inner = self.of(type_.of_type)
            if inner is _leaf:
                return _leaf_list

            def convert_list(value: Any) -> Any:
                if value is None or value is UNSET:
                    return value
                return [inner(x) for x in value]
            return convert_list
        if is_scalar(type_, self.scalars):
            return _leaf
        if has_object_definition(type_):
            return self._input(type_)
        raise Unsupported(repr(type_))

    def _input(self, cls: type) -> Convert:
        found = self._inputs.get(cls)
        if found is not None:
            return found
        definition = cls.__strawberry_definition__
        if not definition.is_input or definition.from_input is not None:
            raise Unsupported(cls.__name__)
        fields: list[tuple[str, str, Convert]] = []
        # Filled in below; an input type that contains itself finds its own converter.
        self._inputs[cls] = lambda value: convert(value)
        try:
            for field in definition.fields:
                fields.append((self.config.name_converter.from_field(field), field.python_name,
                               self.of(field.resolve_type(type_definition=definition))))
        except Unsupported:
            del self._inputs[cls]
            raise
        # Nullable fields declared without a default are None when not given.
        unset = {field.python_name: None for field in definition.fields
                 if field.default_value is dataclasses.MISSING
                 and field.default_factory is dataclasses.MISSING}

        def convert(value: Any) -> Any:
            if value is None or value is UNSET:
                return value
            kwargs = dict(unset)
            for graphql_name, python_name, inner in fields:
                if graphql_name in value:
                    kwargs[python_name] = inner(value[graphql_name])
            return cls(**kwargs)

        self._inputs[cls] = convert
        return convert


def resolver(field, converters: Converters) -> Callable | None:
    """A graphql-core resolver for the Strawberry field ``field`` that converts its
    arguments here, or None when Strawberry must keep it (permission classes, field
    extensions, an asynchronous resolver, a type left to Strawberry)."""
    base = field.base_resolver
    if (base is None or base.is_async or field.permission_classes or field.extensions
            or base.info_parameter is None):
        return None
    try:
        arguments = {converters.config.name_converter.from_argument(a): (a.python_name,
                                                                        converters.of(a.type))
                     for a in field.arguments}
    except Unsupported:
        return None
    func = base.wrapped_func
    info_name = base.info_parameter.name
    takes_self = base.self_parameter is not None
    # The parameters that receive the parent value, as Strawberry passes it (``root``,
    # ``parent``): by keyword, beside ``self``.
    sources = [p.name for p in (base.root_parameter, base.parent_parameter) if p is not None]

    def resolve(root: Any, info: Any, **args: Any) -> Any:
        kwargs = {info_name: info}
        for name in sources:
            kwargs[name] = root
        for name, value in args.items():
            python_name, convert = arguments[name]
            kwargs[python_name] = convert(value)
        return func(root, **kwargs) if takes_self else func(**kwargs)

    return resolve


def install(strawberry_schema) -> list[str]:
    """Give the fields of ``FIELDS`` their converting resolvers in ``strawberry_schema``'s
    GraphQL schema (which Strawberry's own execution uses too). Returns those it took."""
    converters = Converters(strawberry_schema)
    taken = []
    for type_name, field_name in FIELDS:
        graphql_field = strawberry_schema._schema.get_type(type_name).fields[field_name]
        definition = strawberry_schema.get_type_by_name(type_name)
        field = next(f for f in definition.fields
                     if strawberry_schema.config.name_converter.from_field(f) == field_name)
        resolve = resolver(field, converters)
        if resolve is not None:
            graphql_field.resolve = resolve
            taken.append(f"{type_name}.{field_name}")
    return taken
