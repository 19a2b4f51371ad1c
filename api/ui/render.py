"""Rendering: the Jinja2 templates shipped in this package, their filters, the HTML answer
for errors, and the balance chart drawn as SVG on the server (no script, no library)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from ledger import service

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def money(amount: Any) -> str:
    """Minor units with thousands separators and a true minus sign."""
    if amount is None:
        return ""
    value = int(amount)
    return ("\u2212" if value < 0 else "") + f"{abs(value):,}"


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def age(value: datetime | float | None) -> str:
    """A duration in words: ``3 s``, ``4 min``, ``2 h``, ``5 d``."""
    if value is None:
        return ""
    seconds = value if isinstance(value, (int, float)) else \
        (datetime.now(timezone.utc) - value).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


templates.env.filters.update(money=money, when=when, age=age)


def page(request: Request, name: str, status_code: int = 200, headers: dict | None = None,
         **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code,
                                      headers=headers)


def error_page(request: Request, status: int, message: str, viewer: Any = None) -> HTMLResponse:
    return page(request, "error.html", status, viewer=viewer, status=status, message=message)


# ------------------------------------------------------------------------------ the chart

WIDTH, HEIGHT, PAD = 640, 200, 28


@dataclass(frozen=True)
class Chart:
    currency: str
    points: str          # the polyline's "x,y x,y ..." in the viewBox
    labels: list[tuple[float, str]]   # x and the period shown under it
    low: int
    high: int
    summary: str         # the same figures in words, for screen readers
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD


def charts(series: list[service.BalancePoint], kind: str = "total") -> list[Chart]:
    """One chart per currency of the series' ``kind`` balance (own, child or total)."""
    currencies = sorted({c for p in series for c in getattr(p.balances, kind)})
    drawn = []
    for currency in currencies:
        values = [getattr(p.balances, kind).get(currency, 0) for p in series]
        low, high = min(values + [0]), max(values + [0])
        span = (high - low) or 1
        step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)
        xy = [(PAD + i * step, HEIGHT - PAD - (v - low) * (HEIGHT - 2 * PAD) / span)
              for i, v in enumerate(values)]
        every = max(len(series) // 6, 1)
        labels = [(round(xy[i][0], 1), series[i].period) for i in range(0, len(series), every)]
        summary = (f"{currency} {kind} balance from {series[0].period} to {series[-1].period}: "
                   f"{money(values[0])} to {money(values[-1])}, lowest {money(min(values))}, "
                   f"highest {money(max(values))}")
        drawn.append(Chart(currency, " ".join(f"{x:.1f},{y:.1f}" for x, y in xy), labels,
                           low, high, summary))
    return drawn
