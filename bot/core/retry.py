"""The one retry policy: exponential backoff with jitter, and the provider's own
`Retry-After` when it gave one.

Two kinds of work retry with it. A request to a provider or to Slack, inside
one job, retries in place with stamina (`retrying`). A job that fails is put
back in the queue to run again after `backoff` (the worker does that), so a
long outage costs nothing while it lasts and survives a restart.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import stamina
import stamina.instrumentation

# The hooks (bot/providers/http.py) log each retry with what failed; stamina's own
# log line says only that one was scheduled.
stamina.instrumentation.set_on_retry_hooks([])

# A hook tells whether an exception is worth another attempt: False (give up),
# True (back off as usual) or a number of seconds (the provider said how long).
RetryHook = Callable[[Exception], bool | float]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to try again."""

    attempts: int | None = 4  # None: until it works
    wait_initial: float = 0.5
    wait_max: float = 60.0
    wait_jitter: float = 0.5
    wait_exp_base: float = 2.0

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based): what the
        other side asked for, else the same curve stamina uses."""
        if retry_after is not None:
            return max(0.0, retry_after)
        jitter = random.uniform(0, self.wait_jitter) if self.wait_jitter else 0.0
        exponent = min(attempt - 1, 60)
        return min(self.wait_max, self.wait_initial * self.wait_exp_base**exponent + jitter)

    def retrying(self, on: RetryHook) -> AsyncIterator[stamina.Attempt]:
        """`async for attempt in policy.retrying(hook): with attempt: …`"""
        return aiter(
            stamina.retry_context(
                on=on,
                attempts=self.attempts,
                timeout=None,
                wait_initial=self.wait_initial,
                wait_max=self.wait_max,
                wait_jitter=self.wait_jitter,
                wait_exp_base=self.wait_exp_base,
            )
        )

    def faster(self, factor: float) -> RetryPolicy:
        """The same policy with every wait divided by `factor` (tests, demos)."""
        return replace(
            self,
            wait_initial=self.wait_initial / factor,
            wait_max=self.wait_max / factor,
            wait_jitter=self.wait_jitter / factor,
        )


# Requests to providers: a few quick attempts, as a user is usually waiting.
PROVIDER_RETRIES = RetryPolicy(attempts=4, wait_initial=0.5, wait_max=8.0, wait_jitter=0.5)
# Jobs: until they work (or their kind's own limit), backing off to a minute.
JOB_RETRIES = RetryPolicy(attempts=None, wait_initial=1.0, wait_max=60.0, wait_jitter=1.0)
