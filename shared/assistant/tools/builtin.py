"""The tools the assistant ships with. Both are pure computation: no network, no credentials, nothing to leak.

``calculate`` exists because language models are unreliable at arithmetic; it parses the expression with ``ast``
and evaluates only numbers and + - * / ** in :mod:`decimal`, never ``eval``, with limits that keep a hostile
expression (``9**9**9``, a megabyte of parentheses) from costing more than a few microseconds.
"""

from __future__ import annotations

import ast
import decimal
import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from assistant.tools.registry import ToolError, ToolRegistry

MAX_EXPRESSION_CHARS: Final = 500
MAX_EXPRESSION_NODES: Final = 200
#: Integer exponents only, and small: 10**1000 is fine, 10**10**10 is a denial of service.
MAX_EXPONENT: Final = 1000
#: Significant digits of the working precision: far beyond float, so sums like 0.1 + 0.2 come out exact.
PRECISION: Final = 60
#: Significant digits of an answer that is not exact (1/3, 2**10 / 3): what a person can use, not 60 digits of noise.
SIGNIFICANT_DIGITS: Final = 12
#: Results beyond 10**±100000 are refused rather than computed.
_CONTEXT: Final = decimal.Context(
    prec=PRECISION,
    rounding=decimal.ROUND_HALF_EVEN,
    Emax=100_000,
    Emin=-100_000,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

_Operator = Callable[[decimal.Context, decimal.Decimal, decimal.Decimal], decimal.Decimal]
_OPERATORS: Final[dict[type[ast.operator], _Operator]] = {
    ast.Add: decimal.Context.add,
    ast.Sub: decimal.Context.subtract,
    ast.Mult: decimal.Context.multiply,
    ast.Div: decimal.Context.divide,
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_registry(*, now: Callable[[], datetime] = _utc_now) -> ToolRegistry:
    """A registry with the built-in tools. ``now`` is injectable so tests can pin the clock."""
    registry = ToolRegistry()

    @registry.tool
    def current_time(
        timezone: Annotated[str, Field(description="IANA time zone name, e.g. 'Asia/Tokyo', 'Europe/Paris', 'UTC'.")],
    ) -> dict[str, str]:
        """Get the current date and time in a time zone. Use it whenever the answer depends on today's date or the
        time somewhere."""
        local = now().astimezone(_zone(timezone))
        return {
            "timezone": timezone,
            "datetime": local.isoformat(timespec="seconds"),
            "weekday": local.strftime("%A"),
            "utc_offset": local.strftime("%z"),
        }

    @registry.tool
    def calculate(
        expression: Annotated[
            str,
            Field(description="Arithmetic with numbers, + - * / ** (integer exponents), parentheses, e.g. '(2+3)*4'."),
        ],
    ) -> str:
        """Evaluate an arithmetic expression in decimal arithmetic: exact answers are given in full, others rounded
        to 12 significant digits (and say so). Use it for any calculation instead of computing in your head."""
        return format_result(evaluate_rounded(expression))

    return registry


@functools.cache
def default_registry() -> ToolRegistry:
    """The registry the deployed assistant uses (built once per process)."""
    return build_registry()


#: The longest IANA zone name is about 30 characters; a huge string never reaches the zone database (nor the
#: error message the model reads back).
MAX_ZONE_NAME_CHARS = 64


def _zone(name: str) -> ZoneInfo:
    if len(name) > MAX_ZONE_NAME_CHARS:
        raise ToolError(
            f"A time zone name has at most {MAX_ZONE_NAME_CHARS} characters; use an IANA name such as 'UTC'."
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # ValueError: names that are not zone keys at all ("../etc/passwd", absolute paths).
        raise ToolError(f"Unknown time zone {name!r}; use an IANA name such as 'Europe/Paris' or 'UTC'.") from None


def evaluate(expression: str) -> decimal.Decimal:
    """Evaluate ``expression`` (see the module docstring for the grammar); bad input raises :class:`ToolError`."""
    return _evaluate(expression, _CONTEXT.copy())


def evaluate_rounded(expression: str) -> tuple[decimal.Decimal, bool]:
    """The value of ``expression`` and whether it was rounded: an exact result (``2**100``, ``0.1 + 0.2``) comes
    back whole; one that is not (``1/3``, ``2**10 / 3``, anything past the working precision) is rounded to
    :data:`SIGNIFICANT_DIGITS`, so a reply quotes ``341.333333333`` rather than sixty digits."""
    context = _CONTEXT.copy()  # a context of its own: its Inexact flag then tells about this expression only
    value = _evaluate(expression, context)
    if not context.flags[decimal.Inexact]:
        return value, False
    rounded = decimal.Context(prec=SIGNIFICANT_DIGITS, rounding=decimal.ROUND_HALF_EVEN).plus(value)
    return rounded, rounded != value


def format_result(result: tuple[decimal.Decimal, bool]) -> str:
    """The tool's answer: the number, and a note when it was rounded (so the model does not present it as exact)."""
    value, rounded = result
    text = format_decimal(value)
    return f"{text} (rounded to {SIGNIFICANT_DIGITS} significant digits)" if rounded else text


def _evaluate(expression: str, context: decimal.Context) -> decimal.Decimal:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"The expression is longer than {MAX_EXPRESSION_CHARS} characters.")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        raise ToolError(f"Cannot parse {expression!r} as arithmetic.") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_EXPRESSION_NODES:
        raise ToolError("The expression is too long.")
    try:
        return _eval(tree.body, expression.strip(), context)
    except decimal.DivisionByZero:
        raise ToolError("Division by zero.") from None
    except decimal.Overflow:
        raise ToolError("The result is too large.") from None
    except decimal.InvalidOperation:
        raise ToolError("The expression has no defined value (for example 0/0).") from None


def _eval(node: ast.expr, source: str, context: decimal.Context) -> decimal.Decimal:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        # The literal's own text, not the float Python parsed it into: 0.1 stays exactly one tenth.
        literal = ast.get_source_segment(source, node)
        if literal is None:
            raise ToolError("Cannot read a number in the expression.")
        try:
            return context.create_decimal(decimal.Decimal(literal.replace("_", "")))
        except decimal.InvalidOperation:
            raise ToolError(f"{literal!r} is not a decimal number.") from None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _eval(node.operand, source, context)
        return context.minus(operand) if isinstance(node.op, ast.USub) else context.plus(operand)
    if isinstance(node, ast.BinOp):
        left = _eval(node.left, source, context)
        right = _eval(node.right, source, context)
        if isinstance(node.op, ast.Pow):
            return _power(left, right, context)
        operator = _OPERATORS.get(type(node.op))
        if operator is not None:
            return operator(context, left, right)
    raise ToolError(f"Unsupported syntax {ast.get_source_segment(source, node)!r}; use numbers, + - * / ** and ().")


def _power(base: decimal.Decimal, exponent: decimal.Decimal, context: decimal.Context) -> decimal.Decimal:
    if exponent != exponent.to_integral_value() or abs(exponent) > MAX_EXPONENT:
        raise ToolError(f"Exponents must be whole numbers between -{MAX_EXPONENT} and {MAX_EXPONENT}.")
    return context.power(base, int(exponent))


def format_decimal(value: decimal.Decimal) -> str:
    """Plain notation for everyday magnitudes, scientific beyond them; no trailing zeros, no ``-0``."""
    value = _CONTEXT.normalize(value)
    if value.is_zero():
        return "0"
    if -30 < value.adjusted() < PRECISION:
        return format(value, "f")
    return str(value)
