"""Slack listeners for the buttons on a request's parent message (and its line on the
Home tab): *View calls*, *Call again: those who did not answer*, *Try again* (a failed
request), *Check with the provider* ("outcome unknown") and *Cancel* (a scheduled request,
before it is dialled). Each button's value is the
request id.

Each listener acknowledges at once, then does only what the web process may: it reads
our own records to open or page the View calls modal (views.open / views.update, well
within the trigger id's 3 s), stores a new order through `CallService.accept` (one
transaction, as `/robocall call` does), or brings the request's reconcile job forward.
The worker does the rest. Every answer goes to the clicker alone: an ephemeral message
through the click's response_url, or, from the Home tab (which has none), a small modal.
A refusal names the request and why, and changes nothing.

**A double click is one request.** Slack never resends a block action (interactivity
has no retries; only the Events API has), so a repeat is always a person clicking
again, and each click carries a new trigger_id and action_ts: a key made of those would
make every click a request. The idempotency key is the request clicked on instead,
`again:<request id>` for Call again and `retry:<request id>` for Try again, whoever
clicks and whenever: the same button on the same request makes one new request, and
every later click is told which one it was. (Two people clicking at once would
otherwise call everyone twice.) To call those who still did not answer, use the new
request's own button.
"""

from __future__ import annotations

from functools import partial

from slack_bolt.async_app import AsyncApp

from bot import logsafety
from bot.core.models import RequestRecord, RequestStatus
from bot.core.orders import InvalidOrder
from bot.core.requests import NotPossible
from bot.slack.blocks import done_modal, plural
from bot.slack.calls import calls_view
from bot.slack.calls.calls_view import FILTERS, PER_PAGE, CallsPage
from bot.slack.calls.handlers import cancel_answer
from bot.slack.calls.views import ERROR, REF
from bot.slack.context import SlackContext
from bot.slack.ids import ActionId
from bot.slack.interaction import Interaction, listener
from bot.text import clip, outside, outside_error


def register(app: AsyncApp, ctx: SlackContext) -> None:
    """Attach the request buttons' listeners."""
    on = partial(listener, ctx)
    app.action(ActionId.REQUEST_VIEW_CALLS)(on(handle_view_calls_action))
    app.action(ActionId.REQUEST_CALLS_PAGE)(on(handle_calls_page_action))
    app.action(ActionId.REQUEST_CALLS_FILTER)(on(handle_calls_filter_action))
    app.action(ActionId.REQUEST_CALL_AGAIN)(on(handle_call_again_action))
    app.action(ActionId.REQUEST_TRY_AGAIN)(on(handle_try_again_action))
    app.action(ActionId.REQUEST_CHECK_NOW)(on(handle_check_now_action))
    app.action(ActionId.REQUEST_CANCEL)(on(handle_cancel_action))


# ---------------------------------------------------------------- answering the clicker


async def _tell(ctx: SlackContext, slack: Interaction, text: str) -> None:
    """Show `text` (the app's mrkdwn) to the clicker only."""
    text = clip(text, 3000)
    if slack.respond is not None and slack.body.get("response_url"):
        await slack.respond(text=text, response_type="ephemeral", replace_original=False)
    else:  # the Home tab (or a modal): no response_url, but a trigger id
        await slack.open(done_modal("Robo call", text, ctx.sandbox))


def _shown(request_id: str) -> str:
    return f"`{outside(request_id, REF)}`"


def _clicked(ctx: SlackContext, slack: Interaction) -> tuple[str, RequestRecord | None]:
    request_id = slack.value.strip()
    return request_id, ctx.service.requests.get(request_id) if request_id else None


UNKNOWN_REQUEST = "there is no such request here"


# ---------------------------------------------------------------- View calls


async def handle_view_calls_action(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()
    request_id, record = _clicked(ctx, slack)
    if record is None:
        await _tell(ctx, slack, f":warning: Request {_shown(request_id)}: {UNKNOWN_REQUEST}.")
        return
    await slack.open(_calls_modal(ctx, CallsPage(request_id=record.id), record))


async def handle_calls_page_action(ctx: SlackContext, slack: Interaction) -> None:
    """Next / Previous in the View calls modal."""
    await slack.ack()
    try:
        page = max(1, int(slack.value))
    except ValueError:
        page = 1
    await _show(ctx, slack, slack.metadata(CallsPage).model_copy(update={"page": page}))


async def handle_calls_filter_action(ctx: SlackContext, slack: Interaction) -> None:
    """The outcome filter of the View calls modal: its first page of what matches."""
    await slack.ack()
    chosen = slack.value if slack.value in FILTERS else calls_view.ALL
    query = slack.metadata(CallsPage).model_copy(update={"page": 1, "outcome": chosen})
    await _show(ctx, slack, query)


async def _show(ctx: SlackContext, slack: Interaction, query: CallsPage) -> None:
    record = ctx.service.requests.get(query.request_id)
    view = (
        _calls_modal(ctx, query, record)
        if record is not None
        else done_modal("Calls", f"Request {_shown(query.request_id)} is gone.", ctx.sandbox)
    )
    await slack.update_quietly(slack.view["id"], view)


def _calls_modal(ctx: SlackContext, query: CallsPage, record: RequestRecord):
    """The modal for `query`, read from our own records (two indexed reads a page)."""
    requests = ctx.service.requests
    calls, matching = requests.calls_matching(
        record.id, query.outcomes(), offset=query.offset, limit=PER_PAGE
    )
    if not calls and matching:  # past the end (fewer match than when the page was drawn)
        query = query.model_copy(update={"page": calls_view.pages(matching)})
        calls, matching = requests.calls_matching(
            record.id, query.outcomes(), offset=query.offset, limit=PER_PAGE
        )
    whole = record.recipient_count
    if record.parts > 1:
        whole = sum(part.recipient_count for part in requests.parts(record.id))
    return calls_view.calls_modal(
        query,
        record,
        calls,
        matching,
        stats=requests.stats(record.id),
        workflow=ctx.store.workflows.get(record.workflow_id or ""),
        whole=whole,
        sandbox=ctx.sandbox,
    )


# ---------------------------------------------------------------- Call again / Try again


async def handle_call_again_action(ctx: SlackContext, slack: Interaction) -> None:
    """A new request to those of a completed request who did not answer."""
    await slack.ack()
    await _send_again(ctx, slack, only_unanswered=True)


async def handle_try_again_action(ctx: SlackContext, slack: Interaction) -> None:
    """A failed request (nobody was called), sent again to every recipient."""
    await slack.ack()
    await _send_again(ctx, slack, only_unanswered=False)


async def _send_again(ctx: SlackContext, slack: Interaction, *, only_unanswered: bool) -> None:
    request_id, record = _clicked(ctx, slack)
    done = "called again" if only_unanswered else "sent again"
    refused = f":warning: Request {_shown(request_id)} was not {done}"
    if record is None:
        await _tell(ctx, slack, f"{refused}: {UNKNOWN_REQUEST}. Nothing was sent.")
        return
    if refusal := ctx.refusal(slack.user, record.channel):
        await _tell(ctx, slack, f"{refused}. {refusal}")
        return
    # One key per request and button, whoever clicks (see the module's docstring).
    key = f"{'again' if only_unanswered else 'retry'}:{record.id}"
    try:
        order = ctx.service.again_order(
            record.id,
            only_unanswered=only_unanswered,
            requested_by=slack.user,
            channel=record.channel,
            key=key,
        )
        new, created = ctx.service.accept(order)
    except NotPossible as exc:
        await _tell(ctx, slack, f"{refused}: {exc.reason}. Nothing was sent.")
        return
    except InvalidOrder as exc:
        secrets = logsafety.secrets_in(ctx.settings)
        problems = "; ".join(outside_error(p.message, ERROR, secrets) for p in exc.problems[:5])
        await _tell(ctx, slack, f"{refused}: {problems}. Nothing was sent.")
        return
    if not created:
        await _tell(
            ctx,
            slack,
            f"Request {_shown(record.id)} was already {done}, as request {_shown(new.id)} "
            f"(asked by <@{new.requested_by}>). Nothing new was sent"
            + (
                "; to call those who still did not answer, use Call again on its message."
                if only_unanswered
                else "; its own message shows how it went (and has Try again if it failed too)."
            ),
        )
        return
    parts = ctx.service.requests.parts(new.id)
    count = sum(part.recipient_count for part in parts)
    who = (
        f"the {plural(count, 'recipient')} who did not answer"
        if only_unanswered
        else f"all {plural(count, 'recipient')}"
    )
    where = f"<#{new.channel}>" if new.channel else f"`/robocall status {new.id}`"
    split = f" (in {len(parts)} parts)" if len(parts) > 1 else ""
    await _tell(
        ctx,
        slack,
        f":telephone_receiver: Calling {who} of request {_shown(record.id)} again: "
        f"new request {_shown(new.id)}{split}. Progress and results follow in {where}.",
    )


# ---------------------------------------------------------------- Cancel


async def handle_cancel_action(ctx: SlackContext, slack: Interaction) -> None:
    """*Cancel* on a scheduled request: cancelled (every part) unless already dialled."""
    await slack.ack()
    request_id, record = _clicked(ctx, slack)
    if record is None:
        await _tell(
            ctx,
            slack,
            f":warning: Request {_shown(request_id)} was not cancelled: {UNKNOWN_REQUEST}.",
        )
        return
    await _tell(ctx, slack, cancel_answer(ctx, slack.user, record).text)


# ---------------------------------------------------------------- Check with the provider


async def handle_check_now_action(ctx: SlackContext, slack: Interaction) -> None:
    """Ask the provider now what became of a placed or "outcome unknown" request."""
    await slack.ack()
    request_id, record = _clicked(ctx, slack)
    refused = f":warning: Request {_shown(request_id)} was not checked"
    if record is None:
        await _tell(ctx, slack, f"{refused}: {UNKNOWN_REQUEST}.")
        return
    try:
        wait = ctx.service.check_now(record.id, requested_by=slack.user)
    except NotPossible as exc:
        await _tell(ctx, slack, f"{refused}: {exc.reason}. Nothing was changed.")
        return
    label = outside(ctx.provider(record.provider).capabilities.label, 60)
    if wait >= 1:
        text = (
            f":hourglass_flowing_sand: {label} asked us to wait, so request "
            f"{_shown(record.id)} is checked in {wait:.0f} s; the thread will say what it finds."
        )
    elif record.status == RequestStatus.UNKNOWN:
        text = (
            f":mag: Asking {label} now about request {_shown(record.id)}; "
            "the thread will say what it finds."
        )
    else:
        text = (
            f":mag: Asking {label} now for the results of request {_shown(record.id)}; "
            "the message and its thread show them as they come."
        )
    await _tell(ctx, slack, text)
