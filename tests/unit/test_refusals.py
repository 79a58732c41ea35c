"""The per-connection refusal counter that closes a connection which keeps hitting its limits."""

from __future__ import annotations

import pytest

from assistant.refusals import RefusalCounter


def test_a_connection_is_closed_at_the_limit_within_one_window() -> None:
    counter = RefusalCounter(limit=3, window_seconds=60)
    assert [counter.refuse("c1", now=float(t)) for t in range(3)] == [False, False, True]


def test_refusals_spread_over_windows_never_close() -> None:
    counter = RefusalCounter(limit=3, window_seconds=60)
    verdicts = [counter.refuse("c1", now=t * 31.0) for t in range(10)]  # two refusals a window at most
    assert not any(verdicts)


def test_connections_are_counted_apart_and_forgotten() -> None:
    counter = RefusalCounter(limit=2, window_seconds=60)
    assert not counter.refuse("c1", now=0)
    assert not counter.refuse("c2", now=0)
    counter.forget("c1")
    assert not counter.refuse("c1", now=1)
    assert counter.refuse("c2", now=1)


def test_memory_is_bounded_by_forgetting_the_oldest_connection() -> None:
    counter = RefusalCounter(limit=2, window_seconds=60)
    counter.refuse("oldest", now=0)
    for n in range(5000):
        counter.refuse(f"c{n}", now=0)
    assert not counter.refuse("oldest", now=0)  # forgotten, so counted afresh


@pytest.mark.parametrize(("limit", "window"), [(0, 60), (3, 0)])
def test_nonsense_limits_are_refused(limit: int, window: float) -> None:
    with pytest.raises(ValueError, match="refusal limit"):
        RefusalCounter(limit=limit, window_seconds=window)
