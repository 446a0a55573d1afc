"""Slack listeners for workflow management and the Home tab.

Every Intron request here draws on the 6/min, 60/h management quota, so each is
checked first (`WorkflowService` refuses, with the time it becomes possible,
rather than queueing a click for minutes or drawing a 429), and happens after
the ack: the modal shows "Saving…" and is updated with the outcome.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import ValidationError
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import phones
from bot.intron.errors import IntronError
from bot.intron.models import REPLY_DIGITS, WorkflowCreate
from bot.slack import views
from bot.slack import workflow_views as wv
from bot.slack.context import SlackContext
from bot.slack.home import publish_home
from bot.slack.ids import ANY_STATUS, ActionId, BlockId, CallbackId
from bot.workflows import describe_workflow_failure

log = logging.getLogger(__name__)

# Where pydantic's complaint about a field is shown in the modal.
FIELD_BLOCKS = {
    "name": BlockId.WF_NAME,
    "description": BlockId.WF_DESCRIPTION,
    "workflow_type": BlockId.WF_TYPE,
    "message": BlockId.WF_MESSAGE,
    "include_reply": BlockId.WF_OPTIONS,
    "response_options": BlockId.WF_OPTIONS,
}
ADMIN_ONLY = (
    "Only workflow admins may {action} (ADMIN_USER_IDS or ADMIN_USERGROUP_ID); "
    "ask one of them. Everyone can view and send."
)


def register_workflow_handlers(app: AsyncApp, ctx: SlackContext) -> None:
    """Attach the workflow and Home listeners to the bolt app."""

    @app.action(ActionId.WORKFLOW_NEW)
    async def on_new(ack: AsyncAck, body: dict, client: AsyncWebClient) -> None:
        await handle_workflow_new_action(ctx, ack, body, client)

    @app.action(ActionId.WORKFLOW_EDIT)
    async def on_edit(ack: AsyncAck, body: dict, client: AsyncWebClient) -> None:
        await handle_workflow_edit_action(ctx, ack, body, client)

    @app.action(ActionId.WF_MESSAGE_INPUT)
    async def on_typing(ack: AsyncAck, body: dict, client: AsyncWebClient) -> None:
        await handle_message_typed(ctx, ack, body, client)

    @app.view(CallbackId.WORKFLOW_EDIT)
    async def on_save(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient) -> None:
        await handle_workflow_submission(ctx, ack, body, view, client)

    @app.action(ActionId.WORKFLOW_DELETE)
    async def on_delete(ack: AsyncAck, body: dict, client: AsyncWebClient) -> None:
        await handle_workflow_delete_action(ctx, ack, body, client)

    @app.view(CallbackId.WORKFLOW_DELETE)
    async def on_delete_confirmed(
        ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient
    ) -> None:
        await handle_workflow_delete_submission(ctx, ack, body, view, client)

    @app.action(ActionId.WORKFLOW_VIEW)
    async def on_view(ack: AsyncAck, body: dict, client: AsyncWebClient) -> None:
        await handle_workflow_view_action(ctx, ack, body, client)

    @app.action(ActionId.WORKFLOW_CALLS)
    async def on_calls(ack: AsyncAck, body: dict, client: AsyncWebClient) -> None:
        await handle_workflow_calls_action(ctx, ack, body, client)

    @app.view(CallbackId.WORKFLOW_CALLS)
    async def on_calls_filter(ack: AsyncAck, view: dict, client: AsyncWebClient) -> None:
        await handle_calls_submission(ctx, ack, view, client)

    @app.action(ActionId.CALLS_PAGE)
    async def on_calls_page(ack: AsyncAck, body: dict, client: AsyncWebClient) -> None:
        await handle_calls_page_action(ctx, ack, body, client)

    @app.action(ActionId.WORKFLOW_SEND)
    async def on_send(ack: AsyncAck, body: dict, client: AsyncWebClient) -> None:
        await handle_workflow_send_action(ctx, ack, body, client)

    @app.action(ActionId.HOME_SEND)
    async def on_home_send(ack: AsyncAck, body: dict, client: AsyncWebClient) -> None:
        await handle_workflow_send_action(ctx, ack, body, client)

    @app.action(ActionId.WORKFLOW_FIX_CALLBACK)
    async def on_fix(
        ack: AsyncAck, body: dict, client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await handle_fix_callback_action(ctx, ack, body, client, respond)

    @app.action(ActionId.WORKFLOWS_REFRESH)
    async def on_refresh(
        ack: AsyncAck, body: dict, client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await handle_refresh_action(ctx, ack, body, client, respond)

    @app.action(ActionId.WORKFLOWS_PAGE)
    async def on_page(
        ack: AsyncAck, body: dict, client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack()
        await show_source(ctx, body, client, respond, page=int(body["actions"][0]["value"]))

    @app.action(ActionId.CALLS_STATUS_SELECT)
    async def on_status_pick(ack: AsyncAck) -> None:
        await ack()

    @app.event("app_home_opened")
    async def on_home(event: dict, client: AsyncWebClient) -> None:
        if event.get("tab", "home") == "home":
            await publish_for(ctx, client, event["user"])


# ---------------------------------------------------------------- shared pieces


async def workflows_message(
    ctx: SlackContext,
    client: AsyncWebClient,
    user_id: str,
    page: int = 1,
    notice: str | None = None,
) -> views.Message:
    """The `/robocall workflows` list as this user may act on it."""
    cached = ctx.workflows.cached()
    return wv.workflows_list(
        cached,
        page=page,
        calls_back_here={w.id: ctx.workflows.calls_back_here(w) for w in cached},
        can_manage=await ctx.can_manage(client, user_id),
        fetched_at=ctx.workflows.fetched_at(),
        sandbox=ctx.sandbox,
        notice=notice,
    )


async def publish_for(ctx: SlackContext, client: AsyncWebClient, user_id: str) -> None:
    await publish_home(
        client,
        ctx.service.store,
        ctx.workflows,
        user_id,
        can_manage=await ctx.can_manage(client, user_id),
        sandbox=ctx.sandbox,
    )


async def show_source(
    ctx: SlackContext,
    body: dict,
    client: AsyncWebClient,
    respond: AsyncRespond | None,
    *,
    page: int = 1,
    notice: str | None = None,
    response_url: str | None = None,
) -> None:
    """Redraw whatever the click came from: the Home tab, or the list message."""
    user = body["user"]["id"]
    if body.get("view", {}).get("type") == "home":
        await publish_for(ctx, client, user)
    elif respond is not None or response_url:
        message = await workflows_message(ctx, client, user, page, notice)
        if respond is None:
            respond = AsyncRespond(response_url=response_url)
        await respond(replace_original=True, text=message.text, blocks=message.blocks)


def _clicked(body: dict) -> str:
    return body["actions"][0]["value"]


async def _refuse(ctx: SlackContext, body: dict, client: AsyncWebClient, text: str) -> None:
    await client.views_open(
        trigger_id=body["trigger_id"], view=wv.done_modal("Not possible", text, ctx.sandbox)
    )


async def _update_quietly(client: AsyncWebClient, view_id: str, view: Any) -> None:
    """Update a modal the user may have closed meanwhile; that is not an error."""
    try:
        await client.views_update(view_id=view_id, view=view)
    except SlackApiError as exc:
        if exc.response.get("error") not in ("not_found", "view_not_found"):
            raise


def _source_url(body: dict) -> str | None:
    return body.get("response_url")


# ---------------------------------------------------------------- New / Edit


async def handle_workflow_new_action(
    ctx: SlackContext, ack: AsyncAck, body: dict, client: AsyncWebClient
) -> None:
    await ack()
    if not await ctx.can_manage(client, body["user"]["id"]):
        await _refuse(ctx, body, client, ADMIN_ONLY.format(action="create workflows"))
        return
    form = wv.WorkflowForm(response_url=_source_url(body))
    await client.views_open(
        trigger_id=body["trigger_id"], view=wv.workflow_modal(form, sandbox=ctx.sandbox)
    )


async def handle_workflow_edit_action(
    ctx: SlackContext, ack: AsyncAck, body: dict, client: AsyncWebClient
) -> None:
    await ack()
    if not await ctx.can_manage(client, body["user"]["id"]):
        await _refuse(ctx, body, client, ADMIN_ONLY.format(action="edit workflows"))
        return
    workflow = ctx.workflows.get(_clicked(body))
    if workflow is None:
        await _refuse(ctx, body, client, "That workflow is no longer in the list; refresh it.")
        return
    form = wv.WorkflowForm(workflow_id=workflow.id, response_url=_source_url(body))
    await client.views_open(
        trigger_id=body["trigger_id"], view=wv.workflow_modal(form, workflow, sandbox=ctx.sandbox)
    )


async def handle_message_typed(
    ctx: SlackContext, ack: AsyncAck, body: dict, client: AsyncWebClient
) -> None:
    """Live character count and variables under the message, as the user types."""
    await ack()
    view = body["view"]
    form = wv.WorkflowForm.model_validate_json(view["private_metadata"])
    typed = (
        view["state"]["values"]
        .get(BlockId.WF_MESSAGE, {})
        .get(ActionId.WF_MESSAGE_INPUT, {})
        .get("value")
    ) or ""
    workflow = ctx.workflows.get(form.workflow_id) if form.workflow_id else None
    await _update_quietly(
        client, view["id"], wv.workflow_modal(form, workflow, message=typed, sandbox=ctx.sandbox)
    )


async def handle_workflow_submission(
    ctx: SlackContext, ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient
) -> None:
    user = body["user"]["id"]
    form = wv.WorkflowForm.model_validate_json(view["private_metadata"])
    if not await ctx.can_manage(client, user):
        await ack(
            response_action="errors",
            errors={BlockId.WF_NAME: ADMIN_ONLY.format(action="save workflows")},
        )
        return
    draft, errors = read_workflow_form(view["state"]["values"])
    if draft is None:
        await ack(response_action="errors", errors=errors)
        return
    if (wait := ctx.workflows.wait_time()) > ctx.workflows.interactive_wait:
        await ack(
            response_action="errors",
            errors={
                BlockId.WF_NAME: (
                    f"Intron allows 6 workflow changes a minute and 60 an hour: you can save in "
                    f"{wait:.0f} s. What you typed stays here."
                )
            },
        )
        return
    await ack(
        response_action="update",
        view=wv.done_modal("Saving…", f"Saving *{draft.name}* to Intron…", ctx.sandbox),
    )
    ctx.background.spawn(_save(ctx, client, body, view["id"], form, draft), name="save workflow")


async def _save(
    ctx: SlackContext,
    client: AsyncWebClient,
    body: dict,
    view_id: str,
    form: wv.WorkflowForm,
    draft: WorkflowCreate,
) -> None:
    user = body["user"]["id"]
    try:
        if form.workflow_id:
            saved = await ctx.workflows.update(form.workflow_id, draft, actor=user)
        else:
            saved = await ctx.workflows.create(draft, actor=user)
    except IntronError as exc:
        await _update_quietly(
            client,
            view_id,
            wv.done_modal(
                "Not saved",
                f":x: *{draft.name}* was not saved. {describe_workflow_failure(exc)}",
                ctx.sandbox,
            ),
        )
        return
    verb = "Updated" if form.workflow_id else "Created"
    await _update_quietly(
        client,
        view_id,
        wv.done_modal(
            "Saved",
            f":white_check_mark: {verb} *{saved.name}*. "
            f"Its results come back to this app.\n{views.workflow_summary(saved)}",
            ctx.sandbox,
        ),
    )
    await show_source(
        ctx,
        body,
        client,
        None,
        response_url=form.response_url,
        notice=f":white_check_mark: {verb} *{saved.name}*.",
    )


def read_workflow_form(values: dict) -> tuple[WorkflowCreate | None, dict[str, str]]:
    """The modal's fields as a valid workflow, or errors keyed by block."""

    def value(block: str, action: str, key: str = "value") -> Any:
        return values.get(block, {}).get(action, {}).get(key)

    errors: dict[str, str] = {}
    name = (value(BlockId.WF_NAME, ActionId.WF_NAME_INPUT) or "").strip()
    if not name:
        errors[BlockId.WF_NAME] = "Give the workflow a name, e.g. Appointment reminder."
    message = (value(BlockId.WF_MESSAGE, ActionId.WF_MESSAGE_INPUT) or "").strip()
    if not message:
        errors[BlockId.WF_MESSAGE] = "Write the message the call will speak."
    chosen_type = value(BlockId.WF_TYPE, ActionId.WF_TYPE_SELECT, "selected_option")
    include_reply = bool(value(BlockId.WF_REPLY, ActionId.WF_REPLY_TOGGLE, "selected_options"))
    options, problems = parse_reply_options(
        value(BlockId.WF_OPTIONS, ActionId.WF_OPTIONS_INPUT) or ""
    )
    if problems:
        errors[BlockId.WF_OPTIONS] = "\n".join(problems[:5])
    elif include_reply and not options:
        errors[BlockId.WF_OPTIONS] = (
            "A keypad reply is included, so add at least one option, "
            "e.g. 1=Confirm (or untick the keypad reply)."
        )
    if errors:
        return None, errors
    try:
        draft = WorkflowCreate(
            name=name,
            message=message,
            description=(value(BlockId.WF_DESCRIPTION, ActionId.WF_DESCRIPTION_INPUT) or None),
            workflow_type=chosen_type["value"] if chosen_type else "ROBOCALL",
            include_reply=include_reply,
            response_options=options or None,
        )
    except ValidationError as exc:
        for error in exc.errors():
            block = FIELD_BLOCKS.get(
                str(error["loc"][0]) if error["loc"] else "", BlockId.WF_MESSAGE
            )
            errors.setdefault(block, error["msg"].removeprefix("Value error, "))
        return None, errors
    return draft, {}


OPTION_LINE = re.compile(r"^\s*(\S+?)\s*[=:]\s*(.*?)\s*$")


def parse_reply_options(text: str) -> tuple[dict[str, str], list[str]]:
    """`1=Confirm` lines into {"1": "Confirm"}, with a problem per bad line."""
    options: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = OPTION_LINE.match(line)
        if match is None:
            problems.append(
                f"line {number}: '{line.strip()[:40]}' is not digit=meaning; write e.g. 1=Confirm"
            )
            continue
        digit, label = match.groups()
        if digit not in REPLY_DIGITS:
            problems.append(
                f"line {number}: '{digit}' is not a keypad digit; options use the digits 1-9"
            )
        elif not label:
            problems.append(f"line {number}: say what pressing {digit} means, e.g. {digit}=Yes")
        elif digit in options:
            problems.append(f"line {number}: {digit} is already given ({options[digit]})")
        else:
            options[digit] = label
    return dict(sorted(options.items())), problems


# ---------------------------------------------------------------- Delete


async def handle_workflow_delete_action(
    ctx: SlackContext, ack: AsyncAck, body: dict, client: AsyncWebClient
) -> None:
    await ack()
    if not await ctx.can_manage(client, body["user"]["id"]):
        await _refuse(ctx, body, client, ADMIN_ONLY.format(action="delete workflows"))
        return
    workflow = ctx.workflows.get(_clicked(body))
    if workflow is None:
        await _refuse(ctx, body, client, "That workflow is no longer in the list; refresh it.")
        return
    modal = wv.delete_modal(
        workflow,
        ctx.workflows.requests_using(workflow.id),
        ctx.sandbox,
        response_url=_source_url(body),
    )
    await client.views_open(trigger_id=body["trigger_id"], view=modal)


async def handle_workflow_delete_submission(
    ctx: SlackContext, ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient
) -> None:
    ref = wv.WorkflowRef.model_validate_json(view["private_metadata"])
    user = body["user"]["id"]
    if not await ctx.can_manage(client, user):
        await ack(
            response_action="update",
            view=wv.done_modal(
                "Not deleted", ADMIN_ONLY.format(action="delete workflows"), ctx.sandbox
            ),
        )
        return
    workflow = ctx.workflows.get(ref.workflow_id)
    name = workflow.name if workflow else ref.workflow_id
    await ack(
        response_action="update",
        view=wv.done_modal("Deleting…", f"Deleting *{name}*…", ctx.sandbox),
    )
    ctx.background.spawn(_delete(ctx, client, body, view["id"], ref, name), name="delete")


async def _delete(
    ctx: SlackContext,
    client: AsyncWebClient,
    body: dict,
    view_id: str,
    ref: wv.WorkflowRef,
    name: str,
) -> None:
    try:
        await ctx.workflows.delete(ref.workflow_id, actor=body["user"]["id"])
    except IntronError as exc:
        await _update_quietly(
            client,
            view_id,
            wv.done_modal(
                "Not deleted",
                f":x: *{name}* was not deleted. {describe_workflow_failure(exc)}",
                ctx.sandbox,
            ),
        )
        return
    await _update_quietly(
        client, view_id, wv.done_modal("Deleted", f":wastebasket: Deleted *{name}*.", ctx.sandbox)
    )
    await show_source(
        ctx,
        body,
        client,
        None,
        response_url=ref.response_url,
        notice=f":wastebasket: Deleted *{name}*.",
    )


# ---------------------------------------------------------------- View and Calls


async def handle_workflow_view_action(
    ctx: SlackContext, ack: AsyncAck, body: dict, client: AsyncWebClient
) -> None:
    await ack()
    workflow = ctx.workflows.get(_clicked(body))
    if workflow is None:
        await _refuse(ctx, body, client, "That workflow is no longer in the list; refresh it.")
        return
    ours = ctx.workflows.requests_using(workflow.id)
    here = ctx.workflows.calls_back_here(workflow)
    opened = await client.views_open(
        trigger_id=body["trigger_id"],
        view=wv.view_modal(
            workflow,
            calls_back_here=here,
            recent=None,
            ours=ours,
            notice="_Loading recent requests from Intron…_",
            sandbox=ctx.sandbox,
        ),
    )
    try:
        recent, notice = await ctx.workflows.requests(workflow.id), None
    except IntronError as exc:
        recent, notice = None, describe_workflow_failure(exc)
    await _update_quietly(
        client,
        opened["view"]["id"],
        wv.view_modal(
            workflow,
            calls_back_here=here,
            recent=recent,
            ours=ours,
            notice=notice,
            sandbox=ctx.sandbox,
        ),
    )


async def handle_workflow_calls_action(
    ctx: SlackContext, ack: AsyncAck, body: dict, client: AsyncWebClient
) -> None:
    await ack()
    query = wv.CallsQuery(workflow_id=_clicked(body))
    pushed = await client.views_push(
        trigger_id=body["trigger_id"],
        view=wv.calls_modal(query, None, notice=None, sandbox=ctx.sandbox),
    )
    await _show_calls(ctx, client, pushed["view"]["id"], query)


async def handle_calls_submission(
    ctx: SlackContext, ack: AsyncAck, view: dict, client: AsyncWebClient
) -> None:
    """The Filter button: read the filters, show page 1 of what matches."""
    values = view["state"]["values"]
    previous = wv.CallsQuery.model_validate_json(view["private_metadata"])
    batch = (values[BlockId.CALLS_BATCH][ActionId.CALLS_BATCH_INPUT].get("value") or "").strip()
    status_option = values[BlockId.CALLS_STATUS][ActionId.CALLS_STATUS_SELECT].get(
        "selected_option"
    )
    status = status_option["value"] if status_option else ANY_STATUS
    phone = (values[BlockId.CALLS_PHONE][ActionId.CALLS_PHONE_INPUT].get("value") or "").strip()
    if phone:
        try:
            phone = phones.to_e164(phone, ctx.settings.default_phone_region)
        except phones.PhoneNumberError as exc:
            await ack(response_action="errors", errors={BlockId.CALLS_PHONE: str(exc)})
            return
    query = wv.CallsQuery(
        workflow_id=previous.workflow_id,
        page=1,
        batch_id=batch or None,
        status=None if status == ANY_STATUS else status,
        phone_number=phone or None,
    )
    await ack(
        response_action="update", view=wv.calls_modal(query, None, notice=None, sandbox=ctx.sandbox)
    )
    ctx.background.spawn(_show_calls(ctx, client, view["id"], query), name="calls")


async def handle_calls_page_action(
    ctx: SlackContext, ack: AsyncAck, body: dict, client: AsyncWebClient
) -> None:
    await ack()
    view = body["view"]
    query = wv.CallsQuery.model_validate_json(view["private_metadata"])
    query = query.model_copy(update={"page": int(_clicked(body))})
    await _show_calls(ctx, client, view["id"], query)


async def _show_calls(
    ctx: SlackContext, client: AsyncWebClient, view_id: str, query: wv.CallsQuery
) -> None:
    try:
        page = await ctx.workflows.calls(
            query.workflow_id,
            page=query.page,
            batch_id=query.batch_id,
            status=query.status,
            phone_number=query.phone_number,
        )
        notice = None
    except IntronError as exc:
        page, notice = None, describe_workflow_failure(exc)
    await _update_quietly(
        client, view_id, wv.calls_modal(query, page, notice=notice, sandbox=ctx.sandbox)
    )


# ---------------------------------------------------------------- Send, Fix, Refresh


async def handle_workflow_send_action(
    ctx: SlackContext, ack: AsyncAck, body: dict, client: AsyncWebClient
) -> None:
    """Open the Send modal, with the workflow chosen when the click came from one."""
    await ack()
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id")
    if refusal := ctx.refusal(user, channel):
        await _refuse(ctx, body, client, refusal)
        return
    value = _clicked(body)
    selected = ctx.workflows.get(value)
    context = views.ModalContext(user_id=user, channel_id=channel)
    modal = views.send_call_modal(
        ctx.workflows.cached(), context, selected=selected, sandbox=ctx.sandbox
    )
    if body.get("view", {}).get("type") == "modal":
        await client.views_push(trigger_id=body["trigger_id"], view=modal)
    else:
        await client.views_open(trigger_id=body["trigger_id"], view=modal)


async def handle_fix_callback_action(
    ctx: SlackContext,
    ack: AsyncAck,
    body: dict,
    client: AsyncWebClient,
    respond: AsyncRespond | None,
) -> None:
    await ack()
    if not await ctx.can_manage(client, body["user"]["id"]):
        await _refuse(ctx, body, client, ADMIN_ONLY.format(action="change workflows"))
        return
    try:
        fixed = await ctx.workflows.fix_callback(_clicked(body), actor=body["user"]["id"])
        notice = f":white_check_mark: *{fixed.name}* now sends its results to this app."
    except IntronError as exc:
        notice = f":x: The callback URL was not changed. {describe_workflow_failure(exc)}"
    await show_source(ctx, body, client, respond, notice=notice)


async def handle_refresh_action(
    ctx: SlackContext,
    ack: AsyncAck,
    body: dict,
    client: AsyncWebClient,
    respond: AsyncRespond | None,
) -> None:
    await ack()
    try:
        await ctx.workflows.refresh()
        notice = ":arrows_counterclockwise: Refreshed from Intron just now."
    except IntronError as exc:
        notice = f"{describe_workflow_failure(exc)} Showing the list as last fetched."
    await show_source(ctx, body, client, respond, notice=notice)
