"""The *View calls* modal: one request's calls from our own records, 20 a page, filtered
by outcome, each number masked, each call in plain words.

A pure function of what the store holds; the listeners (`bot/slack/calls/actions.py`)
read the page and open or update the modal. Page and filter travel in the view's
`private_metadata` (`CallsPage`). Whatever others wrote (the workflow's name and
keypad labels, keys pressed) goes in through `bot.text.outside`."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    Option,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.core.models import CallRecord, RequestRecord, Stats
from bot.providers.base import CallOutcome, Workflow
from bot.slack.blocks import md, note, plural, sandbox_blocks
from bot.slack.calls import views
from bot.slack.calls.views import NAME, REF
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.text import clip, outside

PER_PAGE = 20
LINES_PER_SECTION = 10  # ten lines of at most ~140 characters: far under Slack's 3000
# Not in bot/slack/ids.py yet: the outcome filter of the View calls modal.
PAGER_BLOCK = "request_calls_pager"
ALL = "all"

# The filter's choices: value → (what it reads, the outcomes it keeps; None: no result yet).
FILTERS: dict[str, tuple[str, tuple[CallOutcome | None, ...] | None]] = {
    ALL: ("All calls", None),
    "answered": ("Answered", (CallOutcome.ANSWERED,)),
    "no_answer": ("No answer", (CallOutcome.NO_ANSWER,)),
    "busy": ("Busy", (CallOutcome.BUSY,)),
    "voicemail": ("Voicemail", (CallOutcome.VOICEMAIL,)),
    "failed": ("Failed", (CallOutcome.FAILED, CallOutcome.REJECTED, CallOutcome.CANCELLED)),
    "waiting": ("Waiting", (None, CallOutcome.QUEUED, CallOutcome.IN_PROGRESS)),
}


class CallsPage(BaseModel):
    """private_metadata of the View calls modal: whose calls, which page, which filter."""

    request_id: str
    page: int = 1
    outcome: str = ALL  # a key of FILTERS

    def outcomes(self) -> tuple[CallOutcome | None, ...] | None:
        """The outcomes the filter keeps (None: every call)."""
        return FILTERS.get(self.outcome, FILTERS[ALL])[1]

    @property
    def offset(self) -> int:
        return (max(1, self.page) - 1) * PER_PAGE


def pages(total: int) -> int:
    return max(1, -(-total // PER_PAGE))


def calls_modal(
    query: CallsPage,
    record: RequestRecord,
    calls: Sequence[CallRecord],
    matching: int,
    *,
    stats: Stats,
    workflow: Workflow | None,
    whole: int,
    sandbox: bool,
) -> View:
    """One page of a request's calls. `matching` is how many calls pass the filter in
    all, `whole` how many recipients the request has across its parts."""
    page = min(max(query.page, 1), pages(matching))
    name = outside(record.workflow_name, NAME)
    heading = [f"*{name}* · request `{outside(record.id, REF)}`"]
    if record.parts > 1:
        heading[0] += f" · part {record.part} of {record.parts}"
        heading.append(
            f"This part's {plural(record.recipient_count, 'call')}, of "
            f"{plural(whole, 'recipient')} in all; each part has its own message."
        )
    heading.append(
        f"{plural(stats.total, 'call')}: {stats.answered} answered · "
        f"{stats.no_answer} no answer · {stats.busy} busy · {stats.voicemail} voicemail · "
        f"{stats.failed} failed · {stats.pending} waiting"
    )
    options = [Option(value=value, text=text) for value, (text, _) in FILTERS.items()]
    chosen = next((o for o in options if o.value == query.outcome), options[0])
    blocks: list[Block] = [
        *sandbox_blocks(sandbox),
        md("\n".join(heading)),
        ActionsBlock(
            block_id=BlockId.REQUEST_CALLS_FILTER,
            elements=[
                StaticSelectElement(
                    action_id=ActionId.REQUEST_CALLS_FILTER,
                    options=options,
                    initial_option=chosen,
                    placeholder="Show",
                )
            ],
        ),
    ]
    lines = [views.call_line(c, workflow) for c in calls]  # as in the thread
    label = FILTERS.get(query.outcome, FILTERS[ALL])[0]
    if not lines:
        blocks.append(md("No calls." if query.outcome == ALL else f"No call is *{label}*."))
    for start in range(0, len(lines), LINES_PER_SECTION):
        blocks.append(md(clip("\n".join(lines[start : start + LINES_PER_SECTION]), 3000)))
    first = (page - 1) * PER_PAGE + 1 if calls else 0
    shown = f"calls {first} to {first + len(calls) - 1}" if calls else "no calls"
    blocks.append(
        note(f"Page {page} of {pages(matching)} · {shown} of {matching:,} · {label.lower()}")
    )
    pager = []
    if page > 1:
        pager.append(
            ButtonElement(
                text="Previous", action_id=ActionId.REQUEST_CALLS_PAGE, value=str(page - 1)
            )
        )
    if page < pages(matching):
        pager.append(
            ButtonElement(text="Next", action_id=ActionId.REQUEST_CALLS_PAGE, value=str(page + 1))
        )
    if pager:
        blocks.append(ActionsBlock(block_id=PAGER_BLOCK, elements=pager))
    return View(
        type="modal",
        callback_id=CallbackId.REQUEST_CALLS,
        title="Calls",
        close="Close",
        blocks=blocks,
        private_metadata=query.model_copy(update={"page": page}).model_dump_json(),
    )
