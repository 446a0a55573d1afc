"""Block Kit for escalation policies: the `/robocall escalations` list, the New/Edit
policy modal, Delete's confirmation, the *Escalate by phone* shortcut's modal, and the
Home tab's section of running escalations.

Names, messages and whatever else people wrote go in through `bot.text.outside`;
numbers are shown masked (`+234•••••0623`), users as mentions."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ConversationFilter,
    ConversationSelectElement,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    Option,
    PlainTextInputElement,
    RichTextInputElement,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.core.policies import MAX_REPEAT, Policy, PolicyStep, format_wait, is_user_id
from bot.providers.base import Voice, Workflow
from bot.slack.blocks import Message, md, note, plural, sandbox_blocks, when
from bot.slack.escalations.run_views import who
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.text import clip, outside, outside_plain

NAME = 80  # a policy's name
WORKFLOW = 60  # a workflow's name, in lists and options
MESSAGE = 2_900  # the shortcut's message field (Slack's cap is 3,000)
MAX_LISTED = 14  # policies in the list: 2-3 blocks each, within Slack's 50
MAX_OPTIONS = 100  # Slack's cap on a select's options
MAX_REFUSALS_SHOWN = 10
MAX_RUNNING = 5  # running escalations in the Home tab (2 blocks each, of its 100)
NO_FALLBACK = "none"
DEFAULT_VOICE = "default"
STEPS_HINT = (
    "One step per line: whom to call, then how long they have to press 1, e.g. "
    "@ada 5m, or +2348076960623 30s. Type @ and pick the person, so Slack links them. "
    "Waits from 5s: 30s, 5m, 1h30m."
)
FILE_NOTE = "kept as code (ESCALATION_POLICIES_FILE): read-only here"


class PolicyForm(BaseModel):
    """The policy modal's private_metadata: which policy is edited (None: a new one), and
    the list message it was opened from (redrawn once saved)."""

    policy_id: str | None = None
    response_url: str | None = None


class PolicyRef(BaseModel):
    """Delete's confirmation's private_metadata."""

    policy_id: str
    response_url: str | None = None


class EscalateForm(BaseModel):
    """The shortcut's modal's private_metadata: where the message was."""

    channel_id: str | None = None
    message_ts: str | None = None


# ---------------------------------------------------------------- how things read


def steps_line(steps: Sequence[PolicyStep]) -> str:
    """`<@U1> 5m → +234•••••0623 30s`."""
    return " → ".join(f"{who(s.call)} {format_wait(s.wait)}" for s in steps)


def policy_line(policy: Policy, workflows: Mapping[str, Workflow]) -> str:
    """One policy in the list: name, channel, workflow, steps, repeat, fallback, flags."""
    workflow = workflows.get(policy.workflow)
    workflow_name = outside(workflow.name, WORKFLOW) if workflow else f"`{policy.workflow}`"
    parts = [f"*{outside(policy.name, NAME)}* · <#{policy.channel}> · {workflow_name}"]
    details = [steps_line(policy.steps)]
    if policy.repeat:
        details.append(f"then {plural(policy.repeat, 'more round')}")
    if policy.fallback_workflow:
        fallback = workflows.get(policy.fallback_workflow)
        name = outside(fallback.name, WORKFLOW) if fallback else f"`{policy.fallback_workflow}`"
        details.append(f"fallback {name}")
    if policy.voice:
        details.append(f"voice {outside(policy.voice, 40)}")
    if policy.urgent:
        details.append(":rotating_light: urgent (any hour)")
    if policy.source == "file":
        details.append(f":lock: {FILE_NOTE}")
    return "\n".join([*parts, " · ".join(details)])


def policy_blocks(
    policy: Policy,
    workflows: Mapping[str, Workflow],
    *,
    can_manage: bool,
    flagged: Sequence[str] = (),
) -> list[Block]:
    """One policy and its buttons: Test for everyone; Edit and Delete for admins, and not
    for a policy kept as code."""
    buttons = [ButtonElement(text="Test", action_id=ActionId.POLICY_TEST, value=policy.id)]
    if can_manage and policy.source != "file":
        buttons += [
            ButtonElement(text="Edit", action_id=ActionId.POLICY_EDIT, value=policy.id),
            ButtonElement(
                text="Delete", action_id=ActionId.POLICY_DELETE, value=policy.id, style="danger"
            ),
        ]
    blocks: list[Block] = [md(policy_line(policy, workflows))]
    if flagged:  # the app's own text: mentions and masked numbers
        blocks.append(note(":warning: " + "; ".join(flagged) + ": replace those steps."))
    blocks.append(ActionsBlock(block_id=f"ep:{policy.id}"[:255], elements=buttons))
    return blocks


def refused_blocks(refusals: Sequence[str]) -> list[Block]:
    """What ESCALATION_POLICIES_FILE had refused at start, for admins."""
    if not refusals:
        return []
    lines = [f"• {outside(r, 300)}" for r in refusals[:MAX_REFUSALS_SHOWN]]
    if len(refusals) > MAX_REFUSALS_SHOWN:
        lines.append(f"…and {len(refusals) - MAX_REFUSALS_SHOWN} more (the app's log has all).")
    head = (
        f":warning: *`ESCALATION_POLICIES_FILE`: {plural(len(refusals), 'refusal')} at start* "
        "(those policies were not loaded; fix the file and restart):"
    )
    return [md(head + "\n" + "\n".join(lines))]


def policies_list(
    policies: Sequence[Policy],
    workflows: Mapping[str, Workflow],
    *,
    can_manage: bool,
    refusals: Sequence[str] = (),
    notice: str | None = None,
    sandbox: bool = False,
    flagged: Mapping[str, Sequence[str]] | None = None,
) -> Message:
    """`/robocall escalations`: every policy with its buttons, and *New policy* for
    admins; `notice` is the app's own mrkdwn."""
    blocks: list[Block] = [*sandbox_blocks(sandbox), HeaderBlock(text="Escalation policies")]
    if notice:
        blocks.append(md(notice))
    if can_manage:
        blocks += refused_blocks(refusals)
    if not policies:
        blocks.append(
            md(
                "There are no escalation policies yet. A policy calls people one after "
                "another until someone presses 1 (or *Acknowledge* in Slack)."
            )
        )
    for policy in policies[:MAX_LISTED]:
        blocks += policy_blocks(
            policy, workflows, can_manage=can_manage, flagged=(flagged or {}).get(policy.id, ())
        )
    if len(policies) > MAX_LISTED:
        blocks.append(note(f"…and {len(policies) - MAX_LISTED} more."))
    if can_manage:
        blocks.append(DividerBlock())
        blocks.append(
            ActionsBlock(
                block_id="policies_controls",
                elements=[
                    ButtonElement(
                        text="New policy",
                        action_id=ActionId.POLICY_NEW,
                        value="new",
                        style="primary",
                    )
                ],
            )
        )
    text = f"Escalation policies ({len(policies)})"
    return Message(text=text, blocks=[b.to_dict() for b in blocks])


# ---------------------------------------------------------------- New / Edit


def _option(value: str, text: str) -> Option:
    return Option(value=value, text=clip(outside_plain(text, 75) or value, 75))


def _workflow_options(workflows: Sequence[Workflow], labels: Mapping[str, str]) -> list[Option]:
    options = []
    for workflow in workflows[:MAX_OPTIONS]:
        label = labels.get(workflow.provider, workflow.provider)
        options.append(_option(workflow.id, f"{workflow.name} ({label})"))
    return options


def steps_rich_text(steps: Sequence[PolicyStep]) -> dict[str, Any]:
    """A policy's steps as the rich text the steps field starts with (users linked)."""
    elements: list[dict[str, Any]] = []
    for n, step in enumerate(steps):
        end = "\n" if n < len(steps) - 1 else ""
        if is_user_id(step.call):
            elements.append({"type": "user", "user_id": step.call})
            elements.append({"type": "text", "text": f" {format_wait(step.wait)}{end}"})
        else:
            elements.append({"type": "text", "text": f"{step.call} {format_wait(step.wait)}{end}"})
    return {
        "type": "rich_text",
        "elements": [{"type": "rich_text_section", "elements": elements}],
    }


def policy_modal(
    form: PolicyForm,
    workflows: Sequence[Workflow],
    voices: Sequence[Voice],
    *,
    labels: Mapping[str, str],
    policy: Policy | None = None,
    sandbox: bool = False,
) -> View:
    """New policy (empty) or Edit (filled in from `policy`)."""
    workflow_options = _workflow_options(workflows, labels)
    initial_workflow = next(
        (o for o in workflow_options if policy and o.value == policy.workflow), None
    )
    voice_options = [_option(DEFAULT_VOICE, "Provider default")]
    seen: set[str] = set()
    for voice in voices:
        if voice.key not in seen and len(voice_options) < MAX_OPTIONS:
            seen.add(voice.key)
            voice_options.append(_option(voice.key, f"{voice.label} · {voice.key}"))
    initial_voice = next(
        (o for o in voice_options if o.value == ((policy and policy.voice) or DEFAULT_VOICE)),
        voice_options[0],
    )
    repeat_options = [
        _option(str(n), "No repeat" if n == 0 else f"{n} more time{'s' if n > 1 else ''}")
        for n in range(MAX_REPEAT + 1)
    ]
    fallback_options = [_option(NO_FALLBACK, "None"), *workflow_options[: MAX_OPTIONS - 1]]
    initial_fallback = next(
        (o for o in fallback_options if policy and o.value == policy.fallback_workflow),
        fallback_options[0],
    )
    urgent_option = _option("urgent", "Urgent: call at any hour (ignores calling hours)")
    blocks: list[Block] = [*sandbox_blocks(sandbox)]
    blocks.append(
        InputBlock(
            block_id=BlockId.EP_NAME,
            label="Name",
            element=PlainTextInputElement(
                action_id=ActionId.EP_NAME_INPUT,
                initial_value=policy.name if policy else None,
                placeholder="e.g. Payments on-call",
                max_length=NAME,
            ),
        )
    )
    blocks.append(
        InputBlock(
            block_id=BlockId.EP_CHANNEL,
            label="Report in",
            hint="The parent message and one thread reply per step go here.",
            element=ConversationSelectElement(
                action_id=ActionId.EP_CHANNEL_SELECT,
                initial_conversation=policy.channel if policy else None,
                filter=ConversationFilter(
                    include=["public", "private"],
                    exclude_bot_users=True,
                    exclude_external_shared_channels=True,
                ),
            ),
        )
    )
    if workflow_options:
        workflow_element: Any = StaticSelectElement(
            action_id=ActionId.EP_WORKFLOW_SELECT,
            placeholder="Choose a workflow",
            options=workflow_options,
            initial_option=initial_workflow,
        )
    else:  # nothing to choose: the submission is refused, naming why
        workflow_element = PlainTextInputElement(
            action_id=ActionId.EP_WORKFLOW_SELECT, placeholder="No workflows yet"
        )
    blocks.append(
        InputBlock(
            block_id=BlockId.EP_WORKFLOW,
            label="Workflow",
            hint="What the call says; it must take a keypad reply where 1 means acknowledge. "
            "It may use [message], [policy], [name] and [step].",
            element=workflow_element,
        )
    )
    blocks.append(
        InputBlock(
            block_id=BlockId.EP_STEPS,
            label="Steps, in order",
            hint=STEPS_HINT,
            element=RichTextInputElement(
                action_id=ActionId.EP_STEPS_INPUT,
                initial_value=steps_rich_text(policy.steps) if policy else None,
                placeholder="@ada 5m",
            ),
        )
    )
    blocks.append(
        InputBlock(
            block_id=BlockId.EP_REPEAT,
            label="Repeat the whole chain",
            element=StaticSelectElement(
                action_id=ActionId.EP_REPEAT_SELECT,
                options=repeat_options,
                initial_option=repeat_options[policy.repeat if policy else 0],
            ),
        )
    )
    blocks.append(
        InputBlock(
            block_id=BlockId.EP_VOICE,
            label="Voice",
            optional=True,
            element=StaticSelectElement(
                action_id=ActionId.EP_VOICE_SELECT,
                options=voice_options,
                initial_option=initial_voice,
            ),
        )
    )
    blocks.append(
        InputBlock(
            block_id=BlockId.EP_FALLBACK,
            label="Fallback workflow",
            optional=True,
            hint="On another provider: used for a step whose call that provider could not "
            "place at all.",
            element=StaticSelectElement(
                action_id=ActionId.EP_FALLBACK_SELECT,
                options=fallback_options,
                initial_option=initial_fallback,
            ),
        )
    )
    blocks.append(
        InputBlock(
            block_id=BlockId.EP_URGENT,
            label="Calling hours",
            optional=True,
            element=CheckboxesElement(
                action_id=ActionId.EP_URGENT_TOGGLE,
                options=[urgent_option],
                initial_options=[urgent_option] if policy and policy.urgent else None,
            ),
        )
    )
    return View(
        type="modal",
        callback_id=CallbackId.POLICY_EDIT,
        title="Edit policy" if policy else "New policy",
        submit="Save",
        close="Cancel",
        blocks=blocks,
        private_metadata=form.model_dump_json(),
    )


def delete_modal(policy: Policy, sandbox: bool = False, response_url: str | None = None) -> View:
    """ "Delete this policy?" (running escalations of it go on to their end)."""
    return View(
        type="modal",
        callback_id=CallbackId.POLICY_DELETE,
        title="Delete policy",
        submit="Delete",
        close="Keep it",
        blocks=[
            *sandbox_blocks(sandbox),
            md(
                f"Delete the escalation policy *{outside(policy.name, NAME)}*?\n\n"
                "Escalations of it that are running go on to their end; alerts naming it "
                "will be refused (404) from now on."
            ),
        ],
        private_metadata=PolicyRef(
            policy_id=policy.id, response_url=response_url
        ).model_dump_json(),
    )


def saved_text(policy: Policy, created: bool, warnings: Sequence[str]) -> str:
    """What the modal says once a policy is saved (with its warnings)."""
    verb = "Created" if created else "Saved"
    text = (
        f"{verb} the escalation policy *{outside(policy.name, NAME)}*: "
        f"{steps_line(policy.steps)}, reporting in <#{policy.channel}>. "
        "`/robocall escalations` lists it, with *Test*."
    )
    if warnings:
        # The checker's own text (mentions it made, numbers masked): not escaped.
        text += "\n\n" + "\n".join(f":warning: {clip(w, 300)}" for w in warnings[:10])
    return text


# ---------------------------------------------------------------- the shortcut


def escalate_modal(
    policies: Sequence[Policy], text: str, form: EscalateForm, sandbox: bool = False
) -> View:
    """*Escalate by phone*: which policy, and the message (from the message, editable)."""
    options = [_option(p.id, p.name) for p in policies[:MAX_OPTIONS]]
    blocks: list[Block] = [
        *sandbox_blocks(sandbox),
        InputBlock(
            block_id=BlockId.ESCALATE_POLICY,
            label="Escalation policy",
            element=StaticSelectElement(
                action_id=ActionId.ESCALATE_POLICY_SELECT,
                placeholder="Whom to call",
                options=options,
                initial_option=options[0] if len(options) == 1 else None,
            ),
        ),
        InputBlock(
            block_id=BlockId.ESCALATE_TEXT,
            label="Message",
            hint="Said on the call as [message], and shown in the policy's channel.",
            element=PlainTextInputElement(
                action_id=ActionId.ESCALATE_TEXT_INPUT,
                multiline=True,
                initial_value=clip(text, MESSAGE) if text.strip() else None,
                max_length=MESSAGE,
            ),
        ),
    ]
    return View(
        type="modal",
        callback_id=CallbackId.ESCALATE_MESSAGE_SUBMIT,
        title="Escalate by phone",
        submit="Start calling",
        close="Cancel",
        blocks=blocks,
        private_metadata=form.model_dump_json(),
    )


# ---------------------------------------------------------------- the Home tab


def is_private_channel(channel: str | None, private: Collection[str] = ()) -> bool:
    """A channel the Home tab must not quote from: one conversations.info said is private
    (`private`), or one whose id says so (`G…`, older private channels)."""
    return bool(channel) and (channel in private or str(channel).startswith("G"))


def running_blocks(
    escalations: Sequence[Any],
    status: Mapping[str, str] | None = None,
    private: Collection[str] = (),
) -> list[Block]:
    """The Home tab's running escalations, newest first: policy, who is being called and
    since when (`status`, by escalation id: the parent message's status line, so the
    time is when the current person's call started), the alert's text, and Acknowledge /
    Resolve (the same buttons as the parent message). Everyone who opens the tab sees
    it, so an escalation reporting to a private channel shows its policy and status
    only, not the alert's text (`is_private_channel`)."""
    blocks: list[Block] = [HeaderBlock(text="Running escalations")]
    if not escalations:
        blocks.append(md("No escalation is running."))
        return blocks
    newest = sorted(escalations, key=lambda r: r.started_at or "", reverse=True)
    for record in newest[:MAX_RUNNING]:
        test = " · :test_tube: test" if getattr(record, "test", False) else ""
        line = (status or {}).get(record.id)
        if line is None:  # not given: who is being called, and since the start
            now = f"calling {who(record.calling)}" if record.calling else "between calls"
            since = when(record.started_at) or record.started_at
            line = f"{now} · step {record.step + 1}, round {record.round + 1} · since {since}"
        if is_private_channel(getattr(record, "channel", None), private):
            text = "_(the alert's text is shown in its private channel only)_"
        else:
            text = outside(record.message, 200)
        blocks.append(
            md(f":rotating_light: *{outside(record.policy_name, NAME)}* · {line}{test}\n{text}")
        )
        blocks.append(
            ActionsBlock(
                block_id=f"es:{record.id}"[:255],
                elements=[
                    ButtonElement(
                        text="Acknowledge",
                        action_id=ActionId.ESCALATION_ACKNOWLEDGE,
                        value=record.id,
                        style="primary",
                    ),
                    ButtonElement(
                        text="Resolve", action_id=ActionId.ESCALATION_RESOLVE, value=record.id
                    ),
                ],
            )
        )
    if len(escalations) > MAX_RUNNING:
        blocks.append(note(f"…and {len(escalations) - MAX_RUNNING} more running."))
    return blocks
