"""The quantile sketch keeps its relative error bound against the exact nearest-rank quantile."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.routing.quantiles import QuantileSketch


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


LATENCIES = st.floats(min_value=1e-5, max_value=3600.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(LATENCIES, min_size=1, max_size=400),
    st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]),
    st.sampled_from([0.01, 0.02, 0.05]),
)
def test_any_quantile_is_within_alpha_of_the_exact_one(
    values: list[float], q: float, alpha: float
) -> None:
    sketch = QuantileSketch(alpha)
    for value in values:
        sketch.add(value)
    got = sketch.quantile(q)
    want = exact(values, q)
    assert got is not None and abs(got - want) <= alpha * want * (1 + 1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(LATENCIES, max_size=50), min_size=1, max_size=8))
def test_merged_sketches_answer_as_one_sketch_of_all_the_values(parts: list[list[float]]) -> None:
    whole = QuantileSketch()
    pieces = []
    for part in parts:
        piece = QuantileSketch()
        for value in part:
            piece.add(value)
            whole.add(value)
        pieces.append(piece)
    merged = QuantileSketch.merged(pieces)
    assert merged.count == whole.count
    assert merged.quantile(0.95) == whole.quantile(0.95)


def test_empty_zero_and_refused_values() -> None:
    sketch = QuantileSketch()
    assert sketch.quantile(0.95) is None
    sketch.add(0.0, times=3)
    sketch.add(2.0)
    assert sketch.quantile(0.5) == 1e-6  # at or below min_value: read back as min_value
    assert sketch.quantile(1.0) == pytest.approx(2.0, rel=0.01)
    with pytest.raises(ValueError):
        sketch.add(float("nan"))
    with pytest.raises(ValueError):
        sketch.quantile(1.5)
    with pytest.raises(ValueError):
        QuantileSketch(alpha=1.0)
    with pytest.raises(ValueError):
        sketch.merge(QuantileSketch(alpha=0.05))


@given(values=st.lists(st.floats(min_value=0, max_value=1e6), max_size=200))
def test_add_many_is_add_for_each(values: list[float]) -> None:
    one, many = QuantileSketch(), QuantileSketch()
    for value in values:
        one.add(value)
    many.add_many(values)
    assert many.count == one.count
    assert [many.quantile(q) for q in (0, 0.5, 0.95, 1)] == [
        one.quantile(q) for q in (0, 0.5, 0.95, 1)
    ]
