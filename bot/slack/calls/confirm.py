"""Asking before a large send: "Call 120 people with *Reminder*?".

A `/robocall call` or a Send modal for more than `CONFIRM_ABOVE` recipients is
checked first exactly as if it were sent (a bad number is refused at once), then
kept in the database (`bot/store/pending.py`) under an unguessable token, which is
all the client holds: the Confirm button's value, or the confirmation modal's
private_metadata. Nothing is stored as a request, and nothing sent, until Confirm.
Confirm accepts the order once, only for the user who asked and within
`CONFIRM_TTL`: its idempotency key is the token (the command) or the Send modal's
view id (the modal), so a double click or a resent click is one request. Cancel
drops it.

The listeners are in `bot/slack/calls/handlers.py`; this module holds what is kept
and what is shown.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from slack_sdk.models.blocks import ActionsBlock, ButtonElement
from slack_sdk.models.views import View

from bot.core.requests import CallOrder
from bot.input.recipients import RecipientLine
from bot.providers.base import Workflow
from bot.slack.blocks import Message, md, message, note, sandbox_blocks
from bot.slack.calls.views import NAME
from bot.slack.ids import ActionId, CallbackId
from bot.text import outside

CONFIRM_TTL = 15 * 60.0  # seconds a question waits for its answer
COMMAND = "command"  # the kinds of pending order, by what asked
MODAL = "modal"

EXPIRED = "This confirmation expired; run the command again. Nothing was sent."
EXPIRED_MODAL = "This confirmation expired; open the form and send it again. Nothing was sent."
NOT_YOURS = "Only <@{user}>, who asked for these calls, can confirm or cancel them."


class PendingLine(BaseModel):
    """One recipient as typed: its line (the position, for a command), number, values."""

    line: int
    phone: str
    variables: dict[str, str] = {}


class PendingOrder(BaseModel):
    """What waits for Confirm: the order as checked when asked (the workflow by id)."""

    workflow: str
    workflow_name: str
    lines: list[PendingLine]
    voice: str | None = None
    channel: str | None = None
    source: str
    view_id: str | None = None  # the Send modal's: the request's idempotency key

    @classmethod
    def of(
        cls,
        order: CallOrder,
        workflow: Workflow,
        lines: Sequence[RecipientLine],
        view_id: str | None = None,
    ) -> PendingOrder:
        return cls(
            workflow=workflow.id,
            workflow_name=workflow.name,
            lines=[PendingLine(line=r.line, phone=r.phone, variables=r.variables) for r in lines],
            voice=order.voice,
            channel=order.channel,
            source=order.source,
            view_id=view_id,
        )

    @property
    def count(self) -> int:
        return len(self.lines)

    def recipient_lines(self) -> list[RecipientLine]:
        return [RecipientLine(r.line, r.phone, dict(r.variables)) for r in self.lines]

    def order(self, user: str, idempotency_key: str) -> CallOrder:
        return CallOrder(
            workflow=self.workflow,
            recipients=[r.to_recipient() for r in self.recipient_lines()],
            voice=self.voice,
            requested_by=user,
            channel=self.channel,
            source=self.source,
            idempotency_key=idempotency_key,
        )


class ConfirmRef(BaseModel):
    """private_metadata of the confirmation modal: the pending order's token, only."""

    token: str


def _people(count: int) -> str:
    return f"{count:,} {'person' if count == 1 else 'people'}"


def question_message(count: int, workflow_name: str, token: str, sandbox: bool) -> Message:
    """The ephemeral question for `/robocall call`, with Confirm and Cancel."""
    name = outside(workflow_name, NAME)
    question = f"Call {_people(count)} with *{name}*?"
    minutes = int(CONFIRM_TTL // 60)
    return message(
        question,
        [
            *sandbox_blocks(sandbox),
            md(f":telephone_receiver: {question}"),
            note(f"Nothing is sent until you confirm. This question expires in {minutes} minutes."),
            ActionsBlock(
                block_id="confirm_call",
                elements=[
                    ButtonElement(
                        text=f"Call {_people(count)}",
                        action_id=ActionId.CONFIRM_CALL,
                        value=token,
                        style="primary",
                    ),
                    ButtonElement(text="Cancel", action_id=ActionId.CANCEL_CALL, value=token),
                ],
            ),
        ],
    )


def cancelled_message(count: int, workflow_name: str, sandbox: bool) -> Message:
    text = f"Cancelled: nobody was called ({_people(count)} with *{outside(workflow_name, NAME)}*)."
    return message(text, [*sandbox_blocks(sandbox), md(text)])


def said(text: str, sandbox: bool) -> Message:
    """A one-line answer in place of the question (expired, refused)."""
    return message(text, [*sandbox_blocks(sandbox), md(text)])


def problems_text(title: str, problems: Sequence[str]) -> str:
    """Problems found only on confirming (the workflow changed meanwhile), for a modal."""
    shown = [f"• {outside(p, 1000)}" for p in problems[:10]]
    if len(problems) > 10:
        shown.append(f"• …and {len(problems) - 10} more")
    return f":warning: {title} Nothing was sent.\n" + "\n".join(shown)


def confirm_view(count: int, workflow_name: str, token: str, sandbox: bool) -> View:
    """Pushed over the Send modal: "Call 120 people?", submitted with "Place 120 calls"."""
    calls = f"{count:,} call{'' if count == 1 else 's'}"
    return View(
        type="modal",
        callback_id=CallbackId.CONFIRM_SEND,
        title=f"Call {_people(count)}?",
        submit=f"Place {calls}",
        close="Back",
        blocks=[
            *sandbox_blocks(sandbox),
            md(f"Call {_people(count)} with *{outside(workflow_name, NAME)}*?"),
            note("Nothing is sent until you press *Place " + calls + "*; *Back* changes nothing."),
        ],
        private_metadata=ConfirmRef(token=token).model_dump_json(),
    )
