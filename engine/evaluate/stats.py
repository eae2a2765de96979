"""Bootstrap intervals over queries: how sure a difference of two systems' means is.

With the 30-300 queries a team labels, a change of one or two nDCG points is often noise;
a paired bootstrap (the same resampled queries for both systems) says which are not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap interval."""

    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


def bootstrap_mean(values: np.ndarray, seed: int = 0) -> Interval:
    if values.size == 0:
        return Interval(0.0, 0.0, 0.0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(BOOTSTRAP_SAMPLES, values.size))
    means = values[idx].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2
    return Interval(
        float(values.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))
    )


def paired_gain(system: np.ndarray, baseline: np.ndarray, seed: int = 0) -> Interval:
    """Mean per-query difference with a paired bootstrap interval: the same resampled queries
    for both systems, so query difficulty cancels out."""
    return bootstrap_mean(np.asarray(system) - np.asarray(baseline), seed=seed)
