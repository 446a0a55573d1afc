"""What a running escalation looks like in Slack: its parent message in the policy's
channel (the alert, the policy, who is being called now and since when, the status,
**Acknowledge** and **Resolve** while it runs) and one thread reply per step.

Every string someone else wrote (the alert, the policy's name, a provider's error,
who stopped it when that is not a Slack user) goes through `bot.text.outside`, so an
alert saying `<!channel>` or `<@U…>` shows as written and pings nobody; the one
mention the app makes itself is the final "nobody acknowledged" reply's `<!channel>`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ConfirmObject

from bot.core.escalation import (
    Change,
    EscalationRecord,
    EscalationStatus,
    StepOutcome,
    StepRecord,
    elapsed,
)
from bot.core.policies import format_wait, is_user_id
from bot.input import phones
from bot.slack.blocks import Message, md, message, note, sandbox_blocks, when
from bot.slack.ids import ActionId
from bot.text import outside, outside_error

ALERT_LIMIT = 1500  # of the alert's text in the parent (the thread is for the rest)
SOURCES = {
    "command": "`/robocall escalate`",
    "shortcut": "the *Escalate by phone* shortcut",
    "alertmanager": "Alertmanager",
    "grafana": "Grafana",
    "test": "a test",
}


def who(value: str | None) -> str:
    """Whom a step calls, who started or stopped an escalation, for mrkdwn: a user id as
    a mention, a number masked (as it is when the core masked it already), any other
    text (`Alertmanager`) escaped; nobody, `someone`. The one such helper (the policy
    list, the Home tab and the thread all use it)."""
    if not value:
        return "someone"
    if is_user_id(value):
        return f"<@{value}>"
    if phones.MASK in value:
        return value
    if value.startswith("+") and value[1:].isdigit():
        return phones.mask(value)
    return outside(value, 80)


def _after(record: EscalationRecord) -> str:
    """How long it ran, as a policy's waits are written (`45s`, `3m5s`, `1h2m`)."""
    return format_wait(round(elapsed(record.started_at, record.ended_at)))


def position(record: EscalationRecord, step: int, round: int, steps: int, repeat: int) -> str:
    """`step 2 of 3`, with `, round 1 of 2` when the chain repeats."""
    where = f"step {step + 1} of {steps}"
    if repeat and not record.test:
        where += f", round {round + 1} of {repeat + 1}"
    return where


def _quoted(text: str) -> str:
    shown = outside(text, ALERT_LIMIT, multiline=True) or "(no message)"
    return "\n".join(f"> {line}" for line in shown.split("\n"))


def _acknowledged_on_call(
    record: EscalationRecord, steps: Iterable[StepRecord]
) -> StepRecord | None:
    """The step whose callee pressed 1 and so acknowledged it (not a later key 1 on a call
    that was still ringing when someone pressed Acknowledge in Slack)."""
    return next(
        (s for s in steps if s.outcome == StepOutcome.ACKNOWLEDGED and s.who == record.ended_by),
        None,
    )


def status_line(
    record: EscalationRecord, steps: Sequence[StepRecord], total: int, repeat: int
) -> str:
    """The parent's status: who is being called now and since when, or how it ended."""
    after = _after(record)
    if record.status == EscalationStatus.RUNNING:
        current = next((s for s in steps if (s.round, s.step) == (record.round, record.step)), None)
        where = position(record, record.step, record.round, total, repeat)
        if current is None or current.started_at is None:
            name = who(current.call) if current else who(record.calling)
            return f":telephone_receiver: *Calling* {name} next ({where})"
        since = when(current.started_at)
        return f":telephone_receiver: *Calling* {who(current.call)} ({where}) since {since}"
    if record.status == EscalationStatus.ACKNOWLEDGED:
        by_call = _acknowledged_on_call(record, steps)
        late = by_call is not None and bool(by_call.detail)  # pressed after the step's wait
        how = (
            (
                " (pressed 1 on the call, after the step's wait)"
                if late
                else " (pressed 1 on the call)"
            )
            if by_call
            else ""
        )
        return f":white_check_mark: *Acknowledged* by {who(record.ended_by)}{how} after {after}"
    if record.status == EscalationStatus.RESOLVED:
        return f":heavy_check_mark: *Resolved* by {who(record.ended_by)} after {after}"
    if record.test:
        return f":no_entry: *Test over*: nobody acknowledged the first step (after {after})"
    rounds = f" ({repeat + 1} rounds)" if repeat else ""
    if steps and all(s.skipped for s in steps):
        return (
            f":no_entry: *Nobody acknowledged*: no step could be called{rounds}: "
            f"{skipped_summary(steps)}, over {after}"
        )
    return f":no_entry: *Nobody acknowledged*: every step was called{rounds}, over {after}"


# Why steps were skipped, in a few words each, for the summary when nobody was called.
_SKIPPED_WHY = {
    StepOutcome.OUTSIDE_HOURS: "outside calling hours",
    StepOutcome.OPTED_OUT: "on the opt-out list",
    StepOutcome.NO_PHONE: "without a usable phone number",
    StepOutcome.NOT_ORDERED: "whose call could not be ordered",
}


def skipped_summary(steps: Sequence[StepRecord]) -> str:
    """`all 4 steps outside calling hours`, `2 steps outside calling hours, 1 on the
    opt-out list`: why the skipped steps among these were skipped."""
    counts = Counter(_SKIPPED_WHY[s.outcome] for s in steps if s.skipped and s.outcome)
    if len(counts) == 1:
        [(why, count)] = counts.items()
        return f"all {count} steps {why}" if count > 1 else f"the step {why}"
    shown = [f"{count} {why}" for why, count in counts.most_common()]
    return f"{shown[0].replace(' ', ' steps ', 1)}, " + ", ".join(shown[1:])


def parent_message(
    record: EscalationRecord,
    steps: Sequence[StepRecord],
    total: int,
    repeat: int,
    *,
    sandbox: bool = False,
) -> Message:
    """The escalation's parent message, as it stands now."""
    test = " — *test* (only the first step is called)" if record.test else ""
    title = f":rotating_light: *Escalation* · policy *{outside(record.policy_name, 80)}*{test}"
    status = status_line(record, steps, total, repeat)
    source = SOURCES.get(record.source, outside(record.source, 40))
    started = f"Started by {who(record.started_by)} via {source}, {when(record.started_at)}"
    blocks: list[Block] = [
        *sandbox_blocks(sandbox),
        md(f"{title}\n{_quoted(record.message)}"),
        md(status),
        note(f"{started} · `{record.id}`"),
    ]
    if record.status == EscalationStatus.RUNNING:
        blocks.append(actions(record))
    fallback = f"Escalation ({outside(record.policy_name, 80)}): {status}"
    return message(fallback, blocks)


def actions(record: EscalationRecord) -> ActionsBlock:
    """**Acknowledge** and **Resolve** (anyone in the channel may press them)."""
    return ActionsBlock(
        block_id=f"escalation:{record.id}",
        elements=[
            ButtonElement(
                text="Acknowledge",
                action_id=ActionId.ESCALATION_ACKNOWLEDGE,
                value=record.id,
                style="primary",
            ),
            ButtonElement(
                text="Resolve",
                action_id=ActionId.ESCALATION_RESOLVE,
                value=record.id,
                confirm=ConfirmObject(
                    title="Resolve this escalation?",
                    text="Nobody more will be called for it.",
                    confirm="Resolve",
                    deny="Keep it",
                ),
            ),
        ],
    )


_OUTCOMES = {
    StepOutcome.ACKNOWLEDGED: ":white_check_mark: answered and pressed 1: *acknowledged*",
    StepOutcome.NO_KEY: "answered, but pressed no key",
    StepOutcome.NO_ANSWER: "did not answer",
    StepOutcome.BUSY: "was busy",
    StepOutcome.FAILED: "the call failed",
    StepOutcome.NO_RESULT: "no result came within the step's wait",
}
URGENT_HINT = "mark the policy urgent to call at any hour"


def _outside_hours(step: StepRecord) -> str:
    """`skipped: outside calling hours (08:00-21:00, Africa/Lagos) — opens <date>; …`."""
    if step.opens_at is None:  # its hours never open in all of its zones: the core says why
        return f":zzz: skipped: outside calling hours: {outside(step.detail, 500)}; {URGENT_HINT}"
    window = outside(step.detail, 300)
    return (
        f":zzz: skipped: outside calling hours ({window}) — opens {when(step.opens_at)}; "
        f"{URGENT_HINT}"
    )


def step_reply(
    record: EscalationRecord,
    step: StepRecord,
    total: int,
    repeat: int,
    secrets: Iterable[str] = (),
) -> Message:
    """One reply per step: who was called, the call's outcome, the key pressed."""
    where = position(record, step.step, step.round, total, repeat).capitalize()
    called = who(step.call)
    if step.outcome == StepOutcome.NO_PHONE:
        what = f":warning: skipped: {outside(step.detail, 300)}"
    elif step.outcome == StepOutcome.NOT_ORDERED:
        what = f":warning: skipped: {outside_error(step.detail, 600, secrets)}"
    elif step.outcome == StepOutcome.OUTSIDE_HOURS:
        what = _outside_hours(step)
    elif step.outcome == StepOutcome.OPTED_OUT and step.started_at is None:
        what = f":no_entry_sign: skipped: {outside(step.detail, 200)}"
    elif step.outcome == StepOutcome.OPTED_OUT:  # put on the list after it was ordered
        what = f":no_entry_sign: not called: {outside(step.detail, 200)}"
    elif step.outcome == StepOutcome.NOT_CALLED:
        what = f"not called: {outside(step.detail, 200)}"
    elif step.outcome == StepOutcome.NOT_PLACED:
        what = f":x: the call could not be placed: {outside_error(step.detail, 600, secrets)}"
    elif step.outcome == StepOutcome.OTHER_KEY:
        what = f"answered and pressed {outside(step.key_pressed, 4)} (1 acknowledges)"
    else:
        what = _OUTCOMES.get(step.outcome, outside(step.outcome, 40)) if step.outcome else "ended"
    if step.phone and step.is_user:
        called += f" ({phones.mask(step.phone)})"
    text = f"{where}: {called} — {what}."
    stopped = record.status in (EscalationStatus.ACKNOWLEDGED, EscalationStatus.RESOLVED)
    if step.outcome == StepOutcome.ACKNOWLEDGED:
        if step.detail:  # e.g. pressed 1 after the step's wait was over
            text += f" ({outside(step.detail, 200)}.)"
        if stopped and record.ended_by != step.who:
            text += f" (It was already {record.status} by {who(record.ended_by)}.)"
    elif record.status == EscalationStatus.RUNNING:
        text += " Moving on."
    elif stopped:
        text += f" (The escalation was already {record.status}.)"
    if step.fallback_request_id and step.fallback_request_id != step.request_id:
        text += " This call was placed with the policy's fallback workflow."
    elif step.fallback_request_id:
        text += " Placed with the policy's fallback workflow."
    if record.test:
        text += " _This was a test: only the first step is called._"
    return message(text, [md(text)])


def fallback_reply(
    record: EscalationRecord, step: StepRecord, total: int, repeat: int, secrets: Iterable[str]
) -> Message:
    """A step's call could not be placed: the fallback workflow is used instead."""
    where = position(record, step.step, step.round, total, repeat).capitalize()
    detail = outside_error(step.detail, 700, secrets)
    text = f":twisted_rightwards_arrows: {where}: {who(step.call)} — {detail}"
    return message(text, [md(text)])


def ended_reply(
    record: EscalationRecord, change: Change, repeat: int, steps: Sequence[StepRecord] = ()
) -> Message | None:
    """The reply that says how the escalation ended: the loud one when nobody acknowledged
    (saying why nobody was called when the calling rules skipped every step)."""
    after = _after(record)
    if change == Change.ACKNOWLEDGED:
        text = f":white_check_mark: Acknowledged by {who(record.ended_by)} after {after}."
    elif change == Change.RESOLVED:
        text = f":heavy_check_mark: Resolved by {who(record.ended_by)} after {after}."
    elif change == Change.EXHAUSTED and record.test:
        first = steps[0] if steps else None
        why = (
            f" (it was skipped: {_SKIPPED_WHY[first.outcome]})"
            if first is not None and first.skipped and first.outcome
            else ""
        )
        text = (
            f":no_entry: Test over: nobody acknowledged the first step{why}. A test calls only "
            "the first step and pings nobody."
        )
    elif change == Change.EXHAUSTED and steps and all(s.skipped for s in steps):
        # Nobody's phone rang at all: say why, so the channel knows what to change.
        rounds = f" in {repeat + 1} rounds" if repeat else ""
        hint = ""
        if any(s.outcome == StepOutcome.OUTSIDE_HOURS for s in steps):
            hint = " To call at any hour, mark the policy urgent."
        text = (
            f"<!channel> :rotating_light: *Nobody acknowledged* "
            f"*{outside(record.policy_name, 80)}*: no step could be called{rounds} — "
            f"{skipped_summary(steps)} — so nobody's phone rang.{hint} Someone needs to take "
            "this alert now."
        )
    elif change == Change.EXHAUSTED:
        rounds = f" in {repeat + 1} rounds" if repeat else ""
        skipped = [s for s in steps if s.skipped]
        tried = (
            f"every step was tried{rounds} ({len(skipped)} skipped: {skipped_summary(skipped)})"
            if skipped
            else f"every step was called{rounds}"
        )
        text = (
            f"<!channel> :rotating_light: *Nobody acknowledged* "
            f"*{outside(record.policy_name, 80)}*: {tried}, and nobody pressed 1. Someone "
            "needs to take this alert now."
        )
    else:
        return None
    return message(text, [md(text)])
