"""The phone number of a user's Slack profile: one lookup for every caller.

`read_profiles` reads the `phone` field of each user's profile with users.info (all
the users at once, within one `within` seconds), turns it into E.164 with the app's default
region, and keeps a usable number in the database (`slack_user_phones`). Callers
differ only in which comes first:

- `@user` recipients and the policy checks (before the ack): the number kept within
  `max_age` first, Slack only for the others (`fresh=False`);
- an escalation step when it runs (the worker): Slack first, so a number changed
  since the policy was saved is the one called; when Slack cannot answer, the number
  kept within `max_age` (`fresh=True`).

Each user gets a `Contact` (a usable number) or a `Problem` (no phone, an unusable
one, or a profile Slack could not give just now, with the error).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from slack_sdk.errors import SlackApiError

from bot.core.escalation import Contact
from bot.input.phones import PhoneNumberError, to_e164
from bot.slack.context import SlackContext

log = logging.getLogger(__name__)

# Slack errors that trying again later may mend (besides timeouts and network errors).
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"}
)


@dataclass(frozen=True)
class Problem:
    """Why a user has no usable number: `none` (no phone in the profile), `invalid` (one
    that is not a valid number; `raw` is it), `unreadable` (Slack did not say: `error`)."""

    kind: Literal["none", "invalid", "unreadable"]
    raw: str = ""
    error: BaseException | None = None

    @property
    def transient(self) -> bool:
        """Slack could not answer just now (slow, rate limited, a 5xx, the network)."""
        return self.kind == "unreadable" and is_transient(self.error)


def is_transient(error: BaseException | None) -> bool:
    if isinstance(error, TimeoutError | OSError):
        return True
    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", 200) or 200
        return status == 429 or status >= 500 or error.response.get("error") in TRANSIENT_ERRORS
    return False


async def read_profiles(
    ctx: SlackContext,
    users: Sequence[str],
    *,
    within: float,
    max_age: float,
    fresh: bool = False,
) -> dict[str, Contact | Problem]:
    """Each user's number (see the module's docstring): `fresh=False` uses a number kept
    within `max_age` before asking Slack; `fresh=True` asks Slack first and uses such a
    number only when Slack could not answer (`max_age=math.inf`: whatever its age)."""
    store = ctx.slack_store
    region = ctx.settings.default_phone_region
    found: dict[str, Contact | Problem] = {}

    def kept(user: str) -> Contact | None:
        raw = store.user_phone(user, max_age)
        if not raw:
            return None
        try:
            return Contact(phone=to_e164(raw, region))
        except PhoneNumberError:
            return None

    missing: list[str] = []
    for user in dict.fromkeys(users):
        contact = None if fresh else kept(user)
        if contact is None:
            missing.append(user)
        else:
            found[user] = contact
    if not missing:
        return found
    deadline = asyncio.get_running_loop().time() + within

    async def read(user: str) -> dict:
        async with asyncio.timeout_at(deadline):
            answer = await ctx.client.users_info(user=user)
        return answer.get("user") or {}

    answers = await asyncio.gather(*(read(u) for u in missing), return_exceptions=True)
    for user, answer in zip(missing, answers, strict=True):
        if isinstance(answer, BaseException):
            if isinstance(answer, asyncio.CancelledError):
                raise answer
            log.info("no profile for %s from users.info (%s)", user, type(answer).__name__)
            found[user] = (kept(user) if fresh else None) or Problem("unreadable", error=answer)
            continue
        found[user] = _contact(ctx, user, answer, region)
    return found


def _contact(ctx: SlackContext, user_id: str, user: dict, region: str | None) -> Contact | Problem:
    profile = user.get("profile") or {}
    raw = str(profile.get("phone") or "").strip()
    if not raw:
        return Problem("none")
    try:
        phone = to_e164(raw, region)
    except PhoneNumberError:
        return Problem("invalid", raw=raw)
    ctx.slack_store.keep_user_phone(user_id, raw)  # only a usable number is kept
    name = (
        str(profile.get("real_name") or user.get("real_name") or "").strip()
        or str(profile.get("display_name") or "").strip()
        or None
    )
    return Contact(phone=phone, name=name)
