"""``docs/benchmarks.md`` from the results of one run: machine, tables of ratios to same-run baselines, the plot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from assistant.wiring import WORKER
from scripts.bench import prices
from scripts.bench.authorizer import AuthorizerResult
from scripts.bench.cold_start import LIBRARY_FLOOR, PAUSED, ColdStart
from scripts.bench.frames import FrameComparison
from scripts.bench.machine import Machine
from scripts.bench.polling import ORIGINAL_BACKOFF, PolledReply
from scripts.bench.stats import Summary, ratio
from scripts.bench.streaming import ModelTiming, PipelineReply
from scripts.bench.streaming_cost import (
    LONG_REPLY_FRAMES_PER_1000_TARGET,
    LONG_REPLY_GAP_LIMIT_S,
    LONG_REPLY_GAP_TARGET_S,
    STREAMING_COST_TARGET_PERCENT,
    TOKENS_PER_QUOTE,
    StreamingCost,
    StreamingTally,
    largest_gap_s,
    model_output_usd,
    streaming_pace,
)
from scripts.bench.throughput import ThroughputRun
from scripts.bench.worker_replies import WorkerReply
from scripts.local_stack.offline_model import Pace


@dataclass
class Results:
    machine: Machine
    mode: str
    pace: Pace
    throughput_pace: Pace
    command: str
    pipeline: list[PipelineReply] = field(default_factory=list)
    model: list[ModelTiming] = field(default_factory=list)
    polling: list[PolledReply] = field(default_factory=list)
    frames: FrameComparison | None = None
    #: The worker's own counts and time for the replies of ``pipeline`` (recorded in-process; paired by message id).
    worker_replies: list[WorkerReply] = field(default_factory=list)
    #: The worker's configured memory, what its duration is billed at.
    worker_memory_mb: int = WORKER.memory_mb
    cold_start: ColdStart | None = None
    throughput: list[ThroughputRun] = field(default_factory=list)
    authorizer: AuthorizerResult | None = None
    #: The long prompts again at the fast end of 40-50 tokens/s (``fast_pace``), on the same stack.
    fast_long_replies: list[PipelineReply] = field(default_factory=list)
    fast_pace: Pace | None = None
    #: The same prompts against each offline profile (``openai``: the run above; ``stateless``: a second stack).
    profiles: list[ProfileRun] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    duration_s: float = 0.0


@dataclass
class ProfileRun:
    """First text and frames of one latency batch against one offline model profile."""

    profile: str
    pipeline: list[PipelineReply]
    model: list[ModelTiming]
    frames: FrameComparison


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


def latency_rows(pipeline: Sequence[float], model: Sequence[float], polling: Sequence[float]) -> list[list[str]]:
    """p50/p95 of the three ways to first visible text, each with its ratio to the model's own first token."""
    model_summary = Summary.of(model)
    rows = []
    for name, samples in (
        ("model's own first token (baseline)", model),
        ("pipeline: sendMessage → first delta frame", pipeline),
        ("original design: poll until complete", polling),
    ):
        summary = Summary.of(samples)
        rows.append(
            [
                name,
                str(summary.n),
                ms(summary.p50),
                ms(summary.p95),
                times(ratio(summary.p50, model_summary.p50)),
                times(ratio(summary.p95, model_summary.p95)),
            ]
        )
    return rows


def _latency_section(results: Results) -> list[str]:
    out = ["## Time to first visible text", ""]
    kinds = [("all", None), ("short replies", "short"), ("long replies", "long")]
    for title, kind in kinds:
        pipe = [r.first_text_s for r in results.pipeline if kind is None or r.prompt.kind == kind]
        model = [m.first_token_s for m in results.model if kind is None or m.prompt.kind == kind]
        poll = [p.seen_s for p in results.polling if kind is None or p.prompt.kind == kind]
        if not (pipe and model and poll):
            continue
        out += [f"**{title}**", ""]
        headers = ["path", "n", "p50", "p95", "p50 ÷ model p50", "p95 ÷ model p95"]
        out += [markdown_table(headers, latency_rows(pipe, model, poll)), ""]
    if results.pipeline and results.model and results.polling:
        pipe_p50 = Summary.of([r.first_text_s for r in results.pipeline]).p50
        model_p50 = Summary.of([m.first_token_s for m in results.model]).p50
        poll_p50 = Summary.of([p.seen_s for p in results.polling]).p50
        completed = Summary.of([p.completed_s for p in results.polling])
        out += [
            f"Pipeline overhead at p50: **{ms(pipe_p50 - model_p50)}** on top of the model's first token. "
            f"The original design shows the first text **{times(ratio(poll_p50, pipe_p50))} later** than this "
            f"pipeline at p50 (it must wait for the whole reply, p50 {ms(completed.p50)}, then for the next poll of "
            f"its schedule: first after {ORIGINAL_BACKOFF.first_s:g} s, x{ORIGINAL_BACKOFF.factor:g}, capped at "
            f"{ORIGINAL_BACKOFF.cap_s:g} s). Pipeline time to `done`: p50 "
            f"{ms(Summary.of([r.done_s for r in results.pipeline]).p50)}.",
            "",
        ]
    return out


def _profiles_section(runs: Sequence[ProfileRun]) -> list[str]:
    rows = []
    for run in runs:
        pipe = Summary.of([r.first_text_s for r in run.pipeline])
        model = Summary.of([m.first_token_s for m in run.model])
        rows.append(
            [
                f"`{run.profile}`",
                str(len(run.pipeline)),
                ms(model.p50),
                ms(pipe.p50),
                ms(pipe.p50 - model.p50),
                ms(pipe.p95 - model.p95),
                f"{run.frames.frames_per_1000_tokens()[0]:,.0f}",
            ]
        )
    headers = [
        "offline profile",
        "n",
        "model first token p50",
        "first text p50",
        "overhead p50",
        "overhead p95",
        "frames / 1000 tokens",
    ]
    return [
        "## Both offline model profiles",
        "",
        "The latency prompts again against each dialect of the offline model, with the provider profile that matches "
        "it (`openai`: background responses; `stateless`: `POST /v1/responses` only, as vLLM or Ollama). Overhead is "
        "the pipeline's first text less the model's own first token, measured in the same run.",
        "",
        markdown_table(headers, rows),
        "",
    ]


def _frames_section(frames: FrameComparison) -> list[str]:
    coalesced_per_1000, per_token_per_1000 = frames.frames_per_1000_tokens()
    rows = [
        [
            "one frame per token (baseline)",
            f"{per_token_per_1000:,.0f}",
            str(frames.per_token.frames),
            f"{frames.per_token.wire_bytes:,}",
            f"{1000 * frames.per_token.wire_bytes / frames.tokens:,.0f}",
            "1.00x",
        ],
        [
            "coalesced frames as received",
            f"{coalesced_per_1000:,.0f}",
            str(frames.coalesced.frames),
            f"{frames.coalesced.wire_bytes:,}",
            f"{1000 * frames.coalesced.wire_bytes / frames.tokens:,.0f}",
            f"{times(frames.frame_ratio())} frames, {times(frames.wire_byte_ratio())} bytes",
        ],
    ]
    headers = ["delta frames", "frames / 1000 tokens", "frames", "bytes on the wire", "bytes / 1000 tokens", "ratio"]
    return [
        "## Frames and bytes per reply",
        "",
        f"Over the same {frames.tokens:,} output tokens (the replies of the latency run). Bytes include the "
        "WebSocket frame header (API Gateway does not compress); the baseline wraps each token in the same "
        "`delta` envelope the worker uses.",
        "",
        markdown_table(headers, rows),
        "",
        f"Every `PostToConnection` is an API Gateway request: **{times(ratio(1, frames.frame_ratio()))} fewer** "
        "requests than one per token (checkpoint writes and what both cost: the next section).",
        "",
    ]


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


def _verdict(value: float, target: float) -> str:
    return "met" if value <= target else "**not met**"


def _streaming_tallies(results: Results) -> list[tuple[str, StreamingTally]]:
    """``(label, tally)`` for all replies and for the long ones, each paired with what the worker counted for it."""
    worker = {reply.message_id: reply for reply in results.worker_replies}
    pairs = [(reply, worker[reply.message_id]) for reply in results.pipeline if reply.message_id in worker]
    long_pairs = [(reply, counted) for reply, counted in pairs if reply.prompt.kind == "long"]
    tallies = [("all replies", StreamingTally.of(pairs))] if pairs else []
    if long_pairs:
        tallies.append(("long replies", StreamingTally.of(long_pairs)))
    return tallies


def _cost_arithmetic(label: str, cost: StreamingCost, width: int) -> str:
    return (
        f"{label + ':':<{width}} ({cost.frames_per_1000:>7,.1f} * {dollars_per_million(prices.WEBSOCKET_MESSAGE_USD)}"
        f" + {cost.checkpoint_writes_per_1000:>7,.1f} * "
        f"{dollars_per_million(prices.DYNAMODB_WRITE_REQUEST_UNIT_USD)}) / 1M = {usd(cost.usd)}"
        f" / {usd(model_output_usd())} = {percent(cost.percent_of_model)}"
    )


def _streaming_cost_section(results: Results) -> list[str]:
    tallies = _streaming_tallies(results)
    if not tallies:
        return []
    overall = tallies[0][1]
    baseline = StreamingCost.one_per_token()
    count_rows = [
        [
            "one frame and one checkpoint write per token (baseline)",
            str(overall.replies),
            f"{overall.output_tokens:,}",
            f"{TOKENS_PER_QUOTE:,}",
            "1.00x",
            f"{TOKENS_PER_QUOTE:,}",
            "1.00x",
            f"{overall.output_tokens / overall.replies:,.1f}",
        ]
    ]
    for label, tally in tallies:
        cost = tally.cost()
        count_rows.append(
            [
                label,
                str(tally.replies),
                f"{tally.output_tokens:,}",
                f"{cost.frames_per_1000:,.1f}",
                times(ratio(cost.frames_per_1000, baseline.frames_per_1000)),
                f"{cost.checkpoint_writes_per_1000:,.1f}",
                times(ratio(cost.checkpoint_writes_per_1000, baseline.checkpoint_writes_per_1000)),
                f"{tally.checkpoint_writes / tally.replies:,.1f}",
            ]
        )
    count_headers = [
        "replies",
        "n",
        "output tokens",
        "delta frames / 1000 tokens",
        "÷ baseline",
        "checkpoint writes / 1000 tokens",
        "÷ baseline",
        "checkpoint writes / reply",
    ]
    received = (
        "the client received exactly the frames the worker posted"
        if overall.received_frames == overall.frames
        else f"the client received {overall.received_frames:,} `delta` frames, the worker counted {overall.frames:,}"
    )
    out = [
        "## Streaming cost per 1000 output tokens",
        "",
        "Every `delta` frame is an API Gateway WebSocket message and every checkpoint an on-demand DynamoDB write. "
        "The original design posted one frame per token and wrote a checkpoint per frame: that is the baseline, over "
        "the same replies and tokens. Frames and checkpoint writes are the worker's own counts (`ReplyOutcome`, "
        "which it also emits as metrics), recorded in this process during the latency run (`openai` profile; "
        f"{received}); tokens are each reply's `outputTokens`.",
        "",
        markdown_table(count_headers, count_rows),
        "",
    ]
    out += _long_reply_gaps(results, tallies)
    out += _cost_rows(tallies, baseline)
    out += _worker_duration_rows(results, tallies)
    return out


def _long_reply_gaps(results: Results, tallies: list[tuple[str, StreamingTally]]) -> list[str]:
    long_tally = dict(tallies).get("long replies")
    long_replies = [r for r in results.pipeline if r.prompt.kind == "long"]
    if long_tally is None:
        return []
    rows = [
        row
        for row in (
            _long_reply_row(long_replies, long_tally.per_1000_tokens(long_tally.frames)),
            _long_reply_row(results.fast_long_replies, _client_frames_per_1000(results.fast_long_replies)),
        )
        if row is not None
    ]
    if not rows:
        return []
    headers = [
        "long replies (n)",
        "tokens/s at the client (p50)",
        "delta frames / 1000 tokens",
        "largest gap p50",
        "largest gap p95",
        "largest gap max",
    ]
    return [
        "**Long replies: fewer frames, no visible pause.** For each long reply, the largest gap between consecutive "
        "`delta` frames at the client while its text flows (first to last `delta`); p50, p95 and max over the long "
        f"replies.{_per_token_gap(results.pace)} The pace the text reached the client at (its tokens after the "
        "first over the time from the first `delta` to the last) shows what the frames were cut from."
        f"{_fast_pace_note(results)}",
        "",
        markdown_table(headers, rows),
        "",
    ]


def _long_reply_row(replies: list[PipelineReply], frames_per_1000: float | None) -> list[str] | None:
    measured = [gap for r in replies if (gap := largest_gap_s(r.delta_at_s)) is not None]
    if not measured or frames_per_1000 is None:
        return None
    worst = Summary.of(measured)
    paces = [pace for r in replies if (pace := streaming_pace(r.delta_at_s, r.output_tokens)) is not None]
    return [
        str(len(measured)),
        f"{Summary.of(paces).p50:.1f}" if paces else "",
        f"{frames_per_1000:,.1f} (target ≤ {LONG_REPLY_FRAMES_PER_1000_TARGET}: "
        f"{_verdict(frames_per_1000, LONG_REPLY_FRAMES_PER_1000_TARGET)})",
        ms(worst.p50),
        ms(worst.p95),
        f"{ms(worst.maximum)} (target ≤ ~{ms(LONG_REPLY_GAP_TARGET_S)}, within 5 %: "
        f"{_verdict(worst.maximum, LONG_REPLY_GAP_LIMIT_S)})",
    ]


def _client_frames_per_1000(replies: list[PipelineReply]) -> float | None:
    """``delta`` frames the client received per 1000 output tokens (``None`` without tokens)."""
    tokens = sum(r.output_tokens for r in replies)
    return 1000 * sum(len(r.delta_at_s) for r in replies) / tokens if tokens else None


def _fast_pace_note(results: Results) -> str:
    if results.fast_pace is None or not results.fast_long_replies:
        return ""
    return (
        f" The second row: the long prompts again with the model at {results.fast_pace.tokens_per_s:g} tokens/s, "
        "the fast end of the issue's 40-50 (frames as the client counted them)."
    )


def _per_token_gap(pace: Pace) -> str:
    if pace.tokens_per_s <= 0:
        return ""
    return f" One frame per token would arrive every {ms(1 / pace.tokens_per_s)} at this run's pace."


def _model_typing_time(pace: Pace) -> str:
    if pace.tokens_per_s <= 0:
        return ""
    return (
        f": at this run's pace (first token after {pace.first_token_s:g} s, then {pace.tokens_per_s:g} tokens/s) "
        f"{TOKENS_PER_QUOTE:,} tokens alone take {TOKENS_PER_QUOTE / pace.tokens_per_s:g} s"
    )


def _cost_rows(tallies: list[tuple[str, StreamingTally]], baseline: StreamingCost) -> list[str]:
    message_price = dollars_per_million(prices.WEBSOCKET_MESSAGE_USD)
    write_price = dollars_per_million(prices.DYNAMODB_WRITE_REQUEST_UNIT_USD)
    model_price = dollars_per_million(prices.MODEL_OUTPUT_TOKEN_USD)
    costs = [("one frame and one write per token (baseline)", baseline)] + [
        (label, tally.cost()) for label, tally in tallies
    ]
    rows = [
        [
            label,
            usd(cost.messages_usd),
            usd(cost.writes_usd),
            usd(cost.usd),
            times(ratio(cost.usd, baseline.usd)),
            percent(cost.percent_of_model),
        ]
        for label, cost in costs
    ]
    headers = [
        "per 1000 output tokens",
        f"messages at {message_price}/M",
        f"checkpoint writes at {write_price}/M",
        "streaming",
        "÷ baseline",
        f"÷ {prices.MODEL_NAME} output",
    ]
    width = max(len(label) for label, _ in costs) + 1
    verdicts = "; ".join(
        f"{label} {percent(cost.percent_of_model)}, {_verdict(cost.percent_of_model, STREAMING_COST_TARGET_PERCENT)}"
        for label, cost in costs[1:]
    )
    return [
        f"**What streaming costs, as a share of the model's price.** Per 1000 output tokens: (delta frames * "
        f"{message_price} per million API Gateway messages + checkpoint writes * {write_price} per million DynamoDB "
        f"write request units) ÷ {prices.MODEL_NAME}'s output price, {model_price} per million tokens "
        f"({usd(model_output_usd())} per 1000). Target: ≤ {STREAMING_COST_TARGET_PERCENT:g} % ({verdicts}). Prices: "
        '`scripts/bench/prices.py`, as docs/scaling.md ("Prices used"); a frame is under 32 KB (one message) and '
        "the message record a checkpoint updates is under 1 KB (one write request unit).",
        *_table_with_arithmetic(headers, rows, [_cost_arithmetic(label, cost, width) for label, cost in costs]),
        "Not in these rows: each reply's fixed writes (claim, usage, finish: a handful per reply, not per token), "
        "SQS, and the route handlers; docs/scaling.md has the whole bill.",
        "",
    ]


def _worker_duration_rows(results: Results, tallies: list[tuple[str, StreamingTally]]) -> list[str]:
    gb = results.worker_memory_mb / 1024
    rows = []
    arithmetic = []
    width = max(len(label) for label, _ in tallies) + 1
    for label, tally in tallies:
        duration = tally.worker_duration(results.worker_memory_mb)
        rows.append(
            [
                label,
                f"{tally.worker_s:,.1f} s",
                times(ratio(tally.worker_s, tally.reply_s)),
                f"{duration.gb_s_per_1000:,.2f}",
                usd(duration.usd),
                percent(duration.percent_of_model),
            ]
        )
        arithmetic.append(
            f"{label + ':':<{width}} {tally.worker_s:,.1f} s * {gb:g} GB / {tally.output_tokens:,} tokens * 1000 = "
            f"{duration.gb_s_per_1000:,.2f} GB-s * ${prices.LAMBDA_ARM64_GB_SECOND_USD:.10f} = {usd(duration.usd)} "
            f"/ {usd(model_output_usd())} = {percent(duration.percent_of_model)}"
        )
    headers = [
        "worker",
        "invocation time",
        "÷ sendMessage → done",
        "GB-s / 1000 tokens",
        "$ / 1000 tokens",
        f"÷ {prices.MODEL_NAME} output",
    ]
    pace = results.pace
    return [
        f"**The worker's duration beside it.** Lambda bills the worker's whole invocation at its configured memory "
        f"(`WORKER.memory_mb` = {results.worker_memory_mb} MB), at "
        f"${prices.LAMBDA_ARM64_GB_SECOND_USD:.10f} per GB-second (arm64). Invocation time is the wall time of "
        "`ReplyService.handle` for each reply, measured in this process. The worker mostly waits on the model: its "
        "time is about the reply's streaming time (the `÷ sendMessage → done` column), so this row follows the "
        f"model's speed, not our code{_model_typing_time(pace)}.",
        *_table_with_arithmetic(headers, rows, arithmetic),
    ]


def _table_with_arithmetic(headers: list[str], rows: list[list[str]], arithmetic: list[str]) -> list[str]:
    """A table, then the arithmetic behind each of its rows in a code block (each after a blank line)."""
    return ["", markdown_table(headers, rows), "", "```", *arithmetic, "```", ""]


def _cold_start_section(cold: ColdStart, worker_memory_mb: int) -> list[str]:
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


def _throughput_section(results: Results) -> list[str]:
    runs = results.throughput
    base = next((r for r in runs if r.users == 1), runs[0])
    rows = []
    for run in runs:
        first = run.first_text()
        first_message = Summary.of(run.first_text_first_message_s) if run.first_text_first_message_s else first
        audit = run.audit
        rows.append(
            [
                f"{run.users} x {run.messages_per_user}",
                f"{run.answered}/{run.users * run.messages_per_user}",
                f"{run.messages_per_s:.2f}",
                times(ratio(run.messages_per_s, base.messages_per_s)),
                f"{ms(first_message.p50)} / {ms(first_message.p95)}",
                f"{ms(first.p50)} / {ms(first.p95)}",
                f"{run.frames_per_reply:.1f}",
                f"{audit.lost} / {audit.duplicated} / {audit.reordered} / {audit.incomplete}",
            ]
        )
    headers = [
        "users x messages",
        "answered",
        "messages/s",
        "÷ 1 user",
        "first text, 1st message p50 / p95",
        "first text, all p50 / p95",
        "frames / reply",
        "lost / dup / reordered / incomplete",
    ]
    pace = results.throughput_pace
    return [
        "## Throughput",
        "",
        f"All users send their messages at once (each waits only for `accepted` before its next one, so the send "
        f"order is the accepted order). Model pace here: first token after {pace.first_token_s:g} s, then "
        f"{pace.tokens_per_s:g} tokens/s, faster than the latency run so the steps measure the pipeline rather "
        f"than the model typing. Poller concurrency (`LocalStackSettings.poller_concurrency`, Lambda's concurrent "
        f"FIFO batches): **{base.poller_concurrency}**. A fresh stack per step. The audit checks, per user, one "
        "`done` per accepted `messageId`, `seq` 0..n without gap or repeat adding up to `outputTokens`, and "
        "replies in send order, one at a time.",
        "",
        markdown_table(headers, rows),
        "",
    ]


def _authorizer_section(auth: AuthorizerResult) -> list[str]:
    rows = [
        [
            "JWKS fetched on every call (original, baseline)",
            f"{auth.cold.per_s:,.0f}",
            str(auth.jwks_fetches_cold),
            "1.00x",
        ],
        [
            "warm JWKS cache (`TokenVerifier`)",
            f"{auth.warm.per_s:,.0f}",
            str(auth.jwks_fetches_warm),
            times(auth.speedup),
        ],
    ]
    return [
        "## Authorizer",
        "",
        "RS256 access tokens minted here, verified by `assistant.token_verifier.TokenVerifier` (signature, issuer, "
        "times, `token_use`, `client_id`), single thread. The JWKS is served over HTTP on 127.0.0.1: a loopback fetch "
        "costs far less than one to Cognito, so the real ratio is larger.",
        "",
        markdown_table(["verifier", "verifications/s", "JWKS fetches", "ratio"], rows),
        "",
    ]


#: Sections measured outside ``make bench`` (one-off measurements with their method); a bench run keeps them.
KEPT_SECTION_HEADINGS = ("## Bytecode in the Lambda assets",)


def kept_sections(previous: str) -> str:
    """The kept sections of the previous report, from the first kept heading to the end."""
    starts = [previous.index(heading) for heading in KEPT_SECTION_HEADINGS if heading in previous]
    return "\n" + previous[min(starts) :] if starts else ""


def render(results: Results) -> str:
    machine = results.machine
    pace = results.pace
    out = [
        "# Benchmarks",
        "",
        f"Generated by `{results.command}` ({results.mode} run, {results.duration_s:.0f} s). Every number is "
        "paired with a baseline measured in the same run on the same machine: read the ratios, not the absolute "
        "times, when comparing machines.",
        "",
        f"- Machine: {machine.one_line()}",
        "- Packages: " + ", ".join(f"{name} {version}" for name, version in machine.packages.items()),
        f"- Offline model pace (latency and frames): first token after {pace.first_token_s:g} s, then "
        f"{pace.tokens_per_s:g} tokens/s",
        "- Everything runs in one process on 127.0.0.1: moto's server, the gateway, the poller, the handlers, the "
        "offline model and the clients, so absolute numbers include their competition for the cores.",
        "",
        "![TTFT distributions and frames per reply](benchmarks.png)",
        "",
        "## How to reproduce",
        "",
        "```bash",
        "make bench                          # the full run (≈ 5-10 min on 2 cores): rewrites this file and the plot",
        ".venv/bin/python -m scripts.bench --quick   # ≈ 2 min, smaller samples, into .local/bench/ (untracked)",
        "```",
        "",
    ]
    if results.pipeline and results.model and results.polling:
        out += _latency_section(results)
    if results.frames is not None:
        out += _frames_section(results.frames)
    if results.pipeline and results.worker_replies:
        out += _streaming_cost_section(results)
    if results.profiles:
        out += _profiles_section(results.profiles)
    if results.throughput:
        out += _throughput_section(results)
    if results.cold_start is not None:
        out += _cold_start_section(results.cold_start, results.worker_memory_mb)
    if results.authorizer is not None:
        out += _authorizer_section(results.authorizer)
    if results.findings:
        out += ["## Findings", ""] + [f"- {finding}" for finding in results.findings] + [""]
    return "\n".join(out)
