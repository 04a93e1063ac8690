"""Measuring helpers: interleaved rounds of a workload and its baseline, one JSON line per figure.

The machine is shared and noisy, so a figure is never compared with a number
measured at another time: the workload and its baseline run in alternating
rounds. The reported ratio is the median of the per-round ratios (each round's
workload against the baseline measured right before it), which cancels slow
drifts in machine load; the best and median rates of each are reported too.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Figure", "emit", "interleaved_rates"]


@dataclass
class Figure:
    """One benchmark result beside its baseline."""

    figure: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    ratio: float
    median: float
    baseline_median: float
    rounds: int
    detail: dict[str, Any]


def interleaved_rates(
    work: Callable[[], int],
    baseline: Callable[[], int],
    rounds: int = 7,
) -> tuple[list[float], list[float]]:
    """Run ``work`` and ``baseline`` in alternating rounds; each returns how many items it did.

    Returns the per-round rates (items per second) of each.
    """
    work_rates: list[float] = []
    base_rates: list[float] = []
    for _ in range(rounds):
        for fn, out in ((baseline, base_rates), (work, work_rates)):
            start = time.perf_counter()
            items = fn()
            out.append(items / (time.perf_counter() - start))
    return work_rates, base_rates


def figure(
    name: str,
    unit: str,
    baseline_name: str,
    work_rates: list[float],
    base_rates: list[float],
    **detail: Any,
) -> Figure:
    """Summarise interleaved rates as a Figure (best round, and medians)."""
    best, base_best = max(work_rates), max(base_rates)
    ratios = [w / b for w, b in zip(work_rates, base_rates, strict=True)]
    return Figure(
        figure=name,
        value=round(best, 1),
        unit=unit,
        baseline=baseline_name,
        baseline_value=round(base_best, 1),
        ratio=round(statistics.median(ratios), 3),
        median=round(statistics.median(work_rates), 1),
        baseline_median=round(statistics.median(base_rates), 1),
        rounds=len(work_rates),
        detail=detail,
    )


def emit(fig: Figure) -> None:
    """Print one JSON line for a figure."""
    print(json.dumps(asdict(fig)), flush=True)
