"""One exception per kind of failure talking to Intron. None of them ever carries the API key."""

from __future__ import annotations


class IntronError(Exception):
    """Base class: `operation` is what we were doing; `status_code` is what Intron answered."""

    def __init__(self, message: str, *, operation: str = "", status_code: int | None = None):
        self.message = message
        self.operation = operation
        self.status_code = status_code
        super().__init__(message)


class AuthenticationError(IntronError):
    """401/403: the API key is missing, wrong or lacks access."""


class NotFoundError(IntronError):
    """404: the workflow, call or batch does not exist."""


class IntronValidationError(IntronError):
    """400/422: Intron refused the request; `message` is Intron's own explanation."""


class RateLimitedError(IntronError):
    """429 from Intron, or our own limiter says the wait would be longer than allowed.

    `retry_after` is the number of seconds after which the action is possible again.
    """

    def __init__(self, message: str, *, retry_after: float | None, **kwargs) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ServerError(IntronError):
    """5xx after the retries we are allowed to make."""


class IntronConnectionError(IntronError):
    """Intron could not be reached (connection refused, DNS, timeout before sending)."""


class OutcomeUnknownError(IntronError):
    """The request may or may not have been carried out (read timeout, 500 on a POST).

    Not resent on purpose: resending `POST /call` could call people twice.
    Reconcile instead, e.g. by listing the workflow's calls and looking for our
    request id in `user_tag_identifiers`.
    """
