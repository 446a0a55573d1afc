"""Checks for an escalation policy before it is stored, from Slack or from the file.

`PolicyChecker.check` takes a `PolicyDraft` (the fields as someone wrote them) and
answers the `Policy` to store, or every problem at once, each naming the field, the
step and the value and saying what would be right. What needs the outside world is
handed in, so the core knows nothing of Slack: `phones` reads the phone numbers of
Slack users' profiles, `channel_problem` says why a channel cannot be used (Slack:
conversations.info; the file: None, only the id's form is checked).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core.policies import (
    ESCALATION_VARIABLES,
    MAX_REPEAT,
    MAX_STEPS,
    Policy,
    PolicyStep,
    file_policy_id,
    is_user_id,
    new_policy_id,
    parse_wait,
)
from bot.core.providers import Providers
from bot.input.phones import NumberType, PhoneNumberError, mask, to_e164
from bot.providers.base import Workflow
from bot.store.policies import PolicyStore
from bot.text import clip, quoted

NAME_LIMIT = 80
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
ADD_PHONE = "ask them to add a phone number to their Slack profile, or give the number instead"

# user ids → the phone in each one's Slack profile ('' when none), or the exception
# met while reading it.
PhoneLookup = Callable[[Sequence[str]], Awaitable[dict[str, str | BaseException]]]
ChannelCheck = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True)
class StepDraft:
    """One step as written: whom (a user id or a number as typed) and the wait as typed."""

    call: str | None  # None: refused while reading (an `Issue` in the draft says why)
    wait: str


@dataclass
class PolicyDraft:
    """A policy as someone wrote it, before it is checked. `workflow` and
    `fallback_workflow` may be a workflow's id or its name (any case)."""

    name: str
    channel: str
    workflow: str
    steps: list[StepDraft]
    voice: str | None = None
    repeat: Any = 0
    fallback_workflow: str | None = None
    urgent: bool = False
    source: str = "slack"
    policy_id: str | None = None  # set when editing
    created_by: str | None = None
    # Problems found while reading the draft (a line that is not `<who> <wait>`), by
    # field; they are reported with the checker's own.
    early: list[Issue] = field(default_factory=list)


@dataclass(frozen=True)
class Issue:
    """One problem: the field (`name`, `channel`, `workflow`, `voice`, `steps`, `repeat`,
    `fallback_workflow`), the 1-based step when it is about one, and the text."""

    field: str
    text: str
    step: int | None = None

    def named(self, policy: str | None = None) -> str:
        """The problem as one line, naming the policy when given: for the log and the
        Home tab (`policy 'Payments': step 2: wait '2s' is too short…`)."""
        where = f"policy {quoted(policy, 60)}: " if policy else ""
        step = f"step {self.step}: " if self.step is not None else ""
        return f"{where}{step}{self.text}"


@dataclass
class Checked:
    """What `check` found: the policy (None when refused), its problems and warnings."""

    policy: Policy | None
    issues: list[Issue]
    warnings: list[str]


class PolicyChecker:
    """Checks drafts against the workflow cache, the stored policies and the numbers rules."""

    def __init__(
        self,
        policies: PolicyStore,
        workflows: Callable[[], Sequence[Workflow]],
        providers: Providers,
        *,
        default_region: str | None = None,
        allowed_number_types: Collection[NumberType] = frozenset(),
        opted_out: Callable[[str], bool] | None = None,
    ) -> None:
        self.policies = policies
        self.workflows = workflows
        self.providers = providers
        self.default_region = default_region
        self.allowed_number_types = allowed_number_types
        self.opted_out = opted_out

    async def check(
        self,
        draft: PolicyDraft,
        *,
        phones: PhoneLookup | None,
        channel_problem: ChannelCheck | None = None,
        unknown_profiles_ok: bool = False,
    ) -> Checked:
        """Check every field of `draft`, whatever another holds, so one answer lists all.

        `phones` None: users are not looked up (their id's form is checked only).
        `unknown_profiles_ok`: a profile that could not be read (Slack slow or down) is
        a warning rather than a refusal (the file at start: the step reads it again when
        it runs, and a Slack hiccup must not drop a pager)."""
        issues = list(draft.early)
        warnings: list[str] = []
        name = draft.name.strip()
        self._name(name, draft, issues)
        channel = draft.channel.strip()
        # Slack's answers (the channel, the users' profiles) are awaited together: all of
        # this happens before a modal's ack, which Slack waits for 3 seconds at most.
        users = sorted(
            {d.call.strip() for d in draft.steps if d.call and is_user_id(d.call.strip())}
        )
        channel_answer, profiles = await asyncio.gather(
            channel_problem(channel)
            if channel_problem is not None and CHANNEL_ID.match(channel)
            else _nothing(),
            phones(users) if phones is not None and users else _nothing(),
        )
        if not CHANNEL_ID.match(channel):
            issues.append(
                Issue(
                    "channel",
                    f"channel {quoted(channel)} is not a channel id; give one like C0123ABCD "
                    "(in Slack: the channel's details, at the bottom)",
                )
            )
        elif channel_answer:
            issues.append(Issue("channel", channel_answer))
        workflow = self._workflow(draft.workflow, "workflow", issues)
        fallback = None
        if draft.fallback_workflow and draft.fallback_workflow.strip():
            fallback = self._workflow(draft.fallback_workflow, "fallback_workflow", issues)
            if fallback is not None and workflow is not None:
                self._other_provider(fallback, workflow, issues)
        voice = (draft.voice or "").strip() or None
        if voice is not None and workflow is not None:
            self._voice(voice, workflow, issues)
        repeat = self._repeat(draft.repeat, issues)
        steps = self._steps(draft.steps, profiles or {}, unknown_profiles_ok, issues, warnings)
        if issues or workflow is None or repeat is None or steps is None:
            return Checked(None, issues, warnings)
        if draft.source == "file":
            policy_id = file_policy_id(name)
        else:
            policy_id = draft.policy_id or new_policy_id()
        policy = Policy(
            id=policy_id,
            name=name,
            channel=channel,
            workflow=workflow.id,
            voice=voice,
            steps=steps,
            repeat=repeat,
            fallback_workflow=fallback.id if fallback else None,
            urgent=bool(draft.urgent),
            source="file" if draft.source == "file" else "slack",
            created_by=draft.created_by,
        )
        return Checked(policy, [], warnings)

    # ------------------------------------------------------------ fields

    def _name(self, name: str, draft: PolicyDraft, issues: list[Issue]) -> None:
        if not name:
            issues.append(Issue("name", "Give the policy a name, e.g. Payments on-call."))
            return
        if len(name) > NAME_LIMIT:
            issues.append(
                Issue("name", f"The name is {len(name)} characters; keep it to {NAME_LIMIT}.")
            )
            return
        same = self.policies.by_name(name)
        mine = draft.policy_id if draft.source != "file" else file_policy_id(name)
        if same is not None and same.id != mine:
            where = " (kept as code, ESCALATION_POLICIES_FILE)" if same.source == "file" else ""
            issues.append(
                Issue(
                    "name",
                    f"name {quoted(name)} is already used by another policy{where}; "
                    "choose another name",
                )
            )

    def _workflow(self, ref: str, field_name: str, issues: list[Issue]) -> Workflow | None:
        """The workflow named (id or name, any case) if it can run an escalation."""
        label = "fallback workflow" if field_name == "fallback_workflow" else "workflow"
        wanted = (ref or "").strip()
        cached = [w for w in self.workflows() if w.provider in self.providers]
        found = next((w for w in cached if w.id == wanted), None)
        if found is None:
            named = [w for w in cached if w.name.casefold() == wanted.casefold()]
            if len(named) > 1:
                ids = ", ".join(w.id for w in named)
                issues.append(
                    Issue(
                        field_name,
                        f"{label} {quoted(wanted)} names {len(named)} workflows; "
                        f"give its id instead ({clip(ids, 200)})",
                    )
                )
                return None
            found = named[0] if named else None
        if found is None:
            if not wanted:
                issues.append(Issue(field_name, f"Choose the {label} the calls use."))
            else:
                known = ", ".join(w.name for w in cached) or "none yet"
                issues.append(
                    Issue(
                        field_name,
                        f"{label} {quoted(wanted)} does not exist; known workflows: "
                        f"{clip(known, 300)}",
                    )
                )
            return None
        if not takes_digit_1(found):
            keys = ", ".join(f"{d}={m}" for d, m in sorted(found.keypad.items())) or "none"
            issues.append(
                Issue(
                    field_name,
                    f"{label} {quoted(found.name)} takes no keypad reply with digit 1 (its keys: "
                    f"{clip(keys, 120)}); an escalation needs 1 to mean acknowledge, so add "
                    "1=Acknowledge to it or choose another",
                )
            )
            return None
        extra = [v for v in found.variables if v not in ESCALATION_VARIABLES]
        if extra:
            shown = ", ".join(f"[{v}]" for v in extra)
            allowed = ", ".join(f"[{v}]" for v in ESCALATION_VARIABLES)
            issues.append(
                Issue(
                    field_name,
                    f"{label} {quoted(found.name)} needs {clip(shown, 120)}, which an "
                    f"escalation cannot fill; it may use only {allowed}",
                )
            )
            return None
        return found

    def _other_provider(self, fallback: Workflow, workflow: Workflow, issues: list) -> None:
        if fallback.provider == workflow.provider:
            issues.append(
                Issue(
                    "fallback_workflow",
                    f"fallback workflow {quoted(fallback.name)} is on the same provider as the "
                    f"workflow ({fallback.provider}); a fallback is used when that provider "
                    "cannot place the call, so choose one on another provider, or none",
                )
            )

    def _voice(self, voice: str, workflow: Workflow, issues: list[Issue]) -> None:
        try:
            keys = [v.key for v in self.providers.get(workflow.provider).voices()]
        except Exception:  # a provider that lists no voices: its own default is used
            return
        if keys and voice not in keys:
            issues.append(
                Issue(
                    "voice",
                    f"voice {quoted(voice)} is not one of {workflow.provider}'s voices "
                    f"({clip(', '.join(keys), 300)}); leave it empty for the default",
                )
            )

    def _repeat(self, value: Any, issues: list[Issue]) -> int | None:
        text = str(value).strip() if value is not None else "0"
        if isinstance(value, bool) or not re.fullmatch(r"\d{1,3}", text or "0"):
            issues.append(
                Issue(
                    "repeat", f"repeat {quoted(text)} is not a whole number from 0 to {MAX_REPEAT}"
                )
            )
            return None
        number = int(text or "0")
        if number > MAX_REPEAT:
            issues.append(
                Issue("repeat", f"repeat '{number}' is too many; at most {MAX_REPEAT} more rounds")
            )
            return None
        return number

    def _steps(
        self,
        drafts: Sequence[StepDraft],
        profiles: dict[str, str | BaseException],
        unknown_ok: bool,
        issues: list[Issue],
        warnings: list[str],
    ) -> list[PolicyStep] | None:
        if not drafts:
            issues.append(
                Issue(
                    "steps",
                    "Give at least one step: whom to call and how long to wait, e.g. @ada 5m",
                )
            )
            return None
        if len(drafts) > MAX_STEPS:
            issues.append(Issue("steps", f"{len(drafts)} steps is too many; at most {MAX_STEPS}"))
            return None
        steps: list[PolicyStep] = []
        bad = False
        for number, draft in enumerate(drafts, start=1):
            if draft.call is None:
                bad = True
                continue
            call = draft.call.strip()
            try:
                wait = parse_wait(draft.wait)
            except ValueError as exc:
                issues.append(Issue("steps", str(exc), number))
                bad = True
                wait = 0.0
            if is_user_id(call):
                phone = self._user_phone(call, profiles, number, unknown_ok, issues, warnings)
                if phone is False:
                    bad = True
                elif isinstance(phone, str):
                    self._warn_opted_out(phone, number, warnings, f"<@{call}>'s number")
            else:
                try:
                    call = to_e164(call, self.default_region, self.allowed_number_types)
                except PhoneNumberError as exc:
                    issues.append(
                        Issue("steps", f"{exc}; give a Slack user (@someone) or a number", number)
                    )
                    bad = True
                    continue
                self._warn_opted_out(call, number, warnings, mask(call))
            if not bad:
                steps.append(PolicyStep(call=call, wait=wait))
        return None if bad else steps

    def _user_phone(
        self,
        user: str,
        profiles: dict[str, str | BaseException],
        number: int,
        unknown_ok: bool,
        issues: list[Issue],
        warnings: list[str],
    ) -> str | bool | None:
        """The user's number (E.164); False when refused; None when not known (not looked
        up, or Slack could not answer and that is allowed)."""
        if user not in profiles:
            return None
        profile = profiles[user]
        who = f"<@{user}>"
        if isinstance(profile, BaseException):
            text = f"could not read {who}'s profile from Slack just now"
            if unknown_ok:
                warnings.append(f"step {number}: {text}; it is read again when the step runs")
                return None
            issues.append(Issue("steps", f"{text}; try again, or give the number", number))
            return False
        if not profile:
            issues.append(
                Issue(
                    "steps",
                    f"{who} has no phone number in their Slack profile; {ADD_PHONE}",
                    number,
                )
            )
            return False
        try:
            return to_e164(profile, self.default_region, self.allowed_number_types)
        except PhoneNumberError:
            issues.append(
                Issue(
                    "steps",
                    f"the phone number in {who}'s Slack profile is not a valid number; "
                    f"{ADD_PHONE} (with its country code, e.g. +2348076960623)",
                    number,
                )
            )
            return False

    def _warn_opted_out(self, phone: str, number: int, warnings: list[str], shown: str) -> None:
        if self.opted_out is not None and self.opted_out(phone):
            warnings.append(
                f"step {number}: {shown} is on the opt-out list (they asked not to get robo "
                "calls), so this step cannot reach them; replace it"
            )


async def _nothing() -> Any:
    return None


def takes_digit_1(workflow: Workflow) -> bool:
    """True when pressing 1 on this workflow's call is a reply the app hears."""
    if "1" in workflow.keypad:
        return True
    flow = workflow.call_flow or {}
    for step in flow.get("steps") or [] if isinstance(flow, dict) else []:
        for branch in (step.get("branches") or []) if isinstance(step, dict) else []:
            if isinstance(branch, dict) and str(branch.get("digit")) == "1":
                return True
    return False
