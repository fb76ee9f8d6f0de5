"""The circuit breaker state machine, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import pytest
from bookstore_orders.circuit_breaker import CircuitBreaker, CircuitOpenError, CircuitState


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transitions() -> list[CircuitState]:
    return []


@pytest.fixture
def breaker(clock: FakeClock, transitions: list[CircuitState]) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=3, reset_timeout=10.0, clock=clock, on_state_change=transitions.append
    )


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.before_call()
        breaker.record_failure()


def test_breaker_stays_closed_below_the_failure_threshold(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    breaker.before_call()
    assert breaker.state is CircuitState.CLOSED


def test_a_success_resets_the_consecutive_failure_count(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    breaker.before_call()
    breaker.record_success()
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED


def test_breaker_opens_after_consecutive_failures_and_fails_fast(
    breaker: CircuitBreaker, clock: FakeClock, transitions: list[CircuitState]
) -> None:
    fail(breaker, 3)
    assert breaker.state is CircuitState.OPEN
    assert transitions == [CircuitState.OPEN]
    clock.advance(4.0)
    with pytest.raises(CircuitOpenError) as raised:
        breaker.before_call()
    assert raised.value.retry_after == pytest.approx(6.0)


def test_breaker_half_opens_after_the_cool_down_and_admits_one_trial(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(10.0)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.before_call()
    with pytest.raises(CircuitOpenError):
        breaker.before_call()


def test_a_successful_trial_closes_the_breaker(
    breaker: CircuitBreaker, clock: FakeClock, transitions: list[CircuitState]
) -> None:
    fail(breaker, 3)
    clock.advance(10.0)
    breaker.before_call()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert transitions == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED


def test_a_failed_trial_reopens_the_breaker_for_a_full_cool_down(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(10.0)
    fail(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after() == pytest.approx(10.0)
    clock.advance(9.9)
    assert breaker.state is CircuitState.OPEN


def test_late_failures_of_calls_admitted_before_opening_do_not_extend_the_cool_down(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(4):
        breaker.before_call()
    for _ in range(3):
        breaker.record_failure()
    clock.advance(5.0)
    breaker.record_failure()
    assert breaker.retry_after() == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("threshold", "timeout", "trials"), [(0, 1.0, 1), (1, 0.0, 1), (1, 1.0, 0)]
)
def test_breaker_rejects_nonsense_settings(threshold: int, timeout: float, trials: int) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        CircuitBreaker(
            failure_threshold=threshold, reset_timeout=timeout, half_open_max_calls=trials
        )


def test_an_abandoned_trial_frees_its_slot_without_judging_the_dependency(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(10.0)
    breaker.before_call()
    breaker.record_abandoned()
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.before_call()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
