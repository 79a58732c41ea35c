"""Percentiles and ratios: the arithmetic every table in the report is made of."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    if not samples:
        raise ValueError("no samples")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``; infinite when the baseline is zero and the value is not (never a ZeroDivisionError)."""
    if baseline == 0:
        return math.nan if value == 0 else math.inf
    return value / baseline


@dataclass(frozen=True)
class Summary:
    """The usual description of a latency sample, in the sample's unit."""

    n: int
    p50: float
    p95: float
    mean: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if not samples:
            raise ValueError("no samples")
        return cls(
            n=len(samples),
            p50=percentile(samples, 50),
            p95=percentile(samples, 95),
            mean=statistics.fmean(samples),
            minimum=min(samples),
            maximum=max(samples),
        )


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50)
