"""The benchmark's arithmetic and report writer, on given samples; and a tiny run of the cheapest benchmark."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from assistant.protocol import Delta
from assistant.queue import QueuedMessage
from assistant.reply import DeliveryReport, DeliveryResult, ReplyService
from scripts.bench import (
    authorizer,
    cold_start,
    frames,
    machine,
    markdown,
    prices,
    report,
    route_imports,
    streaming,
    streaming_cost,
)
from scripts.bench.harness import Received
from scripts.bench.layers import HostLayers
from scripts.bench.markdown import markdown_table
from scripts.bench.polling import ORIGINAL_BACKOFF, latency_rows
from scripts.bench.stats import Summary, percentile, ratio
from scripts.bench.throughput import audit_user
from scripts.bench.worker_replies import WorkerReply, recording_worker_replies
from scripts.local_stack.offline_model import Pace


def test_percentile_interpolates_between_ranks() -> None:
    samples = [4.0, 1.0, 3.0, 2.0]
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 50) == 2.5
    assert percentile(samples, 95) == pytest.approx(3.85)
    assert percentile(samples, 100) == 4.0
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


def test_ratio_never_divides_by_zero() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert math.isinf(ratio(1.0, 0.0))
    assert math.isnan(ratio(0.0, 0.0))


def test_latency_rows_are_ratios_to_the_model_baseline() -> None:
    model = [0.30, 0.30, 0.30, 0.40]
    pipeline = [0.45, 0.50, 0.55, 0.60]
    polling = [2.0, 2.0, 2.0, 3.8]
    rows = latency_rows(pipeline, model, polling)
    assert rows[0] == ["model's own first token (baseline)", "4", "300 ms", "385 ms", "1.00x", "1.00x"]
    assert rows[1] == ["pipeline: sendMessage → first delta frame", "4", "525 ms", "592 ms", "1.75x", "1.54x"]
    assert rows[2][2:] == ["2,000 ms", "3,530 ms", "6.67x", "9.17x"]
    table = markdown_table(["path", "n", "p50", "p95", "a", "b"], rows)
    assert table.splitlines()[1] == "|---|---|---|---|---|---|"
    assert "| model's own first token (baseline) | 4 | 300 ms | 385 ms | 1.00x | 1.00x |" in table


def test_summary_of_samples() -> None:
    summary = Summary.of([1.0, 2.0, 3.0])
    assert (summary.n, summary.p50, summary.mean, summary.minimum, summary.maximum) == (3, 2.0, 2.0, 1.0, 3.0)


def test_original_backoff_schedule() -> None:
    times = []
    for poll_at in ORIGINAL_BACKOFF.poll_times():
        times.append(round(poll_at, 4))
        if len(times) == 9:
            break
    assert times == [0.8, 2.0, 3.8, 6.5, 10.55, 16.625, 25.7375, 35.7375, 45.7375]


def test_per_token_baseline_uses_the_workers_envelope_and_websocket_headers() -> None:
    tokens = frames.model_tokens("Hello there, world")
    assert tokens == ["Hello", " there,", " world"]
    baseline = frames.per_token_baseline("m1", tokens)
    expected = [len(Delta(message_id="m1", seq=i, text=t).to_json().encode()) for i, t in enumerate(tokens)]
    assert baseline.frames == 3
    assert baseline.payload_bytes == sum(expected)
    assert baseline.wire_bytes == sum(expected) + 3 * 2  # each payload is under 126 bytes: a 2-byte header
    assert frames.websocket_header_bytes(125) == 2
    assert frames.websocket_header_bytes(126) == 4
    assert frames.websocket_header_bytes(70_000) == 10


def test_frame_comparison_over_replies() -> None:
    text = " ".join(["word"] * 10)
    comparison = frames.compare([("m1", text, [60, 70])])
    assert comparison.tokens == 10
    assert comparison.coalesced.frames == 2
    assert comparison.frames_per_1000_tokens() == (200.0, 1000.0)
    assert comparison.frame_ratio() == pytest.approx(0.2)
    assert comparison.coalesced.wire_bytes == 60 + 70 + 4


def _frames(*bodies: dict[str, object]) -> list[Received]:
    return [Received(at=float(i), payload_bytes=10, body=dict(body)) for i, body in enumerate(bodies)]


def _reply(message_id: str, *texts: str) -> list[dict[str, object]]:
    deltas: list[dict[str, object]] = [
        {"type": "delta", "messageId": message_id, "seq": seq, "text": text} for seq, text in enumerate(texts)
    ]
    tokens = frames.reported_output_tokens("".join(texts))
    return [*deltas, {"type": "done", "messageId": message_id, "usage": {"outputTokens": tokens}}]


def test_audit_of_a_clean_user() -> None:
    received = _frames(
        {"type": "accepted", "messageId": "a"},
        {"type": "accepted", "messageId": "b"},
        *_reply("a", "Hi", " there"),
        *_reply("b", "Bye"),
    )
    assert audit_user(["a", "b"], received).clean


def test_audit_counts_a_reply_by_the_usage_the_offline_model_reports_not_by_its_streamed_tokens() -> None:
    # "Internationalization" is one streamed token but two usage tokens (a word over ten letters is split, as a BPE
    # vocabulary splits a rare word): a reply whose usage says 2 is complete, one that says 1 is not.
    text = "Internationalization"
    assert len(frames.model_tokens(text)) == 1
    assert frames.reported_output_tokens(text) == 2
    complete = _frames({"type": "accepted", "messageId": "a"}, *_reply("a", text))
    assert audit_user(["a"], complete).clean
    short = _frames(
        {"type": "accepted", "messageId": "a"},
        {"type": "delta", "messageId": "a", "seq": 0, "text": text},
        {"type": "done", "messageId": "a", "usage": {"outputTokens": 1}},
    )
    assert audit_user(["a"], short).incomplete == 1


def test_audit_counts_lost_duplicated_reordered_and_incomplete() -> None:
    lost = _frames({"type": "accepted", "messageId": "a"})
    assert audit_user(["a"], lost).lost == 1
    duplicated = _frames({"type": "accepted", "messageId": "a"}, *_reply("a", "Hi"), *_reply("a", "Hi")[-1:])
    assert audit_user(["a"], duplicated).duplicated == 1
    swapped = _frames(
        {"type": "accepted", "messageId": "a"},
        {"type": "accepted", "messageId": "b"},
        *_reply("b", "Bye"),
        *_reply("a", "Hi"),
    )
    assert audit_user(["a", "b"], swapped).reordered > 0
    gap = _frames(
        {"type": "accepted", "messageId": "a"},
        {"type": "delta", "messageId": "a", "seq": 1, "text": "x"},
        {"type": "done", "messageId": "a", "usage": {"outputTokens": 1}},
    )
    assert audit_user(["a"], gap).incomplete == 1


def test_authorizer_benchmark_smoke() -> None:
    result = authorizer.run(max_calls=20, max_s=5.0)
    assert result.warm.calls == 20
    assert result.cold.calls == 20
    # The point of the cache: no fetch per call when warm, one per call without it.
    assert result.jwks_fetches_warm == 0
    assert result.jwks_fetches_cold == 20
    assert result.speedup > 0


# --- Streaming cost, frame gaps and the worker's duration (issue #12, item 6) -----------------------------------


def _machine() -> machine.Machine:
    return machine.Machine(cpu_model="Test CPU", cores=2, memory_gib=4, python="3.11.7", os="Linux")


def _results(**fields: Any) -> report.Results:
    pace = Pace(first_token_s=0.3, tokens_per_s=40)
    return report.Results(machine=_machine(), mode="test", pace=pace, throughput_pace=pace, command="test", **fields)


def _pipeline_reply(
    kind: streaming.ReplyKind, message_id: str, *, tokens: int, delta_at_s: tuple[float, ...], done_s: float
) -> streaming.PipelineReply:
    return streaming.PipelineReply(
        prompt=streaming.Prompt(kind, "prompt"),
        message_id=message_id,
        first_text_s=delta_at_s[0],
        done_s=done_s,
        text=" ".join(["word"] * tokens),
        output_tokens=tokens,
        delta_sizes=tuple(100 for _ in delta_at_s),
        delta_at_s=delta_at_s,
        all_sizes=tuple(100 for _ in delta_at_s),
    )


def _worker_reply(message_id: str, *, frames: int, checkpoints: int, tokens: int, seconds: float) -> WorkerReply:
    return WorkerReply(
        message_id=message_id,
        deliveries=1,
        frames=frames,
        checkpoint_writes=checkpoints,
        output_tokens=tokens,
        duration_s=seconds,
        result="done",
    )


def _streaming_results() -> report.Results:
    """A short reply (50 tokens, 5 frames, 2 checkpoints, 2 s) and a long one (400 tokens, 30 frames, 10 checkpoints,
    10 s; its largest gap between frames 0.32 s): 450 tokens, 35 frames, 12 checkpoints, 12 s of the worker."""
    short = _pipeline_reply("short", "s-0", tokens=50, delta_at_s=(0.4, 0.5, 0.7, 1.0, 1.5), done_s=2.0)
    long_arrivals = (0.4, *(0.5 + 0.3 * i for i in range(28)), 0.5 + 0.3 * 27 + 0.32)
    long = _pipeline_reply("long", "l-0", tokens=400, delta_at_s=long_arrivals, done_s=10.0)
    return _results(
        pipeline=[short, long],
        # Not in the pipeline's order: the report pairs them by message id.
        worker_replies=[
            _worker_reply("l-0", frames=30, checkpoints=10, tokens=400, seconds=10.0),
            _worker_reply("s-0", frames=5, checkpoints=2, tokens=50, seconds=2.0),
        ],
        worker_memory_mb=1024,
    )


def test_streaming_cost_per_1000_tokens_against_the_model_price() -> None:
    baseline = streaming_cost.StreamingCost.one_per_token()
    # (1000 x $1.00 + 1000 x $0.625) per million = $0.001625 per 1000 tokens, against gpt-5-mini's $0.002.
    assert baseline.usd == pytest.approx(0.001625)
    assert baseline.percent_of_model == pytest.approx(81.25)
    measured = streaming_cost.StreamingCost(frames_per_1000=80, checkpoint_writes_per_1000=20)
    assert measured.messages_usd == pytest.approx(80e-6)
    assert measured.writes_usd == pytest.approx(12.5e-6)
    assert measured.percent_of_model == pytest.approx(100 * 92.5e-6 / 0.002)  # 4.625 %
    assert prices.model_output_usd() == pytest.approx(0.002)


def test_streaming_tally_pairs_client_and_worker_counts() -> None:
    results = _streaming_results()
    tally = streaming_cost.StreamingTally.of(
        zip(results.pipeline, reversed(results.worker_replies), strict=True)  # the same message ids, in order
    )
    assert (tally.replies, tally.output_tokens, tally.frames, tally.checkpoint_writes) == (2, 450, 35, 12)
    assert tally.received_frames == 35
    assert tally.cost().frames_per_1000 == pytest.approx(1000 * 35 / 450)
    assert tally.cost().checkpoint_writes_per_1000 == pytest.approx(1000 * 12 / 450)
    # 12 s at 1 GB over 450 tokens: 26.67 GB-s per 1000 tokens, x $0.0000133334 = $0.000356 = 17.8 % of $0.002.
    duration = tally.worker_duration(memory_mb=1024)
    assert duration.gb_s_per_1000 == pytest.approx(1000 * 12 / 450)
    assert duration.usd == pytest.approx(1000 * 12 / 450 * 0.0000133334)
    assert duration.percent_of_model == pytest.approx(100 * duration.usd / 0.002)
    assert tally.worker_duration(memory_mb=512).gb_s_per_1000 == pytest.approx(duration.gb_s_per_1000 / 2)


def test_largest_gap_between_frames() -> None:
    assert streaming_cost.largest_gap_s([0.5, 0.6, 1.0, 1.1]) == pytest.approx(0.4)
    assert streaming_cost.largest_gap_s([0.5]) is None
    assert streaming_cost.largest_gap_s([]) is None


def test_streaming_pace_counts_the_tokens_after_the_first_over_first_to_last_frame() -> None:
    # 41 tokens, the first in the first frame, the other 40 over the 1 s to the last frame: 40 tokens/s.
    assert streaming_cost.streaming_pace([2.0, 1.0, 1.5], output_tokens=41) == pytest.approx(40.0)
    assert streaming_cost.streaming_pace([1.0], output_tokens=41) is None
    assert streaming_cost.streaming_pace([1.0, 1.0], output_tokens=41) is None


def test_report_shows_checkpoints_gaps_cost_and_worker_duration() -> None:
    text = report.render(_streaming_results())
    section = text[text.index("## Streaming cost per 1000 output tokens") :]
    assert "the client received exactly the frames the worker posted" in section
    # Counts per 1000 tokens, against one frame and one checkpoint write per token.
    assert (
        "| one frame and one checkpoint write per token (baseline) | 2 | 450 | 1,000 | 1.00x | 1,000 | 1.00x | 225.0 |"
        in section
    )
    assert "| all replies | 2 | 450 | 77.8 | 0.08x | 26.7 | 0.03x | 6.0 |" in section
    assert "| long replies | 1 | 400 | 75.0 | 0.07x | 25.0 | 0.03x | 10.0 |" in section
    # Long replies: 30 frames per 400 tokens; the largest gap is the last one, 320 ms. The 399 tokens after the first
    # reached the client over 8.52 s (0.4 s to 8.92 s): 46.8 tokens/s.
    assert (
        "| 1 | 46.8 | 75.0 (target ≤ 80: met) | 320 ms | 320 ms | 320 ms (target ≤ ~350 ms, within 5 %: met) |"
        in section
    )
    assert "every 25 ms at this run's pace" in section
    # Cost, with its arithmetic: (77.8 x $1.00 + 26.7 x $0.625) / 1M = $0.0000944 = 4.7 % of $0.002.
    assert "(**not met**" not in section
    assert "Target: ≤ 5 % (all replies 4.7 %, met; long replies 4.5 %, met)" in section
    assert (
        "| one frame and one write per token (baseline) | $0.0010000 | $0.0006250 | $0.0016250 | 1.00x | 81.2 % |"
        in (section)
    )
    assert "| all replies | $0.0000778 | $0.0000167 | $0.0000944 | 0.06x | 4.7 % |" in section
    assert "(   77.8 * $1.00 +    26.7 * $0.625) / 1M = $0.0000944 / $0.0020000 = 4.7 %" in section
    assert "(   75.0 * $1.00 +    25.0 * $0.625) / 1M = $0.0000906 / $0.0020000 = 4.5 %" in section
    # The worker: 12 s at 1 GB over 450 tokens; its time against the replies' sendMessage -> done time (12 s).
    assert "| all replies | 12.0 s | 1.00x | 26.67 | $0.0003556 | 17.8 % |" in section
    assert "12.0 s * 1 GB / 450 tokens * 1000 = 26.67 GB-s * $0.0000133334 = $0.0003556 / $0.0020000 = 17.8 %" in (
        section
    )
    assert "1,000 tokens alone take 25 s" in section


def test_report_says_when_a_target_is_missed_and_when_counts_disagree() -> None:
    results = _streaming_results()
    results.worker_replies[0] = _worker_reply("l-0", frames=40, checkpoints=10, tokens=400, seconds=10.0)
    text = report.render(results)
    assert "the client received 35 `delta` frames, the worker counted 45" in text
    assert "100.0 (target ≤ 80: **not met**)" in text
    assert "Target: ≤ 5 % (all replies 5.8 %, **not met**; long replies 5.8 %, **not met**)" in text


def test_report_without_worker_counts_has_no_cost_section() -> None:
    results = _streaming_results()
    results.worker_replies = []
    assert "## Streaming cost" not in report.render(results)
    results.worker_replies = [_worker_reply("other", frames=1, checkpoints=1, tokens=1, seconds=1.0)]
    assert "## Streaming cost" not in report.render(results)


def test_dollars_per_million() -> None:
    assert markdown.dollars_per_million(1.00 / 1_000_000) == "$1.00"
    assert markdown.dollars_per_million(0.625 / 1_000_000) == "$0.625"
    assert markdown.dollars_per_million(2.00 / 1_000_000) == "$2.00"


def test_worker_reply_log_records_each_handle_call_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def handle(self: ReplyService, queued: QueuedMessage, *, attempt: int, deadline: float | None = None) -> Any:
        calls.append(queued.message_id)
        if queued.message_id == "broken":
            raise RuntimeError("the model went away")
        return DeliveryReport(DeliveryResult.DONE, output_tokens=40, frames=6, checkpoint_writes=2)

    monkeypatch.setattr(ReplyService, "handle", handle)
    service = object.__new__(ReplyService)  # the stand-in above needs none of its collaborators

    def queued(message_id: str) -> QueuedMessage:
        return QueuedMessage(
            user_id="u", message_id=message_id, conversation_id="c", text="hi", connection_id="x", received_at=0.0
        )

    with recording_worker_replies() as log:
        service.handle(queued("m1"), attempt=1)
        with pytest.raises(RuntimeError):
            service.handle(queued("broken"), attempt=1)
        service.handle(queued("m1"), attempt=2)  # a redelivery: summed into the same reply
        assert log.wait_for(["m1"], timeout_s=0.1)
        assert not log.wait_for(["m1", "broken"], timeout_s=0.01)  # it raised: no outcome to wait for
    assert ReplyService.handle is handle  # put back
    service.handle(queued("after"), attempt=1)
    first, broken = log.replies(["m1", "broken"])
    assert (first.deliveries, first.frames, first.checkpoint_writes, first.output_tokens) == (2, 12, 4, 80)
    assert first.result == "done"
    assert first.duration_s >= 0
    assert (broken.deliveries, broken.frames, broken.result) == (1, 0, "raised")
    with pytest.raises(LookupError, match="after"):
        log.replies(["after"])
    assert calls == ["m1", "broken", "m1", "after"]


# --- Cold start: the routes' library floor and the worker's peak memory ------------------------------------------


def _import(module: str, median_s: float, *, peak_rss_bytes: int | None = None) -> cold_start.HandlerImport:
    return cold_start.HandlerImport(module, (median_s,), worst=(), peak_rss_bytes=peak_rss_bytes)


def _cold_start() -> cold_start.ColdStart:
    return cold_start.ColdStart(
        python="3.11.7",
        bare_samples_s=(0.010,),
        handlers=(
            _import("connect", 0.300),
            _import("worker", 0.400),
            _import("worker + openai", 0.800, peak_rss_bytes=133 * 2**20),
        ),
        layers=(),
        floors=(
            _import("boto3", 0.200),
            _import("boto3 + openai", 0.700),
            _import(cold_start.LIBRARY_FLOOR, 0.250),
        ),
    )


def test_routes_are_held_against_the_library_floor_too() -> None:
    cold = _cold_start()
    connect, worker, _ = cold.handlers
    assert cold.library_floor_ratio(connect) == pytest.approx(1.2)
    assert cold.library_floor_ratio(worker) is None  # not a route
    assert cold.floor_ratio(connect) == pytest.approx(1.5)  # the boto3 target's column is unchanged
    assert set(cold_start.ROUTE_HANDLERS) == {"connect", "disconnect", "default", "send_message", "commands"}
    text = report.render(_results(cold_start=cold, worker_memory_mb=1024))
    assert (
        "| import | median | ÷ bare start | ÷ floor | ÷ paused floor | ÷ libraries | largest contributors (self time) |"
        in text
    )
    assert "| floor: `boto3 + Powertools + pydantic` | 250 ms | 25.0x | 1.25x (boto3) |  | 1.00x |  |" in text
    assert "| `connect` | 300 ms | 30.0x | 1.50x (boto3) |  | 1.20x |  |" in text
    assert "| `worker` | 400 ms | 40.0x | 2.00x (boto3) |  |  |  |" in text
    assert "| `worker + openai` | 800 ms | 80.0x | 1.14x (boto3 + openai) |  |  |  |" in text
    assert "after importing `worker + openai`: **133 MB** of the 1024 MB the worker is configured with" in text


def test_handlers_are_held_against_their_floor_imported_with_collection_paused_too() -> None:
    """The handlers import with garbage collection paused; the paused floor takes that help out of the ratio."""
    cold = _cold_start()
    cold = dataclasses.replace(
        cold,
        floors=(
            *cold.floors,
            _import("boto3 (collection paused)", 0.160),
            _import("boto3 + openai (collection paused)", 0.640),
        ),
    )
    connect, _, worker_openai = cold.handlers
    assert cold.paused_floor_ratio(connect) == pytest.approx(300 / 160)
    assert cold.paused_floor_ratio(worker_openai) == pytest.approx(800 / 640)
    assert cold.floor_ratio(connect) == pytest.approx(1.5)  # the column is against the plain floor
    text = report.render(_results(cold_start=cold, worker_memory_mb=1024))
    assert "| floor: `boto3 (collection paused)` | 160 ms | 16.0x | 0.80x (boto3) |  |  |  |" in text
    assert "| `connect` | 300 ms | 30.0x | 1.50x (boto3) | 1.88x | 1.20x |  |" in text
    assert "| `worker + openai` | 800 ms | 80.0x | 1.14x (boto3 + openai) | 1.25x |  |  |" in text


def test_paused_floors_pause_collection_around_the_same_imports() -> None:
    label, code = cold_start.PAUSED_FLOORS["boto3 (collection paused)"]
    assert label == "boto3 (collection paused)"
    assert code.startswith("import gc\ngc.disable()\n")
    assert "import boto3" in code
    assert code.endswith("gc.freeze()\ngc.enable()")
    _, libraries = cold_start.PAUSED_FLOORS[cold_start.PAUSED_LIBRARY_FLOOR]
    assert cold_start.FLOORS[cold_start.LIBRARY_FLOOR][1] in libraries


def test_routes_are_held_against_the_libraries_imported_as_they_import_them() -> None:
    """With the paused library floor measured, the ``÷ libraries`` column divides by it: against the plain one the
    pause's help would hide what our own code costs."""
    cold = _cold_start()
    cold = dataclasses.replace(cold, floors=(*cold.floors, _import(cold_start.PAUSED_LIBRARY_FLOOR, 0.200)))
    connect, _, _ = cold.handlers
    assert cold.library_floor_ratio(connect) == pytest.approx(1.5)
    text = report.render(_results(cold_start=cold, worker_memory_mb=1024))
    assert "| floor: `boto3 + Powertools + pydantic` | 250 ms | 25.0x | 1.25x (boto3) |  |  |  |" in text
    assert (
        "| floor: `boto3 + Powertools + pydantic (collection paused)` | 200 ms | 20.0x "
        "| 0.80x (boto3 + Powertools + pydantic) |  | 1.00x |  |" in text
    )
    assert "| `connect` | 300 ms | 30.0x | 1.50x (boto3) |  | 1.50x |  |" in text


def test_library_floor_and_peak_rss_run_in_a_fresh_interpreter() -> None:
    """The floor's statement is real Python that imports what it names; the peak memory comes back in bytes."""
    path = f"import sys; sys.path[:0] = {sys.path!r}\n"
    _, code = cold_start.FLOORS[cold_start.LIBRARY_FLOOR]
    peak = cold_start.peak_rss_bytes(path + code + "\nassert 'pydantic' in sys.modules", dict(os.environ))
    assert 10 * 2**20 < peak < 2**30


def test_peak_rss_is_the_measured_interpreters_own_not_its_parents() -> None:
    """On Linux a child's ``ru_maxrss`` keeps its parent's resident set from before ``exec``: a large benchmark or
    test process would be reported as the handler's memory."""
    parent = bytearray(400 * 2**20)
    parent[:: 2**12] = b"x" * len(parent[:: 2**12])  # touch every page: resident, not just reserved
    peak = cold_start.peak_rss_bytes("pass", dict(os.environ))
    assert peak < 200 * 2**20
    del parent


def test_a_bench_run_keeps_the_hand_written_sections_and_drops_the_generated_ones() -> None:
    generated = report.render(_streaming_results())
    previous = generated + "\n## Bytecode in the Lambda assets\n\nhand-written\n\n## Lean cold starts\n\nalso kept\n"
    kept = report.kept_sections(previous)
    assert kept.startswith("\n## Bytecode in the Lambda assets")
    assert "also kept" in kept
    assert "## Streaming cost" not in kept
    rewritten = report.render(_streaming_results()) + kept
    assert rewritten.count("## Streaming cost per 1000 output tokens") == 1
    assert rewritten.count("## Bytecode in the Lambda assets") == 1


def test_cold_start_samples_are_taken_in_rounds_so_drift_hits_both_sides_of_a_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []

    def run(code: str, env: dict[str, str], *, importtime: bool = False) -> tuple[float, str]:
        order.append(code.strip())
        return float(len(order)), ""

    monkeypatch.setattr(cold_start, "_run", run)
    samples = cold_start.interleaved_samples("", [("floor", "import boto3", {}), ("route", "import connect", {})], 3)

    assert order == ["import boto3", "import connect"] * 3
    assert samples == {"floor": (1.0, 3.0, 5.0), "route": (2.0, 4.0, 6.0)}


def test_long_replies_at_the_fast_end_of_the_pace_get_their_own_row() -> None:
    results = _streaming_results()
    # 400 tokens at 50 tokens/s in 26 frames (the client's count): the first at once, then 0.1 s and 0.32 s gaps.
    arrivals = (0.4, *(0.5 + 0.32 * i for i in range(25)))
    results.fast_long_replies = [_pipeline_reply("long", "f-0", tokens=400, delta_at_s=arrivals, done_s=8.3)]
    results.fast_pace = Pace(first_token_s=0.3, tokens_per_s=50)
    section = report.render(results)

    assert "again with the model at 50 tokens/s" in section
    # 399 tokens over 0.4 s -> 8.18 s: 51.3 tokens/s at the client; 26 frames per 400 tokens: 65.0 per 1000.
    assert (
        "| 1 | 51.3 | 65.0 (target ≤ 80: met) | 320 ms | 320 ms | 320 ms (target ≤ ~350 ms, within 5 %: met) |"
        in section
    )
    # The 40 tokens/s row is still there, from the worker's counts.
    assert "| 1 | 46.8 | 75.0 (target ≤ 80: met) |" in section


def test_a_quick_run_writes_outside_the_committed_docs() -> None:
    """``make bench ARGS=--quick`` must not overwrite docs/benchmarks.md and its plot with 6-sample numbers."""
    from scripts.bench.__main__ import QUICK_REPORT_DIR, _parse_args

    root = QUICK_REPORT_DIR.parents[1]
    quick = _parse_args(["--quick"])
    assert quick.out == root / ".local" / "bench" / "benchmarks.md"
    assert quick.plot == root / ".local" / "bench" / "benchmarks.png"
    full = _parse_args([])
    assert full.out == root / "docs" / "benchmarks.md"
    assert full.plot == root / "docs" / "benchmarks.png"
    chosen = _parse_args(["--quick", "--out", "/tmp/b/report.md"])
    assert str(chosen.plot) == "/tmp/b/benchmarks.png"


# --- Lean routes: each route function against the libraries it must use (issue #24) -----------------------------


def _route(route: str, median_s: float, floor_s: float, **fields: Any) -> route_imports.RouteImport:
    floor = route_imports.ROUTES[route]
    return route_imports.RouteImport(route, floor, (median_s,), (floor_s,), **fields)


def test_each_route_function_is_held_against_the_libraries_it_must_use() -> None:
    assert set(route_imports.ROUTES) == {"connect", "disconnect", "default", "send_message", "commands", "authorizer"}
    assert route_imports.ROUTES["authorizer"] == route_imports.AUTHORIZER_LIBRARIES
    routes_floor = route_imports.FLOOR_CODE[route_imports.ROUTE_LIBRARIES]
    assert "import boto3" in routes_floor
    assert "class M(pydantic.BaseModel)" in routes_floor
    assert "Logger()" in routes_floor
    assert "Metrics()" in routes_floor
    authorizer_floor = route_imports.FLOOR_CODE[route_imports.AUTHORIZER_LIBRARIES]
    assert "boto3" not in authorizer_floor
    assert "pydantic" not in authorizer_floor
    assert "import jwt" in authorizer_floor
    assert "api_gateway_authorizer_event" in authorizer_floor  # the authorizer's event and policy classes
    # The floors import as the handlers do: collection paused, then frozen; nothing of ours.
    code = route_imports.paused(routes_floor)
    assert code.startswith("import gc\ngc.disable()\n")
    assert code.endswith("gc.freeze()\ngc.enable()\n")
    assert "assistant" not in code


def test_lean_routes_report_ratios_and_verdicts_against_the_target() -> None:
    result = route_imports.RouteImports(
        python="3.11.7",
        routes=(
            _route("connect", 0.228, 0.200, own_modules=(("assistant.events", 0.006), ("assistant.settings", 0.004))),
            _route("send_message", 0.240, 0.200),
        ),
    )
    lean, heavy = result.routes
    assert lean.ratio == pytest.approx(1.14)
    assert lean.met
    assert heavy.ratio == pytest.approx(1.2)
    assert not heavy.met
    assert lean.own_s == pytest.approx(0.010)
    text = report.render(_results(route_imports=result))
    section = text[text.index("## Lean routes") :]
    assert "(1 of 2 met)" in section
    assert "medians of 1 runs" in section
    assert (
        "| `connect` | boto3 + pydantic + Powertools | 200 ms | 228 ms | 1.14x (met) | 28 ms "
        "| 10 ms: `assistant.events` 6 ms, `assistant.settings` 4 ms |" in section
    )
    assert "| `send_message` | boto3 + pydantic + Powertools | 200 ms | 240 ms | 1.20x (**not met**) | 40 ms |  |" in (
        section
    )


def test_own_modules_are_the_assistant_package_and_the_handler() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:      5000 |       5000 |     pydantic",
            "import time:      2000 |       2000 |       assistant.events",
            "import time:       300 |       7300 |   assistant",
            "import time:       700 |       8000 | connect",
        ]
    )
    assert route_imports.own_modules(stderr, "connect") == [
        ("assistant.events", 0.002),
        ("connect", 0.0007),
        ("assistant", 0.0003),
    ]


def test_lean_routes_time_each_route_right_after_its_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []

    def run(code: str, env: dict[str, str], *, importtime: bool = False) -> tuple[float, str]:
        if not importtime:
            order.append("floor" if "gc.disable()" in code else code.strip().splitlines()[-1])
        return (0.1 if "gc.disable()" in code else 0.12), ""

    monkeypatch.setattr(cold_start, "_run", run)
    monkeypatch.setattr(route_imports, "_run", run)
    host = HostLayers(*(Path("/nonexistent") for _ in range(4)))
    result = route_imports.measure(host, repeats=2)

    rounds = [step for route in route_imports.ROUTES for step in ("floor", f"import {route}")]
    assert order[1:] == rounds * 2  # after one warm-up run of every handler
    connect = result.routes[0]
    assert connect.samples_s == (0.12, 0.12)
    assert len(connect.floor_samples_s) == 2 * 5  # pooled over the five API routes' floor runs
    assert connect.ratio == pytest.approx(1.2)
    assert result.repeats == 2
