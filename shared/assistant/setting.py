"""What one environment setting is: :class:`Setting`, the declaration every entry of
``assistant.environment.SETTINGS`` is, with the one parser (:meth:`Setting.parse`) a value ever goes through, at
synth, at the local stack's start and in a function.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

#: The enumeration of variable names (``assistant.environment.Env``).
NameT = TypeVar("NameT", bound=StrEnum)


class MissingSetting(RuntimeError):
    """A function was deployed without an environment variable it needs: a wiring bug, not bad input."""


class InvalidSetting(ValueError):
    """A value a setting refuses (a stage's limit out of range, say): raised at synth by the stage, at start by the
    local stack and at cold start by a function, always naming the setting and its variable."""


class Kind(StrEnum):
    TEXT = "text"
    #: A whole number within the setting's bounds.
    INT = "integer"
    #: ``"<burst>/<per minute>"`` (:class:`assistant.limits.RateLimit`).
    RATE_LIMIT = "rate limit"
    #: One of the setting's ``choices``.
    CHOICE = "choice"


@dataclass(frozen=True)
class Setting(Generic[NameT]):
    """One environment variable: what it holds, who reads it, and whether a stage may set it."""

    #: The variable (a member of ``assistant.environment.Env``).
    env: NameT
    #: Names of the functions whose environment has it.
    functions: tuple[str, ...]
    doc: str
    kind: Kind = Kind.TEXT
    #: The value a function uses when the variable is unset, as the environment spells it; ``None``: no default
    #: (required unless :attr:`optional`).
    default: str | None = None
    #: Functions run without it (a ``None`` field): the deployed stack may leave it unset.
    optional: bool = False
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    #: A :class:`StageSettings` field of the same name (:attr:`field`) sets it per stage.
    stage: bool = False

    @property
    def field(self) -> str:
        """The name of the settings field and of the stage field (``flush_chars`` for ``FLUSH_CHARS``)."""
        return self.env.name.lower()

    @property
    def required(self) -> bool:
        return self.default is None and not self.optional

    def parse(self, raw: str) -> Any:
        """The value of ``raw`` (the environment's text), or :class:`InvalidSetting` naming the setting."""
        text = raw.strip()
        if self.kind is Kind.INT:
            return self._whole_number(text, raw)
        if self.kind is Kind.RATE_LIMIT:
            # Imported here: the authorizer, which reads no rate limit, never loads it.
            from assistant.limits import RateLimit

            try:
                return RateLimit.parse(text)
            except ValueError as exc:
                raise InvalidSetting(f"{self._names}: {exc}") from None
        if self.kind is Kind.CHOICE and text not in self.choices:
            raise InvalidSetting(f"{self._names} must be one of {', '.join(self.choices)}, got {raw!r}")
        if not text:
            raise InvalidSetting(f"{self._names} must not be empty")
        return text

    def default_value(self) -> Any:
        """The parsed default (``None`` when the setting has none)."""
        return None if self.default is None else self.parse(self.default)

    @property
    def bounds(self) -> str:
        """The accepted values, in words (docs and error messages)."""
        if self.kind is Kind.INT:
            low = "" if self.minimum is None else str(self.minimum)
            high = "" if self.maximum is None else str(self.maximum)
            if low and high:
                return f"{low}-{high}"
            return f">= {low}" if low else (f"<= {high}" if high else "any whole number")
        if self.kind is Kind.RATE_LIMIT:
            return "<burst>/<per minute>, burst >= 1"
        if self.kind is Kind.CHOICE:
            return ", ".join(self.choices)
        return "text"

    def _whole_number(self, text: str, raw: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise InvalidSetting(f"{self._names} must be a whole number ({self.bounds}), got {raw!r}") from None
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            raise InvalidSetting(f"{self._names} must be {self.bounds}, got {raw!r}")
        return value

    @property
    def _names(self) -> str:
        return f"{self.field} ({self.env.value})"
