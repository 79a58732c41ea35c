"""Lean routes (issue #24): each route function's cold import against the libraries it must use, in the same run.

Each route function's handler module is imported in a fresh ``python -I -S`` from the layers built for this host,
with a deployed function's environment (:mod:`scripts.bench.layers`). Its *floor* is a fresh interpreter importing
exactly the libraries that function must use and nothing of ours: boto3, pydantic with one model built (pydantic
imports its schema machinery with the first model) and Powertools' ``Logger`` and ``Metrics`` (one of each, as
``assistant.observability`` builds them) for the API routes; pyjwt with its RSA backend, Powertools' authorizer event
and response classes and the same ``Logger`` and ``Metrics`` for the authorizer, which uses neither boto3 nor
pydantic. The handlers import with garbage collection
paused and then frozen (``assistant.coldstart``), so the floors import that way too: the ratio is what our own code
adds, not what the pause saves.

The runs are taken in rounds, each route right after its floor, so the machine's drift over a run falls on both
sides of every ratio; each side is the median of its runs. The target: a route's import is at most
:data:`TARGET_RATIO` times its floor's. One ``-X importtime`` run per route names where our share goes (the self time
of the ``assistant`` modules and of the handler module).
"""

from __future__ import annotations

import re
import statistics
import sys
from dataclasses import dataclass

from scripts.bench.cold_start import _run, interleaved_samples
from scripts.bench.layers import HostLayers
from scripts.bench.markdown import markdown_table, ms, times, verdict
from scripts.bench.stats import ratio

#: Issue #24: our own code adds at most 15 % to the cold import of the libraries a route must use.
TARGET_RATIO = 1.15

_POWERTOOLS = "from aws_lambda_powertools import Logger, Metrics\nLogger()\nMetrics()\n"
#: The libraries each kind of route function must use: (label, the floor's program before the pause is added).
ROUTE_LIBRARIES = "boto3 + pydantic + Powertools"
AUTHORIZER_LIBRARIES = "pyjwt + RSA + Powertools"
FLOOR_CODE: dict[str, str] = {
    ROUTE_LIBRARIES: ("import boto3\nimport pydantic\nclass M(pydantic.BaseModel):\n    x: int\n" + _POWERTOOLS),
    AUTHORIZER_LIBRARIES: (
        "import jwt\nfrom cryptography.hazmat.primitives.asymmetric import rsa\n"
        # The authorizer's event and its policy response are Powertools' own classes (assistant.connect_authorizer).
        "from aws_lambda_powertools.utilities.data_classes import api_gateway_authorizer_event\n" + _POWERTOOLS
    ),
}
#: Each route function's handler module and the floor it is held against, in the report's order.
ROUTES: dict[str, str] = {
    "connect": ROUTE_LIBRARIES,
    "disconnect": ROUTE_LIBRARIES,
    "default": ROUTE_LIBRARIES,
    "send_message": ROUTE_LIBRARIES,
    "commands": ROUTE_LIBRARIES,
    "authorizer": AUTHORIZER_LIBRARIES,
}
#: Our own modules' self times listed per route (the costliest first).
_OWN_MODULES_SHOWN = 4


def paused(code: str) -> str:
    """``code`` imported as the handlers import (``assistant.coldstart``, spelled out: a floor imports nothing of
    ours): no collection pass inside, then what exists frozen."""
    return "import gc\ngc.disable()\n" + code + "gc.freeze()\ngc.enable()\n"


@dataclass(frozen=True)
class RouteImport:
    route: str
    floor: str
    samples_s: tuple[float, ...]
    floor_samples_s: tuple[float, ...]
    #: ``(module, self seconds)`` of our own modules (the ``assistant`` package and the handler), costliest first.
    own_modules: tuple[tuple[str, float], ...] = ()

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)

    @property
    def floor_median_s(self) -> float:
        return statistics.median(self.floor_samples_s)

    @property
    def ratio(self) -> float:
        return ratio(self.median_s, self.floor_median_s)

    @property
    def met(self) -> bool:
        return self.ratio <= TARGET_RATIO

    @property
    def own_s(self) -> float:
        """Our own modules' self time in the ``-X importtime`` run (0 when not profiled)."""
        return sum(seconds for _, seconds in self.own_modules)


@dataclass(frozen=True)
class RouteImports:
    python: str
    routes: tuple[RouteImport, ...]

    @property
    def repeats(self) -> int:
        return min((len(route.samples_s) for route in self.routes), default=0)


def own_modules(stderr: str, handler: str) -> list[tuple[str, float]]:
    """Self time of each of our modules in ``-X importtime`` output: the ``assistant`` package's and the handler's."""
    own: list[tuple[str, float]] = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \| \s*(\S+)", line)
        if match and (match.group(2) == handler or match.group(2).split(".")[0] == "assistant"):
            own.append((match.group(2), int(match.group(1)) / 1e6))
    return sorted(own, key=lambda item: item[1], reverse=True)


def measure(host: HostLayers, *, repeats: int) -> RouteImports:
    env = host.env()
    # Warm the OS file cache (Lambda's cold start reads its layers from a warm local disk too).
    _run(host.prefix + "".join(f"import {route}\n" for route in ROUTES), env)
    # Each route right after its floor, in rounds: a floor's samples are shared by the routes held against it.
    timed: list[tuple[str, str, dict[str, str]]] = []
    for route, floor in ROUTES.items():
        timed += [(f"{route}:floor", paused(FLOOR_CODE[floor]), env), (route, f"import {route}", env)]
    samples = interleaved_samples(host.prefix, timed, repeats)
    routes = []
    for route, floor in ROUTES.items():
        # The floor's runs next to every route held against it, pooled: each median over more runs.
        floor_samples = tuple(s for other, f in ROUTES.items() if f == floor for s in samples[f"{other}:floor"])
        _, stderr = _run(host.prefix + f"import {route}\n", env, importtime=True)
        routes.append(
            RouteImport(route, floor, samples[route], floor_samples, own_modules=tuple(own_modules(stderr, route)))
        )
    version = sys.version_info
    return RouteImports(python=f"{version.major}.{version.minor}.{version.micro}", routes=tuple(routes))


def route_imports_section(result: RouteImports) -> list[str]:
    rows = []
    for route in result.routes:
        shown = ", ".join(f"`{name}` {ms(seconds)}" for name, seconds in route.own_modules[:_OWN_MODULES_SHOWN])
        rows.append(
            [
                f"`{route.route}`",
                route.floor,
                ms(route.floor_median_s),
                ms(route.median_s),
                f"{times(route.ratio)} ({verdict(route.ratio, TARGET_RATIO)})",
                f"{ms(route.median_s - route.floor_median_s)}",
                f"{ms(route.own_s)}: {shown}" if route.own_modules else "",
            ]
        )
    met = sum(route.met for route in result.routes)
    headers = [
        "route function",
        "libraries it must use (floor)",
        "floor median",
        "route median",
        f"÷ floor (target ≤ {times(TARGET_RATIO)})",
        "route - floor",
        "our modules' self time (`-X importtime`): largest",
    ]
    return [
        "## Lean routes",
        "",
        f"Each route function's handler imported in a fresh `python -I -S` (CPython {result.python}, this host, a "
        "deployed function's environment) against its *floor*: a fresh interpreter importing exactly the libraries "
        f"that function must use, `{ROUTE_LIBRARIES}` for the API routes (boto3, pydantic with one model built, "
        f"Powertools' `Logger` and `Metrics`, one of each) and `{AUTHORIZER_LIBRARIES}` for the authorizer (pyjwt "
        "with its RSA backend, Powertools' authorizer event and response classes, the same `Logger` and "
        "`Metrics`). Both import with garbage collection paused and then "
        "frozen, as the handlers do (`assistant.coldstart`), so the ratio is what our own code adds. Timed in rounds, "
        f"each route right after its floor; medians of {result.repeats} runs (a floor's runs pooled over the routes "
        f"held against it). Target: a route at most {times(TARGET_RATIO)} its floor "
        f"({met} of {len(result.routes)} met). The last column is one `-X importtime` run: the self time of our "
        "own modules, which the profiler inflates but ranks.",
        "",
        markdown_table(headers, rows),
        "",
    ]
