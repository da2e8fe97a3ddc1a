"""Intervals for success rates: robot evaluations are a few dozen episodes, so a rate means little without one."""

from __future__ import annotations

import math

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95% intervals


def wilson_interval(successes: float, episodes: int) -> tuple[float, float]:
    """The Wilson score 95% interval of `successes` in `episodes`: unlike rate +- 1.96 sd it stays inside [0, 1]
    and is not empty at 0 or all successes, which a few dozen robot episodes often give."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    n, p, z2 = episodes, successes / episodes, Z_95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)
