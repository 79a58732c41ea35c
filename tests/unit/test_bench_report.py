"""The benchmark's arithmetic and report writer, on given samples; and a tiny run of the cheapest benchmark."""

from __future__ import annotations

import math

import pytest

from assistant.protocol import Delta
from scripts.bench import authorizer, frames
from scripts.bench.harness import Received
from scripts.bench.polling import ORIGINAL_BACKOFF
from scripts.bench.report import latency_rows, markdown_table
from scripts.bench.stats import Summary, percentile, ratio
from scripts.bench.throughput import audit_user


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
    tokens = len(frames.model_tokens("".join(texts)))
    return [*deltas, {"type": "done", "messageId": message_id, "usage": {"outputTokens": tokens}}]


def test_audit_of_a_clean_user() -> None:
    received = _frames(
        {"type": "accepted", "messageId": "a"},
        {"type": "accepted", "messageId": "b"},
        *_reply("a", "Hi", " there"),
        *_reply("b", "Bye"),
    )
    assert audit_user(["a", "b"], received).clean


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
