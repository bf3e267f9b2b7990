"""A carrier's health over its sliding window and the share of traffic it earns (sans-I/O)."""

from __future__ import annotations

import pytest

from gateway.routing.health import CarrierHealth, HealthPolicy, Outcome


def traffic(health: CarrierHealth, start: float, seconds: int, per_s: int, **kind: float) -> float:
    """`per_s` submits a second for `seconds`, answered after `resp` s (default 0.2), a
    fraction `timeouts` of them timing out; evaluated once a second. Returns the end time."""
    resp, timeouts = kind.get("resp", 0.2), kind.get("timeouts", 0.0)
    now = start
    for _ in range(seconds):
        for n in range(per_s):
            at = now + n / per_s
            if n < per_s * timeouts:
                health.failed(Outcome.TIMEOUT, at)
            else:
                health.answered(resp, at)
                health.delivered(resp + 1.0, at)
        now += 1.0
        health.evaluate(now)
    return now


def test_a_brownout_steps_the_share_down_to_the_probe_share_and_recovery_brings_it_back() -> None:
    health = CarrierHealth()
    health.set_binds(2)
    now = traffic(health, 0.0, 30, 50)
    assert (health.state, health.share) == ("healthy", 1.0)
    # A's responses take 6 s: each evaluation is bad; three in a row take one step down
    shares = []
    for _ in range(12):
        now = traffic(health, now, 1, 50, resp=6.0)
        shares.append(health.share)
    assert shares == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.05, 0.05, 0.05, 0.05]
    assert health.state == "probing"  # half-open: a little traffic keeps it measured
    # it recovers: once the recent window is clean it steps up, one level per two good verdicts
    seconds = 0
    while health.share < 1.0:
        now = traffic(health, now, 1, 3, resp=0.2)  # probe traffic only
        seconds += 1
        assert seconds < 30, "not back to its weight within 30 s of recovery"
    assert health.state == "healthy"
    view = health.view(now)  # the whole minute still remembers the brownout
    assert view.p95_resp_s is not None and view.p95_resp_s > 4.0
    assert health.view(now, 10.0).p95_resp_s == pytest.approx(0.2, rel=0.01)


def test_errors_over_the_threshold_are_bad_and_few_samples_are_judged_fairly() -> None:
    health = CarrierHealth()
    health.set_binds(1)
    now = traffic(health, 0.0, 10, 100, timeouts=0.05)  # 5% local timeouts: over 3%
    assert health.last_bad is True and health.share < 1.0
    view = health.view(now)
    assert view.errors["timeout"] == 50 and view.submit_error_rate == pytest.approx(0.05)

    quiet = CarrierHealth()
    quiet.set_binds(1)
    quiet.answered(0.1, 0.5)
    quiet.answered(0.1, 0.6)
    assert quiet.evaluate(1.0) is False  # two clean submits: good
    quiet.failed(Outcome.REJECTED, 1.5, latency_s=0.1)
    assert quiet.evaluate(2.0) is True  # one rejection in three: bad, over at least 20
    assert quiet.view(2.0).submit_error_rate == pytest.approx(1 / 20)


def test_failed_receipts_count_against_the_carrier() -> None:
    health = CarrierHealth()
    health.set_binds(1)
    for n in range(100):
        health.answered(0.1, n / 100)
        if n < 10:
            health.failed(Outcome.RECEIPT_FAILED, n / 100, latency_s=2.0)
        else:
            health.delivered(2.0, n / 100)
    assert health.evaluate(1.0) is True
    assert health.view(1.0).receipt_failure_rate == pytest.approx(0.1)
    assert health.view(1.0).p95_receipt_s == pytest.approx(2.0, rel=0.01)


def test_no_bind_no_traffic_at_once_and_the_level_survives_the_outage() -> None:
    health = CarrierHealth()
    assert (health.state, health.share) == ("down", 0.0)  # not bound yet
    health.set_binds(1)
    now = traffic(health, 0.0, 3, 50, resp=6.0)
    assert health.share == 0.5
    health.set_binds(0)
    assert (health.state, health.share) == ("down", 0.0)  # no window to wait for
    health.set_binds(1)
    assert (health.state, health.share) == ("degraded", 0.5)
    snapshot = health.snapshot(now)
    assert snapshot["state"] == "degraded" and snapshot["binds_up"] == 1


def test_old_slots_leave_the_window() -> None:
    health = CarrierHealth(HealthPolicy(window_s=5, judge_s=5))
    health.set_binds(1)
    health.failed(Outcome.THROTTLED, 0.0)
    assert health.view(4.9).errors["throttled"] == 1
    assert health.view(5.0).errors["throttled"] == 0  # five slots later: out of the window
    health.answered(0.1, 7.0)  # a slot reused by the ring starts empty
    assert health.view(7.0).submits == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"slot_s": 0},
        {"judge_s": 90},
        {"shares": ()},
        {"shares": (0.5, 1.0)},
        {"shares": (1.0, 0.0)},
        {"min_samples": 0},
        {"bad_to_step_down": 0},
    ],
)
def test_policies_that_cannot_work_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        HealthPolicy(**bad)  # type: ignore[arg-type]


def test_a_delivered_receipt_without_a_known_latency_is_counted_without_a_sample() -> None:
    health = CarrierHealth(now=0.0)
    health.delivered(None, 1.0)
    health.delivered(2.5, 1.0)
    view = health.view(1.5)
    assert view.receipts == 2 and view.p95_receipt_s is not None
    assert abs(view.p95_receipt_s - 2.5) <= 0.03


def test_a_slot_folds_its_latencies_before_holding_more_than_a_bound() -> None:
    from gateway.routing.health import FOLD_AT

    health = CarrierHealth(now=0.0)
    for n in range(3 * FOLD_AT + 7):
        health.answered(0.1 + n * 1e-6, 0.5)
    slot = health._slot(0.5)
    assert len(slot.resp_pending) < FOLD_AT  # bounded memory between reads
    view = health.view(0.9)
    assert view.submits == 3 * FOLD_AT + 7 and not slot.resp_pending
    assert view.p95_resp_s is not None and abs(view.p95_resp_s - 0.1) < 0.01
