"""Cold start: importing each handler in a fresh interpreter from the Lambda layers, built here for this host.

Each handler is imported by ``python -I -S`` with only the layers, the handler code and the runtime-provided boto3
on ``sys.path`` (:mod:`scripts.bench.layers`); the baseline is the same bare interpreter start importing nothing.
Each handler is also compared with the import it cannot do without (its *floor*, measured in the same run): the
authorizer with pyjwt and its RSA backend, the route handlers with boto3, the worker's first message with boto3 and
openai. The routes are also held against the house libraries they import besides boto3 (Powertools' logger and
metrics, pydantic with one model built), imported with collection paused as the routes import them, which leaves
our own code (:mod:`scripts.bench.route_imports` holds each route function against exactly the libraries it must
use). ``-X importtime`` names the slowest imports. The worker's first message also reports the interpreter's peak
resident memory after its imports, next to the memory the worker is configured with.
The handlers import with garbage collection paused and then frozen (``assistant.coldstart``); every floor is also
timed that way, so a handler can be held against a floor that had the same help.
A second row for the authorizer and the worker builds the Tracer as a sampled invocation in Lambda does (X-Ray SDK,
botocore patched): what tracing adds to a traced cold start.
Sizes are those of the layers built for the real Lambda target when that build is possible, else the host's.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from assistant.wiring import COMMANDS, CONNECT, DEFAULT, DISCONNECT, FUNCTIONS, SEND_MESSAGE
from scripts.bench.layers import HostLayers, LayerSize, layer_sizes
from scripts.bench.markdown import markdown_table, ms, times
from scripts.bench.stats import ratio

_IMPORT_TIMEOUT_S = 60
#: The bare interpreter start's key among the timed imports.
_BARE = "bare interpreter"

#: boto3 plus Powertools' logger and metrics and pydantic with one model built: what a route imports before our code.
LIBRARY_FLOOR = "boto3 + Powertools + pydantic"
#: The imports each handler cannot do without: what its cold start is compared with (name, statement).
FLOORS: dict[str, tuple[str, str]] = {
    "pyjwt + RSA": ("pyjwt + RSA", "import jwt\nfrom cryptography.hazmat.primitives.asymmetric import rsa"),
    "boto3": ("boto3", "import boto3"),
    "boto3 + openai": ("boto3 + openai", "import boto3\nimport openai"),
    # The house libraries every route imports besides boto3. pydantic imports its schema machinery only when the
    # first model class is built, so the floor builds one.
    LIBRARY_FLOOR: (
        LIBRARY_FLOOR,
        "import boto3\nfrom aws_lambda_powertools import Logger, Metrics\nimport pydantic\n"
        "class M(pydantic.BaseModel):\n    x: int",
    ),
}
#: The handlers import with garbage collection paused, then frozen (``assistant.coldstart``); each floor is also
#: measured that way, so the report can hold a handler against a floor that had the same help: what is left is the
#: handler's own cost. (The floors' code, with the pause spelled out: they must not import our package.)
PAUSED = " (collection paused)"
PAUSED_FLOORS: dict[str, tuple[str, str]] = {
    f"{name}{PAUSED}": (
        f"{label}{PAUSED}",
        "import gc\ngc.disable()\n" + code + "\ngc.freeze()\ngc.enable()",
    )
    for name, (label, code) in FLOORS.items()
}
#: What the routes' ``÷ libraries`` column holds them against: the libraries imported as the routes import them.
PAUSED_LIBRARY_FLOOR = LIBRARY_FLOOR + PAUSED
#: Which floor each measured import is held against (anything else: boto3).
HANDLER_FLOOR = {"authorizer": "pyjwt + RSA", "worker + openai": "boto3 + openai"}
#: The API routes' handler modules, also held against :meth:`ColdStart.library_floor`: what is left is our own code.
ROUTE_HANDLERS: tuple[str, ...] = tuple(
    spec.handler.split(".")[0] for spec in (CONNECT, DISCONNECT, DEFAULT, SEND_MESSAGE, COMMANDS)
)
#: Imports whose peak resident memory is measured too (the worker's first message: what its memory size must hold).
PEAK_RSS_IMPORTS = frozenset({"worker + openai"})
#: Printed by the measured interpreter last: its peak resident set size in kB. On Linux, ``VmHWM`` from
#: /proc/self/status, the high-water mark of this program's own memory: ``ru_maxrss`` keeps the larger one of the
#: process that started it (a fork carries the parent's resident set over ``exec``), so under a benchmark or a test
#: run of a few hundred MB it reported theirs. Elsewhere ``ru_maxrss`` (bytes on macOS, kB otherwise).
_PRINT_PEAK_RSS = (
    "import resource, sys\n"
    "if sys.platform == 'linux':\n"
    "    print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))\n"
    "else:\n"
    "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "    print(peak // 1024 if sys.platform == 'darwin' else peak)"
)
#: Lambda's environment for a sampled invocation of a traced function (``assistant.tracing.enabled``).
_TRACED_ENV = {
    "LAMBDA_TASK_ROOT": "/var/task",
    "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
}
_BUILD_TRACER = "from assistant import tracing\ntracing.tracer()"


@dataclass(frozen=True)
class HandlerImport:
    module: str
    samples_s: tuple[float, ...]
    #: ``(module, cumulative seconds)`` of the slowest top-level imports, from ``-X importtime``.
    worst: tuple[tuple[str, float], ...]
    #: Peak resident set size of the interpreter after the import, in bytes (only for :data:`PEAK_RSS_IMPORTS`).
    peak_rss_bytes: int | None = None

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)


@dataclass(frozen=True)
class ColdStart:
    python: str
    bare_samples_s: tuple[float, ...]
    handlers: tuple[HandlerImport, ...]
    layers: tuple[LayerSize, ...]
    #: The floors of :data:`FLOORS`, measured in the same run (empty in results from before they existed).
    floors: tuple[HandlerImport, ...] = ()

    @property
    def bare_s(self) -> float:
        return statistics.median(self.bare_samples_s)

    def handler_ratio(self, handler: HandlerImport) -> float:
        return ratio(handler.median_s, self.bare_s)

    def floor_named(self, name: str) -> HandlerImport | None:
        """The floor measured under ``name`` in this run (``None``: not measured)."""
        return next((floor for floor in self.floors if floor.module == name), None)

    def floor_for(self, handler: HandlerImport) -> HandlerImport | None:
        if handler.module.endswith(PAUSED):  # a paused floor is held against the same floor without the pause
            return self.floor_named(handler.module.removesuffix(PAUSED))
        return self.floor_named(HANDLER_FLOOR.get(handler.module.removesuffix(", traced"), "boto3"))

    def floor_ratio(self, handler: HandlerImport) -> float:
        """The handler's import ÷ the import of what it cannot do without (the issue's targets are on this)."""
        floor = self.floor_for(handler)
        return ratio(handler.median_s, floor.median_s) if floor else float("nan")

    def paused_floor_ratio(self, handler: HandlerImport) -> float | None:
        """The handler's import ÷ its floor imported with collection paused too, as the handler imports: what the
        handler adds above the libraries it needs, the pause's help taken out (``None``: no such floor measured)."""
        floor = self.floor_for(handler)
        paused = self.floor_named(floor.module + PAUSED) if floor is not None else None
        return ratio(handler.median_s, paused.median_s) if paused else None

    def library_floor(self) -> HandlerImport | None:
        """The floor the routes' ``÷ libraries`` column divides by: boto3 + Powertools + pydantic imported with
        collection paused, as the routes import them, so the pause's help does not hide our own code's cost (the
        plain library floor in runs from before the paused one was measured; ``None``: neither)."""
        return self.floor_named(PAUSED_LIBRARY_FLOOR) or self.floor_named(LIBRARY_FLOOR)

    def library_floor_ratio(self, handler: HandlerImport) -> float | None:
        """A route's import ÷ the libraries every route imports (:meth:`library_floor`): how much of it is our code
        rather than the libraries (``None``: not a route, or a run without that floor)."""
        floor = self.library_floor()
        if floor is None or handler.module not in ROUTE_HANDLERS:
            return None
        return ratio(handler.median_s, floor.median_s)


def _run(code: str, env: dict[str, str], *, importtime: bool = False) -> tuple[float, str]:
    elapsed, _, stderr = _run_capturing(code, env, importtime=importtime)
    return elapsed, stderr


def _run_capturing(code: str, env: dict[str, str], *, importtime: bool = False) -> tuple[float, str, str]:
    """``(seconds, stdout, stderr)`` of ``code`` in a fresh ``python -I -S``."""
    args = [sys.executable, "-I", "-S", *(["-X", "importtime"] if importtime else []), "-c", code]
    started = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=_IMPORT_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"import failed: {result.stderr[-2000:]}")
    return elapsed, result.stdout, result.stderr


def peak_rss_bytes(code: str, env: dict[str, str]) -> int:
    """Peak resident memory of a fresh interpreter that ran ``code``, in bytes.

    A run of its own, not one of the timed ones: reading it imports ``resource`` (see :data:`_PRINT_PEAK_RSS`).
    """
    _, stdout, _ = _run_capturing(code + "\n" + _PRINT_PEAK_RSS + "\n", env)
    return int(stdout.strip().splitlines()[-1]) * 1024


def parse_importtime(stderr: str, top: int, *, exclude: str = "") -> list[tuple[str, float]]:
    """The ``top`` costliest top-level packages: the self time (µs in the output) of all their modules, summed.

    Self times do not overlap, so the rows add up to (nearly) the whole import; ``exclude`` drops the handler.
    """
    own: dict[str, float] = {}
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| \s*(\S+)", line)
        if not match:
            continue
        package = match.group(3).split(".")[0]
        if package != exclude:
            own[package] = own.get(package, 0.0) + int(match.group(1)) / 1e6
    return sorted(own.items(), key=lambda item: item[1], reverse=True)[:top]


def interleaved_samples(
    prefix: str, timed: list[tuple[str, str, dict[str, str]]], repeats: int
) -> dict[str, tuple[float, ...]]:
    """``repeats`` timings of each ``(name, statement, env)``, taken in rounds of one of each rather than all of one
    and then all of the next: this shared machine speeds up and slows down over a run, and a handler timed a minute
    after its floor would carry that drift into its ratio. In rounds, every ratio's two sides see the same drift."""
    samples: dict[str, list[float]] = {name: [] for name, _, _ in timed}
    for _ in range(repeats):
        for name, statement, run_env in timed:
            samples[name].append(_run(prefix + statement + "\n", run_env)[0])
    return {name: tuple(values) for name, values in samples.items()}


def measure(host: HostLayers, work_dir: Path, *, repeats: int, lambda_sizes: bool) -> ColdStart:
    env = host.env()
    prefix = host.prefix
    modules = sorted({spec.handler.split(".")[0] for spec in FUNCTIONS})
    # The first use of the layers warms the OS file cache; Lambda's cold start reads from a warm local disk too.
    _run(prefix + "".join(f"import {m}\n" for m in modules), env)
    traced_env = {**env, **_TRACED_ENV}
    # The worker imports the SDK on its first message, not at import: measured as its own row. The traced rows build
    # the Tracer as the first sampled invocation does.
    targets = [(module, f"import {module}", env) for module in modules] + [
        ("worker + openai", "import worker; import openai", env),
        ("authorizer, traced", f"import authorizer\n{_BUILD_TRACER}", traced_env),
        ("worker + openai, traced", f"import worker; import openai\n{_BUILD_TRACER}", traced_env),
    ]
    all_floors = [*FLOORS.values(), *PAUSED_FLOORS.values()]
    timed = [(_BARE, "", env), *((name, code, env) for name, code in all_floors), *targets]
    samples = interleaved_samples(prefix, timed, repeats)
    bare = samples[_BARE]
    floors = tuple(HandlerImport(name, samples[name], worst=()) for name, _ in all_floors)
    handlers: list[HandlerImport] = []
    for name, statement, run_env in targets:
        _, stderr = _run(prefix + statement + "\n", run_env, importtime=True)
        worst = tuple(parse_importtime(stderr, 5, exclude=name.split(" ")[0].rstrip(",")))
        peak = peak_rss_bytes(prefix + statement, run_env) if name in PEAK_RSS_IMPORTS else None
        handlers.append(HandlerImport(module=name, samples_s=samples[name], worst=worst, peak_rss_bytes=peak))
    return ColdStart(
        python=f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}",
        bare_samples_s=bare,
        handlers=tuple(handlers),
        layers=layer_sizes(host, work_dir, lambda_target=lambda_sizes),
        floors=floors,
    )


def cold_start_section(cold: ColdStart, worker_memory_mb: int) -> list[str]:
    rows = [["bare interpreter (baseline)", ms(cold.bare_s), "1.00x", "", "", "", ""]]
    library_floor = cold.library_floor()
    for floor in cold.floors:
        # The library floor is held against boto3 (what the house libraries add before any of our code), and a
        # paused floor against the same floor without the pause (what the pause alone saves).
        if floor.module == LIBRARY_FLOOR or floor.module.endswith(PAUSED):
            own_floor = cold.floor_for(floor)
            versus = f"{times(cold.floor_ratio(floor))} ({own_floor.module if own_floor else 'n/a'})"
        else:
            versus = "1.00x"
        libraries = "1.00x" if floor is library_floor else ""
        name = f"floor: `{floor.module}`"
        rows.append([name, ms(floor.median_s), times(cold.handler_ratio(floor)), versus, "", libraries, ""])
    for handler in cold.handlers:
        worst = ", ".join(f"{name} {ms(seconds)}" for name, seconds in handler.worst[:4])
        own_floor = cold.floor_for(handler)
        versus = f"{times(cold.floor_ratio(handler))} ({own_floor.module})" if own_floor else "n/a"
        paused_ratio = cold.paused_floor_ratio(handler)
        library_ratio = cold.library_floor_ratio(handler)
        rows.append(
            [
                f"`{handler.module}`",
                ms(handler.median_s),
                times(cold.handler_ratio(handler)),
                versus,
                times(paused_ratio) if paused_ratio is not None else "",
                times(library_ratio) if library_ratio is not None else "",
                worst,
            ]
        )
    memory = [
        f"Peak resident memory after importing `{handler.module}`: **{handler.peak_rss_bytes / 2**20:,.0f} MB** of the "
        f"{worker_memory_mb} MB the worker is configured with (`WORKER.memory_mb`; the high-water mark `VmHWM` of "
        "the same fresh interpreter, its own and not the benchmark's, this host). It is the import footprint, not "
        "a long reply's working set (the conversation's turns, the stream's buffers), which this benchmark does not "
        "measure."
        for handler in cold.handlers
        if handler.peak_rss_bytes is not None
    ]
    size_rows = [
        [
            layer.name,
            f"{layer.unzipped_bytes / 1e6:,.2f} MB",
            f"{layer.zipped_bytes / 1e6:,.2f} MB",
            f"{layer.files:,}",
        ]
        for layer in cold.layers
    ]
    target = cold.layers[0].target if cold.layers else ""
    return [
        "## Cold start",
        "",
        f"Import of each handler in a fresh `python -I -S` (CPython {cold.python}, this host) from the layers built "
        f"for this host, median of {len(cold.bare_samples_s)}; the costliest packages by self time from "
        "`-X importtime`. The worker imports `openai` on its first message, not at import: shown as its own row. "
        "Each handler is also held against its *floor*, the import it cannot do without, measured in the same run "
        "(pyjwt + RSA for the authorizer, boto3 for the routes, boto3 + openai for the worker's first message). "
        "The `traced` rows build the Tracer as a sampled invocation in Lambda does (X-Ray SDK, botocore patched); "
        "unsampled invocations and everything outside Lambda never import the X-Ray SDK (`assistant.tracing`). "
        f"The `÷ libraries` column holds each route against `{LIBRARY_FLOOR}` (boto3, Powertools' `Logger` and "
        "`Metrics`, pydantic with one model built), the libraries every route imports, imported with garbage "
        "collection paused as the routes import them: what a route costs above it is our own code. The library "
        "floor's own `÷ floor` is how much of the boto3 target the libraries use up alone. "
        "Every handler imports with garbage collection paused and then frozen (`assistant.coldstart`), which its "
        "floor, a plain import, does not: the `÷ paused floor` column holds each handler against its floor imported "
        "the same way, which takes the pause's help out and leaves what the handler itself adds.",
        "",
        markdown_table(
            [
                "import",
                "median",
                "÷ bare start",
                "÷ floor",
                "÷ paused floor",
                "÷ libraries",
                "largest contributors (self time)",
            ],
            rows,
        ),
        "",
        *(line for sentence in memory for line in (sentence, "")),
        f"Layer sizes ({target}):",
        "",
        markdown_table(["layer", "unzipped", "zipped", "files"], size_rows),
        "",
    ]
