"""A carrier's measured health over a sliding window, and the traffic share it earns: sans-I/O,
driven by the caller's clock.

What is measured, per carrier, in a window of `window_s` (default 60 s) made of `slot_s` slots:
submit -> submit_sm_resp latency and submit -> delivery receipt latency (p95 from a
`QuantileSketch`: within 1% of the exact nearest-rank value), and outcomes by cause: answered
submits, local timeouts, throttling answers, retriable error statuses, permanent
rejections, delivered and failed receipts. Bind availability is not windowed: a carrier with no
bind able to send gets no traffic at once.

How it is judged, once per `evaluate(now)` (the caller runs it every slot), over the window's
most recent `judge_s` (default 10 s; the full window is what status and metrics report): a
60-second verdict would keep a recovered carrier demoted until its slow samples aged out, a
minute, where traffic should return within 30 s. The recent window is bad when its p95
response latency is above `max_p95_resp_s` (default 4 s), or the submit error rate
(timeouts, throttling, errors and rejections over submits answered or timed out) or the
failed-receipt rate is above `max_error_rate` (default 3%). Rates are taken over at least
`min_samples` (default 20) attempts, so a carrier with little traffic is judged on what it had:
one error in three submits is bad, three clean submits are good. A local timeout is a failure.

How traffic follows, with hysteresis: the carrier's share steps through `shares` (default
1.0, 0.5, 0.25, 0.05). After `bad_to_step_down` bad evaluations in a row (default 3) it steps
down one level, after `good_to_step_up` good ones in a row (default 2) it steps back up one. The
last level is the probe share (half-open): a demoted carrier keeps a little traffic, so its
window keeps measuring it and it is promoted back once it recovers. The router multiplies each
carrier's configured weight by its share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gateway.routing.quantiles import QuantileSketch


class Outcome(StrEnum):
    TIMEOUT = "timeout"  # no submit_sm_resp within the response timeout (local)
    THROTTLED = "throttled"  # ESME_RTHROTTLED, ESME_RMSGQFUL
    ERROR = "error"  # an error status the carrier's map calls retriable
    REJECTED = "rejected"  # a permanent error status
    RECEIPT_FAILED = "receipt_failed"  # a final receipt other than delivered


@dataclass(frozen=True)
class HealthPolicy:
    window_s: float = 60.0
    judge_s: float = 10.0
    slot_s: float = 1.0
    max_p95_resp_s: float = 4.0
    max_error_rate: float = 0.03
    min_samples: int = 20
    bad_to_step_down: int = 3
    good_to_step_up: int = 2
    shares: tuple[float, ...] = (1.0, 0.5, 0.25, 0.05)

    def __post_init__(self) -> None:
        if not 0 < self.slot_s <= self.judge_s <= self.window_s:
            raise ValueError("need 0 < slot_s <= judge_s <= window_s")
        if not self.shares or any(not 0 < s <= 1 for s in self.shares):
            raise ValueError("shares must be a non-empty list of fractions in (0, 1]")
        if list(self.shares) != sorted(self.shares, reverse=True):
            raise ValueError("shares must go down, from the healthy share to the probe share")
        if self.min_samples < 1 or self.bad_to_step_down < 1 or self.good_to_step_up < 1:
            raise ValueError("min_samples and the step counts must be at least 1")


FOLD_AT = 512  # latencies a slot holds as a list before it folds them into its sketches


class _Slot:
    __slots__ = (
        "answered",
        "delivered",
        "number",
        "outcomes",
        "receipt",
        "receipt_pending",
        "resp",
        "resp_pending",
    )

    def __init__(self, number: int) -> None:
        self.number = number
        self.resp = QuantileSketch()
        self.receipt = QuantileSketch()
        # Latencies are appended here (once per response and receipt: a list append, not a
        # sketch update) and folded into the sketches when the slot is read, or at FOLD_AT.
        self.resp_pending: list[float] = []
        self.receipt_pending: list[float] = []
        self.answered = 0  # submits answered without error
        self.delivered = 0
        self.outcomes = dict.fromkeys(Outcome, 0)

    def fold(self) -> None:
        if self.resp_pending:
            self.resp.add_many(self.resp_pending)
            self.resp_pending = []
        if self.receipt_pending:
            self.receipt.add_many(self.receipt_pending)
            self.receipt_pending = []


@dataclass(frozen=True)
class WindowView:
    """What the window holds at one moment."""

    p95_resp_s: float | None
    p95_receipt_s: float | None
    submits: int  # answered or timed out
    errors: dict[str, int]  # by Outcome
    receipts: int
    submit_error_rate: float
    receipt_failure_rate: float


class CarrierHealth:
    def __init__(self, policy: HealthPolicy | None = None, now: float = 0.0) -> None:
        self.policy = policy or HealthPolicy()
        self._count = max(1, math.ceil(self.policy.window_s / self.policy.slot_s))
        self._slots: list[_Slot | None] = [None] * self._count
        self.level = 0  # index into policy.shares
        self.binds_up = 0
        self._bad_run = 0
        self._good_run = 0
        self.last_bad: bool | None = None  # the last evaluation's verdict (None: none yet)
        self._current: _Slot | None = None
        self._current_start = self._current_end = 0.0

    # -- observations ----------------------------------------------------------------------

    def answered(self, latency_s: float, now: float) -> None:
        """A submit_sm_resp without error, `latency_s` after the submit."""
        slot = self._slot(now)
        slot.answered += 1
        pending = slot.resp_pending
        pending.append(latency_s)
        if len(pending) >= FOLD_AT:
            slot.fold()

    def failed(self, outcome: Outcome, now: float, latency_s: float | None = None) -> None:
        """A timeout, a throttling answer, a rejection or a failed receipt (with the time it
        took, when an answer came)."""
        slot = self._slot(now)
        slot.outcomes[outcome] += 1
        if latency_s is not None:
            failed_receipt = outcome is Outcome.RECEIPT_FAILED
            (slot.receipt_pending if failed_receipt else slot.resp_pending).append(latency_s)
            slot.fold()  # failures are rare: no list to keep

    def delivered(self, latency_s: float | None, now: float) -> None:
        """A delivered receipt, `latency_s` after the submit (None: not known, counted only)."""
        slot = self._slot(now)
        slot.delivered += 1
        if latency_s is not None:
            pending = slot.receipt_pending
            pending.append(latency_s)
            if len(pending) >= FOLD_AT:
                slot.fold()

    def set_binds(self, up: int) -> None:
        """How many binds can send now; none: no traffic at once, whatever the window says."""
        self.binds_up = up

    # -- judgement ---------------------------------------------------------------------------

    @property
    def share(self) -> float:
        """The fraction of its configured weight the carrier gets now."""
        return 0.0 if self.binds_up <= 0 else self.policy.shares[self.level]

    @property
    def state(self) -> str:
        if self.binds_up <= 0:
            return "down"
        if self.level == 0:
            return "healthy"
        return "probing" if self.level == len(self.policy.shares) - 1 else "degraded"

    def evaluate(self, now: float) -> bool:
        """Judge the window and move the share one step when the run of verdicts says so;
        True when the window is bad."""
        policy = self.policy
        view = self.view(now, policy.judge_s)
        bad = (
            (view.p95_resp_s is not None and view.p95_resp_s > policy.max_p95_resp_s)
            or view.submit_error_rate > policy.max_error_rate
            or view.receipt_failure_rate > policy.max_error_rate
        )
        self.last_bad = bad
        if bad:
            self._good_run = 0
            self._bad_run += 1
            if self._bad_run >= policy.bad_to_step_down and self.level < len(policy.shares) - 1:
                self.level += 1
                self._bad_run = 0
        else:
            self._bad_run = 0
            self._good_run += 1
            if self._good_run >= policy.good_to_step_up and self.level > 0:
                self.level -= 1
                self._good_run = 0
        return bad

    def view(self, now: float, span_s: float | None = None) -> WindowView:
        """The window's figures, or those of its most recent `span_s`."""
        live = self._live(now, span_s)
        errors = dict.fromkeys((o.value for o in Outcome), 0)
        answered = delivered = 0
        for slot in live:
            answered += slot.answered
            delivered += slot.delivered
            for outcome, n in slot.outcomes.items():
                errors[outcome.value] += n
        receipt_failed = errors[Outcome.RECEIPT_FAILED.value]
        submit_errors = sum(errors.values()) - receipt_failed
        submits = answered + submit_errors
        receipts = delivered + receipt_failed
        floor = self.policy.min_samples
        resp = QuantileSketch.merged(slot.resp for slot in live)
        receipt = QuantileSketch.merged(slot.receipt for slot in live)
        return WindowView(
            p95_resp_s=resp.quantile(0.95),
            p95_receipt_s=receipt.quantile(0.95),
            submits=submits,
            errors=errors,
            receipts=receipts,
            submit_error_rate=submit_errors / max(submits, floor),
            receipt_failure_rate=receipt_failed / max(receipts, floor),
        )

    def snapshot(self, now: float) -> dict[str, Any]:
        """For status and metrics."""
        view = self.view(now)
        return {
            "state": self.state,
            "share": self.share,
            "binds_up": self.binds_up,
            "p95_resp_s": view.p95_resp_s,
            "p95_receipt_s": view.p95_receipt_s,
            "submits": view.submits,
            "receipts": view.receipts,
            "errors": view.errors,
            "submit_error_rate": view.submit_error_rate,
            "receipt_failure_rate": view.receipt_failure_rate,
        }

    # -- the window --------------------------------------------------------------------------

    def _slot(self, now: float) -> _Slot:
        current = self._current  # the slot of the last observation, while `now` is in it
        if current is not None and self._current_start <= now < self._current_end:
            return current
        slot_s = self.policy.slot_s
        number = math.floor(now / slot_s)
        index = number % self._count
        slot = self._slots[index]
        if slot is None or slot.number != number:
            slot = self._slots[index] = _Slot(number)
        self._current, self._current_start, self._current_end = (
            slot,
            number * slot_s,
            (number + 1) * slot_s,
        )
        return slot

    def _live(self, now: float, span_s: float | None = None) -> list[_Slot]:
        newest = math.floor(now / self.policy.slot_s)
        count = self._count if span_s is None else max(1, math.ceil(span_s / self.policy.slot_s))
        live = [
            slot
            for slot in self._slots
            if slot is not None and newest - count < slot.number <= newest
        ]
        for slot in live:
            slot.fold()
        return live
