"""The report's formatting: Markdown tables, durations, ratios, percentages and prices as the tables show them."""

from __future__ import annotations

import math
from collections.abc import Sequence


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def times(value: float) -> str:
    if math.isinf(value) or math.isnan(value):
        return "n/a"
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def percent(value: float) -> str:
    return f"{value:.1f} %"


def usd(value: float) -> str:
    """Dollars for 1000 tokens: fractions of a cent, so a fixed 7 decimals keeps a column comparable."""
    return f"${value:.7f}"


def dollars_per_million(unit_price: float) -> str:
    """A unit price as its list price per million ($1.00, $0.625), the way the pricing pages state it."""
    digits = f"{unit_price * 1e6:.3f}".rstrip("0")
    whole, _, cents = digits.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "**not met**"


def table_with_arithmetic(headers: list[str], rows: list[list[str]], arithmetic: list[str]) -> list[str]:
    """A table, then the arithmetic behind each of its rows in a code block (each after a blank line)."""
    return ["", markdown_table(headers, rows), "", "```", *arithmetic, "```", ""]
