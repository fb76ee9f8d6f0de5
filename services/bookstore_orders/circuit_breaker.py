"""A small circuit breaker so a failing catalog is answered fast instead of waited on."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class CircuitState(enum.IntEnum):
    """Breaker states; the values are what the circuit-state gauge exports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitOpenError(Exception):
    """Raised instead of calling a dependency while the breaker is open."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"circuit open; retry after {retry_after:.1f}s")
        self.retry_after = retry_after


class CircuitBreaker:
    """Closed -> open after N consecutive failures -> half-open after a cool-down -> closed.

    In half-open state a limited number of trial calls go through; one success closes the
    circuit, one failure opens it again for another cool-down. The clock is injectable so
    the state machine is tested without sleeping. Single-threaded (asyncio) use only.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 5.0,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        if failure_threshold < 1 or half_open_max_calls < 1 or reset_timeout <= 0:
            raise ValueError("failure_threshold, half_open_max_calls and reset_timeout must be > 0")
        self._failure_threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._on_state_change = on_state_change
        self._state = CircuitState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._half_open_in_flight = 0

    @property
    def state(self) -> CircuitState:
        """The current state, moving open -> half-open once the cool-down has passed."""
        if (
            self._state is CircuitState.OPEN
            and self._clock() - self._opened_at >= self._reset_timeout
        ):
            self._transition(CircuitState.HALF_OPEN)
        return self._state

    def retry_after(self) -> float:
        """Seconds until the breaker will let a trial call through (0 when it would now)."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._reset_timeout - (self._clock() - self._opened_at))

    def before_call(self) -> None:
        """Admit a call or raise CircuitOpenError; every admitted call must be reported."""
        state = self.state
        if state is CircuitState.OPEN:
            raise CircuitOpenError(self.retry_after())
        if state is CircuitState.HALF_OPEN:
            if self._half_open_in_flight >= self._half_open_max_calls:
                raise CircuitOpenError(self._reset_timeout)
            self._half_open_in_flight += 1

    def record_success(self) -> None:
        """Report an admitted call that succeeded: closes a half-open circuit."""
        self._release_trial()
        self._consecutive_failures = 0
        if self._state is not CircuitState.CLOSED:
            self._transition(CircuitState.CLOSED)

    def record_failure(self) -> None:
        """Report an admitted call that failed: may open the circuit."""
        was_trial = self._release_trial()
        self._consecutive_failures += 1
        if self._state is CircuitState.OPEN:
            return  # a straggler admitted before the circuit opened; keep the cool-down
        if was_trial or self._consecutive_failures >= self._failure_threshold:
            self._opened_at = self._clock()
            self._transition(CircuitState.OPEN)

    def record_abandoned(self) -> None:
        """Report an admitted call that ended without an answer (e.g. cancelled)."""
        self._release_trial()

    def _release_trial(self) -> bool:
        """Free a half-open trial slot; True when the reported call was such a trial."""
        if self._state is CircuitState.HALF_OPEN and self._half_open_in_flight > 0:
            self._half_open_in_flight -= 1
            return True
        return False

    def _transition(self, state: CircuitState) -> None:
        """Enter a new state and tell the observer (the metrics gauge)."""
        self._state = state
        self._half_open_in_flight = 0
        if state is CircuitState.CLOSED:
            self._consecutive_failures = 0
        if self._on_state_change is not None:
            self._on_state_change(state)
