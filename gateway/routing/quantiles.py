"""A mergeable quantile sketch with a relative error bound (the DDSketch construction).

A positive value x goes to bucket ceil(log_gamma(x)) with gamma = (1 + alpha) / (1 - alpha); the
quantile read back is the bucket's midpoint 2 * gamma**i / (gamma + 1), which is within a
factor (1 +- alpha) of every value in the bucket. So any quantile (by the nearest-rank
definition over the values added) comes back with a relative error of at most `alpha`, however
the values are spread, in memory that grows with the logarithm of their range, not their
number. Sketches with the same alpha merge by adding counts, which is what lets a sliding
window keep one sketch per slot and answer p95 over the whole window.

Values at or below `min_value` (zero latencies included) count in one bucket read back as
`min_value`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


class QuantileSketch:
    __slots__ = ("_alpha", "_counts", "_log_gamma", "_min_value", "_zeros", "count")

    def __init__(self, alpha: float = 0.01, min_value: float = 1e-6) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), not {alpha}")
        self._alpha = alpha
        self._log_gamma = math.log((1 + alpha) / (1 - alpha))
        self._min_value = min_value
        self._counts: dict[int, int] = {}
        self._zeros = 0  # values at or below min_value
        self.count = 0

    @property
    def alpha(self) -> float:
        return self._alpha

    def add(self, value: float, times: int = 1) -> None:
        if value != value:  # NaN: no place in an order
            raise ValueError("a quantile sketch takes numbers, not NaN")
        self.count += times
        if value <= self._min_value:
            self._zeros += times
            return
        index = math.ceil(math.log(value) / self._log_gamma)
        self._counts[index] = self._counts.get(index, 0) + times

    def add_many(self, values: list[float]) -> None:
        """`add` for each value (positive numbers; the fold of a window slot's latencies)."""
        counts, log, ceil, log_gamma, floor = (
            self._counts,
            math.log,
            math.ceil,
            self._log_gamma,
            self._min_value,
        )
        for value in values:
            if value != value:
                raise ValueError("a quantile sketch takes numbers, not NaN")
            self.count += 1
            if value <= floor:
                self._zeros += 1
                continue
            index = ceil(log(value) / log_gamma)
            counts[index] = counts.get(index, 0) + 1

    def merge(self, other: QuantileSketch) -> None:
        if other._alpha != self._alpha or other._min_value != self._min_value:
            raise ValueError("only sketches with the same alpha and min_value merge")
        self.count += other.count
        self._zeros += other._zeros
        counts = self._counts
        for index, n in other._counts.items():
            counts[index] = counts.get(index, 0) + n

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 <= q <= 1, nearest rank), or None when empty."""
        if not 0 <= q <= 1:
            raise ValueError(f"q must be in [0, 1], not {q}")
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))  # the rank-th smallest value
        if rank <= self._zeros:
            return self._min_value
        seen = self._zeros
        for index in sorted(self._counts):
            seen += self._counts[index]
            if seen >= rank:
                return 2 * math.exp(index * self._log_gamma) / (math.exp(self._log_gamma) + 1)
        raise AssertionError("counts do not add up")  # pragma: no cover

    @classmethod
    def merged(cls, sketches: Iterable[QuantileSketch], alpha: float = 0.01) -> QuantileSketch:
        out = cls(alpha)
        for sketch in sketches:
            out.merge(sketch)
        return out
