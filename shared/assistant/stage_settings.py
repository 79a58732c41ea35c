"""A stage's values of the settings a stage may set: :class:`StageSettings`, one field per stage setting of
``assistant.environment.SETTINGS``, generated from it (so a new stage setting needs no field here).

Its defaults are the declaration's (rate limits as ``"<burst>/<per minute>"``, numbers as ``int``) and each value is
checked with the same :meth:`Setting.parse <assistant.setting.Setting.parse>` the functions run at cold start, so
``cdk synth`` refuses exactly what a function would, naming the setting. ``infra.stage.StageConfig`` extends it;
the local stack starts from :data:`STAGE_DEFAULTS`. The functions never import it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from assistant.environment import STAGE_SETTINGS, Env
from assistant.setting import InvalidSetting, Kind, Setting


def _check(self: Any) -> None:
    for setting in STAGE_SETTINGS:
        value = getattr(self, setting.field)
        expected = int if setting.kind is Kind.INT else str
        if isinstance(value, bool) or not isinstance(value, expected):
            raise InvalidSetting(f"{setting.field} must be {setting.bounds} (a {expected.__name__}), got {value!r}")
        setting.parse(str(value))  # raises InvalidSetting naming the setting


def _environment(self: Any) -> dict[Env, str]:
    """Each stage setting's variable, as the functions read it."""
    return {setting.env: str(getattr(self, setting.field)) for setting in STAGE_SETTINGS}


def _field(setting: Setting) -> tuple[str, type, Any]:
    if setting.kind is Kind.INT:
        return setting.field, int, dataclasses.field(default=setting.default_value())
    return setting.field, str, dataclasses.field(default=setting.default)


#: ``StageSettings(flush_chars=4000)``: a frozen, keyword-only dataclass with a field per stage setting;
#: ``.environment()`` gives each setting's variable. Typed ``Any``: its fields are the table's, not written out.
StageSettings: Any = dataclasses.make_dataclass(
    "StageSettings",
    [_field(setting) for setting in STAGE_SETTINGS],
    namespace={"__post_init__": _check, "environment": _environment, "__doc__": __doc__},
    frozen=True,
    kw_only=True,
)
StageSettings.__module__ = __name__  # make_dataclass's own `module=` is Python 3.12+; the tools run 3.11

#: The defaults every stage starts from (``infra.stage.StageConfig``, the local stack).
STAGE_DEFAULTS: Final[Any] = StageSettings()
