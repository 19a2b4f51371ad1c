"""Small types every capability's objects show: page info, currencies and amounts, tags
and group keys."""
from __future__ import annotations

from typing import Optional

import strawberry

from api.graphql.scalars import Int96
from ledger import service


@strawberry.type
class PageInfo:
    has_next_page: bool = False
    has_previous_page: bool = False
    start_cursor: Optional[str] = None
    end_cursor: Optional[str] = None


def page_info(info: service.PageInfo) -> PageInfo:
    return PageInfo(has_next_page=info.has_next_page, has_previous_page=info.has_previous_page,
                    start_cursor=info.start_cursor, end_cursor=info.end_cursor)


@strawberry.type
class Currency:
    code: str


@strawberry.type
class CurrencyAmount:
    amount: Int96
    currency: Currency


@strawberry.type
class CurrencyAmountConnection:
    nodes: list[CurrencyAmount]
    page_info: PageInfo = strawberry.field(default_factory=PageInfo)


def amounts(values: dict[str, int]) -> CurrencyAmountConnection:
    return CurrencyAmountConnection(nodes=[
        CurrencyAmount(amount=a, currency=Currency(code=c)) for c, a in sorted(values.items())])


@strawberry.type
class Tag:
    key: str
    value: str


@strawberry.type
class LedgerEntryGroupKey:
    key: str
    value: str


def key_values(cls, values: dict[str, str]) -> list:
    return [cls(key=k, value=v) for k, v in sorted(values.items())]
