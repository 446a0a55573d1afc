"""One Slack request as a handler sees it, and the one error handler that tells the user.

Every listener is registered through `guarded`: it gets an `Interaction` (the
ack, the payload, the Web API client, a way to read the view's state) and may
raise `UserError` to refuse with a message. `guarded` catches that, and any
unexpected error, logs it, and tells the user in the right place: the ack's
answer (a command's ephemeral reply, a modal's field error) when nothing has
been acknowledged yet; afterwards the response URL, the modal, or a direct
message.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.blocks import done_modal
from bot.text import clip, without_invisibles

if TYPE_CHECKING:
    from bot.slack.context import SlackContext

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class UserError(Exception):
    """A refusal to show the user; `block` is the modal field it belongs to."""

    def __init__(self, text: str, *, block: str | None = None) -> None:
        self.text = text
        self.block = block
        super().__init__(text)


@dataclass
class ViewState:
    """The values of a submitted or changed view: the one way handlers read them."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _element(self, block: str, action: str) -> dict[str, Any]:
        return self.values.get(block, {}).get(action, {}) or {}

    def text(self, block: str, action: str) -> str:
        """A text input's value ('' when empty)."""
        return self._element(block, action).get("value") or ""

    def selected(self, block: str, action: str) -> str | None:
        """A select's or radio's chosen value."""
        option = self._element(block, action).get("selected_option")
        return option["value"] if option else None

    def checked(self, block: str, action: str) -> list[str]:
        """A checkbox group's ticked values."""
        return [o["value"] for o in self._element(block, action).get("selected_options") or []]

    def conversation(self, block: str, action: str) -> str | None:
        return self._element(block, action).get("selected_conversation")


@dataclass
class Interaction:
    """What a handler gets for one Slack request."""

    ack: AsyncAck
    body: dict[str, Any]
    client: AsyncWebClient
    respond: AsyncRespond | None
    acked: bool = False

    @property
    def user(self) -> str:
        if "user_id" in self.body:  # a slash command
            return self.body["user_id"]
        user = self.body.get("user") or (self.body.get("event") or {}).get("user")
        return user["id"] if isinstance(user, dict) else str(user)

    @property
    def channel(self) -> str | None:
        if "channel_id" in self.body:
            return self.body["channel_id"]
        return (self.body.get("channel") or {}).get("id")

    @property
    def view(self) -> dict[str, Any]:
        return self.body.get("view") or {}

    @property
    def state(self) -> ViewState:
        return ViewState((self.view.get("state") or {}).get("values") or {})

    def metadata(self, model: type[M]) -> M:
        """The view's private_metadata, as the model it was written from."""
        return model.model_validate_json(self.view.get("private_metadata") or "{}")

    @property
    def value(self) -> str:
        """The clicked button's or chosen option's value."""
        action = self.body["actions"][0]
        if "selected_option" in action:
            return action["selected_option"]["value"]
        return action.get("value", "")

    @property
    def trigger_id(self) -> str:
        return self.body["trigger_id"]

    @property
    def from_home(self) -> bool:
        return self.view.get("type") == "home"

    @property
    def from_modal(self) -> bool:
        return self.view.get("type") == "modal"

    async def open(self, view: Any) -> dict[str, Any]:
        """Open a modal, or push it onto the one the click came from."""
        if self.from_modal:
            return await self.client.views_push(trigger_id=self.trigger_id, view=view)
        return await self.client.views_open(trigger_id=self.trigger_id, view=view)

    async def update_quietly(self, view_id: str, view: Any) -> None:
        """Update a modal the user may have closed meanwhile; that is not an error."""
        try:
            await self.client.views_update(view_id=view_id, view=view)
        except SlackApiError as exc:
            if exc.response.get("error") not in ("not_found", "view_not_found"):
                raise


Handler = Callable[[Interaction], Awaitable[None]]
FeatureHandler = Callable[["SlackContext", Interaction], Awaitable[None]]
Listener = Callable[..., Awaitable[None]]


# What handlers go on doing after their ack (opening the modal a click asked for).
_AFTER_ACK: set[asyncio.Task] = set()


def guarded(handler: Handler, *, sandbox: bool = False) -> Listener:
    """A bolt listener running `handler`, with the one error handler around it.

    The listener returns as soon as the handler has acknowledged (or finished), so the
    answer goes to Slack at once (bolt runs with `process_before_response`, and does not
    poll for the ack); what the handler does after its ack goes on in the background."""

    async def listener(
        ack: AsyncAck, body: dict, client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        interaction = Interaction(ack=ack, body=body, client=client, respond=respond)
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def answer(*_: object) -> None:
            if not answered.done():
                answered.set_result(None)

        async def tracked_ack(*args: Any, **kwargs: Any) -> None:
            interaction.acked = True
            await ack(*args, **kwargs)
            answer()

        interaction.ack = tracked_ack
        task = asyncio.create_task(run(interaction), name=f"slack {handler.__name__}")
        _AFTER_ACK.add(task)
        task.add_done_callback(_AFTER_ACK.discard)
        task.add_done_callback(answer)
        await answered

    async def run(interaction: Interaction) -> None:
        body = interaction.body
        try:
            await handler(interaction)
        except UserError as refusal:
            await tell(interaction, refusal.text, block=refusal.block, sandbox=sandbox)
        except Exception:
            incident = uuid.uuid4().hex[:8]
            log.exception("Slack %s failed (incident %s)", body.get("type", "request"), incident)
            await tell(
                interaction,
                f":warning: Something went wrong on our side, so this was not done "
                f"(incident `{incident}` in the app's log). Try again in a minute.",
                sandbox=sandbox,
            )

    listener.__name__ = handler.__name__
    return listener


def listener(ctx: SlackContext, handler: FeatureHandler) -> Listener:
    """`guarded`, for a feature's `handle_<x>(ctx, slack)`."""
    return guarded(lambda slack: handler(ctx, slack), sandbox=ctx.sandbox)


async def tell(
    slack: Interaction, text: str, *, block: str | None = None, sandbox: bool = False
) -> None:
    """Show `text` to the user who made the request, wherever they are looking.

    `text` is the app's own mrkdwn (a refusal may name channels): whatever in it
    someone else wrote was escaped where it was written (`bot.text.outside`). Invisible
    format characters are dropped here from all of it, a net under that."""
    text = without_invisibles(text)
    kind = slack.body.get("type")
    try:
        if not slack.acked:
            if kind == "view_submission":
                target = block or _first_input(slack.view)
                await slack.ack(response_action="errors", errors={target: clip(text, 1900)})
            else:
                await slack.ack(text=clip(text, 3000))
            return
        if kind == "block_actions" and slack.from_modal:
            await slack.update_quietly(slack.view["id"], done_modal("Not done", text, sandbox))
        elif slack.respond is not None and slack.body.get("response_url"):
            await slack.respond(text=clip(text, 3000), replace_original=False)
        elif kind != "event_callback":
            await slack.client.chat_postMessage(channel=slack.user, text=clip(text, 3000))
    except Exception:  # telling must never hide the first problem
        log.exception("could not tell the user what went wrong")


def _first_input(view: dict[str, Any]) -> str:
    for block in view.get("blocks") or []:
        if block.get("type") == "input":
            return block["block_id"]
    return next(iter((view.get("state") or {}).get("values") or {"": None}))
