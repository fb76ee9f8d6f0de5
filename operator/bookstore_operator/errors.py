"""The one place that decides whether a failure is permanent or worth retrying (and when)."""

from __future__ import annotations

import json

import kopf
import pydantic
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

# Retry delays in seconds; short enough to recover quickly, long enough not to hammer the API.
CONFLICT_DELAY = 1.0
THROTTLED_DELAY = 10.0
SERVER_ERROR_DELAY = 10.0
NOT_READY_DELAY = 15.0
# Requests the API server will reject whatever we retry: invalid objects, unknown verbs.
PERMANENT_STATUSES = frozenset({400, 405, 415, 422})
# What the user can do about each kind of refused child write (ChildWriteError.refusal).
REFUSAL_ADVICE = {
    "QuotaExceeded": "raise the namespace's ResourceQuota or free room under it",
    "AdmissionDenied": "an admission webhook or policy refused it: change that policy or the spec",
    "AdmissionWebhookFailed": "an admission webhook could not be called: check that it runs",
    "ChildConflict": "another writer kept changing it; the operator retries",
    "ApiServerError": "the API server could not take the write; the operator retries",
    "ChildRejected": "the API server refused it",
}


class UserFixableError(Exception):
    """A problem the user must fix (e.g. a missing Secret); reported in status, then retried."""

    def __init__(self, reason: str, message: str, *, delay: float = NOT_READY_DELAY) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.delay = delay


class ChildWriteError(Exception):
    """The API server refused a write to one child; says which child and why."""

    def __init__(self, child: str, cause: ApiException) -> None:
        self.child = child
        self.cause = cause
        self.status = int(cause.status or 0)
        self.message = _api_message(cause)
        self.detail = f"{cause.status} {cause.reason}: {self.message}"
        super().__init__(f"Writing {child} failed: {self.detail}")

    @property
    def refusal(self) -> str:
        """A CamelCase status reason for this refusal, read from the API server's answer."""
        words = self.message.lower()
        if "exceeded quota" in words:
            return "QuotaExceeded"
        if "denied the request" in words or "denied request" in words:
            return "AdmissionDenied"  # a validating webhook or ValidatingAdmissionPolicy
        if "failed calling webhook" in words:
            return "AdmissionWebhookFailed"
        if self.status == 409:
            return "ChildConflict"
        if self.status == 429 or self.status >= 500 or self.status == 0:
            return "ApiServerError"
        return "ChildRejected"

    @property
    def advice(self) -> str:
        """What the user can do about this refusal, in a few words."""
        return REFUSAL_ADVICE[self.refusal]


def classify(exc: BaseException) -> kopf.PermanentError | kopf.TemporaryError:
    """Turn any failure into kopf's retry decision: permanent, or temporary with a delay."""
    if isinstance(exc, (kopf.PermanentError, kopf.TemporaryError)):
        return exc
    if isinstance(exc, UserFixableError):
        return kopf.TemporaryError(f"{exc.reason}: {exc.message}", delay=exc.delay)
    if isinstance(exc, pydantic.ValidationError):
        return kopf.PermanentError(f"The Bookstore spec is invalid: {exc}")
    if isinstance(exc, ChildWriteError):
        verdict = classify(exc.cause)
        if isinstance(verdict, kopf.TemporaryError):
            return kopf.TemporaryError(str(exc), delay=verdict.delay)
        return kopf.PermanentError(str(exc))
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        detail = f"API answered {status} {exc.reason}"
        if status == 409:
            return kopf.TemporaryError(f"{detail} (conflict)", delay=CONFLICT_DELAY)
        if status == 429:
            return kopf.TemporaryError(f"{detail} (throttled)", delay=_retry_after(exc))
        if status in PERMANENT_STATUSES:
            return kopf.PermanentError(f"{detail}: {_api_message(exc)}")
        return kopf.TemporaryError(detail, delay=SERVER_ERROR_DELAY)
    if isinstance(exc, (TimeoutError, ConnectionError, urllib3.exceptions.HTTPError)):
        return kopf.TemporaryError(f"API unreachable: {exc!r}", delay=SERVER_ERROR_DELAY)
    return kopf.TemporaryError(f"Unexpected failure: {exc!r}", delay=SERVER_ERROR_DELAY)


def outcome(verdict: kopf.PermanentError | kopf.TemporaryError) -> str:
    """The result of a failed reconcile for the metrics: `permanent` or `retry`."""
    return "permanent" if isinstance(verdict, kopf.PermanentError) else "retry"


def _api_message(exc: ApiException) -> str:
    """The `message` of the Kubernetes Status the server answered with, else the raw body."""
    try:
        return str(json.loads(exc.body or "")["message"])
    except (ValueError, TypeError, KeyError):
        return str(exc.body or exc.reason)


def _retry_after(exc: ApiException) -> float:
    """Honour the server's Retry-After header when it sends one."""
    headers = exc.headers or {}
    try:
        return max(1.0, float(headers.get("Retry-After", THROTTLED_DELAY)))
    except (TypeError, ValueError):
        return THROTTLED_DELAY
