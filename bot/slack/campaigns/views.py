"""Block Kit for campaigns: the *New campaign* modal, the preview (a DM), the parent
message in the channel (progress bar, counts, time left, Pause / Resume / Cancel),
the summary, and the CSV files (refused rows; results).

Pure functions: records in, Slack objects out. Whatever in them the app did not
write itself (a workflow's name, file names, cells of the spreadsheet) goes through
`bot.text.outside` / `outside_plain`; numbers are shown masked."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    DateTimePickerElement,
    InputBlock,
    Option,
    StaticSelectElement,
)
from slack_sdk.models.blocks.block_elements import FileInputElement
from slack_sdk.models.views import View

from bot.core.campaigns import LARGE, Campaign, CampaignStatus, Progress
from bot.input import phones
from bot.providers.base import Voice, Workflow
from bot.slack.blocks import Message, md, message, note, percent, plural, sandbox_blocks, when
from bot.slack.calls.views import MAX_OPTIONS, CsvFile, voice_option_groups
from bot.slack.calls.views import _cell as _clipped_cell
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.text import outside, outside_plain

LISTED = 5  # refused rows listed in the preview itself; all of them are in its CSV
BAR = 20  # characters of the progress bar
NAME = 80

# How each outcome reads, in the order they are shown (and charted).
OUTCOME_WORDS = {
    "answered": "answered",
    "voicemail": "voicemail",
    "no_answer": "no answer",
    "busy": "busy",
    "failed": "failed",
    "rejected": "rejected",
    "cancelled": "cancelled",
    "unknown": "outcome unknown",
    "opted_out": "opted out (not called)",
    "refused": "refused (not called)",
    "not_placed": "not placed",
    "not_called": "not called (calling rules)",
    "pending": "calling",
    "queued": "calling",
    "in_progress": "calling",
    "waiting": "waiting",
    "later": "waiting for calling hours",
}
EMOJI = {
    CampaignStatus.DRAFT: ":memo:",
    CampaignStatus.RUNNING: ":loudspeaker:",
    CampaignStatus.PAUSED: ":double_vertical_bar:",
    CampaignStatus.CANCELLED: ":no_entry_sign:",
    CampaignStatus.COMPLETED: ":white_check_mark:",
}


class CampaignModalContext(BaseModel):
    """The modal's private_metadata: who opened it, from where."""

    user_id: str
    channel_id: str | None = None


# ---------------------------------------------------------------- the modal


def campaign_modal(
    workflows: Sequence[Workflow],
    context: CampaignModalContext,
    *,
    voices: Sequence[Voice],
    sandbox: bool = False,
) -> View:
    """*New campaign*: the file (CSV or XLSX), the workflow, the voice, When."""
    blocks: list[Block] = sandbox_blocks(sandbox)
    if not workflows:
        blocks.append(
            md("There are no workflows yet; create one with `/robocall workflows`, then try again.")
        )
        return View(
            type="modal",
            callback_id=CallbackId.CAMPAIGN_NEW,
            title="New campaign",
            close="Close",
            blocks=blocks,
            private_metadata=context.model_dump_json(),
        )
    blocks += [
        InputBlock(
            block_id=BlockId.CAMPAIGN_FILE,
            label="Spreadsheet",
            hint="CSV or XLSX with a header row: a phone column (phone, number, mobile…) and "
            "one column per [variable] of the workflow's message, named as the variable.",
            element=FileInputElement(
                action_id=ActionId.CAMPAIGN_FILE_INPUT, filetypes=["csv", "xlsx"], max_files=1
            ),
        ),
        InputBlock(
            block_id=BlockId.CAMPAIGN_WORKFLOW,
            label="Workflow",
            element=StaticSelectElement(
                action_id=ActionId.CAMPAIGN_WORKFLOW_SELECT,
                options=[
                    Option(value=w.id, text=outside_plain(w.name, 75) or "(no name)")
                    for w in workflows[:MAX_OPTIONS]
                ],
                placeholder="Choose a workflow",
            ),
        ),
        InputBlock(
            block_id=BlockId.CAMPAIGN_VOICE,
            label="Voice",
            optional=True,
            element=StaticSelectElement(
                action_id=ActionId.CAMPAIGN_VOICE_SELECT,
                option_groups=voice_option_groups(voices),
                placeholder="Provider default",
            ),
        ),
        InputBlock(
            block_id=BlockId.CAMPAIGN_WHEN,
            label="When",
            optional=True,
            hint="Leave empty to start once you confirm the preview. Shown in your time zone "
            "(up to 30 days ahead); each number is still called only within its calling hours.",
            element=DateTimePickerElement(action_id=ActionId.CAMPAIGN_WHEN_SELECT),
        ),
    ]
    return View(
        type="modal",
        callback_id=CallbackId.CAMPAIGN_NEW,
        title="New campaign",
        submit="Preview",
        close="Cancel",
        blocks=blocks,
        private_metadata=context.model_dump_json(),
    )


# ---------------------------------------------------------------- the preview


def duration_words(seconds: float | None) -> str:
    """`about 40 s`, `about 12 min`, `about 2 h 05 min`."""
    if seconds is None:
        return "unknown"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


def preview_message(campaign: Campaign, *, sandbox: bool = False) -> Message:
    """What will happen if this campaign is sent, and the Send button (which names the
    count in its confirmation above LARGE recipients)."""
    p = campaign.preview
    name = outside(campaign.workflow_name, NAME)
    file_name = outside(p.get("file_name") or campaign.file_name, NAME)
    lines = [
        f"*Campaign preview* — `{file_name}` with workflow *{name}*",
        f"• *{p.get('valid', 0):,}* valid rows"
        + (
            f" (phone column `{outside(p.get('phone_column'), 40)}`)"
            if p.get("phone_column")
            else ""
        ),
        f"• *{p.get('refused', 0):,}* refused rows",
        f"• *{p.get('duplicates', 0):,}* duplicates (called once, at their first line)",
    ]
    if "opted_out" in p:
        lines.append(f"• *{p['opted_out']:,}* on the opt-out list (not called)")
    if p.get("over_cap"):
        until = p.get("over_cap_until")
        lines.append(
            f"• *{p['over_cap']:,}* over the frequency cap "
            + ("now" if not campaign.start_at else "at the start")
            + " (checked again before each call: not called while over it"
            + (f"; allowed again by {when(until)}" if until else "")
            + ")"
        )
    if "outside_hours" in p:
        until = p.get("outside_until")
        lines.append(
            f"• *{p['outside_hours']:,}* outside their calling hours "
            + ("now" if not campaign.start_at else "at the start")
            + (
                f": they wait until {when(until)} at the latest"
                if until and p["outside_hours"]
                else ""
            )
        )
    rate = p.get("submits_per_second") or 0
    limits = f"{rate:g} requests/s of {p.get('chunk', 1)} calls"
    if p.get("calls_per_second"):
        limits = f"{p['calls_per_second'] * 60:g} calls/min"
    lines.append(
        f"• Estimated time to place the calls: *{duration_words(p.get('seconds'))}* "
        f"(at {outside(p.get('provider_label'), 40)}'s limits: {limits})"
    )
    if campaign.start_at:
        lines.append(f"• Starts {when(campaign.start_at)}")
    columns = p.get("columns") or {}
    if columns:
        mapped = ", ".join(f"[{outside(v, 40)}] ← `{outside(h, 40)}`" for v, h in columns.items())
        lines.append(f"• Variables: {mapped}")
    blocks: list[Block] = [*sandbox_blocks(sandbox), md("\n".join(lines))]
    missing = p.get("missing") or []
    if missing:
        names = ", ".join(f"[{outside(v, 40)}]" for v in missing)
        blocks.append(
            md(
                f":warning: No column fills {names}, which the message needs. Add a column "
                f"named {outside(missing[0], 40)} to the file and start again with "
                "`/robocall campaign`. Nothing can be sent as it is."
            )
        )
    refused = p.get("refused_rows") or []
    if refused:
        listed = "\n".join(
            f"• line {line}: {outside(reason, 200)}" for line, _value, reason in refused[:LISTED]
        )
        count = int(p.get("refused", len(refused)))
        more = (
            f"\n…and {count - LISTED:,} more: every refused row is in the file below."
            if count > LISTED
            else "\nThey are in the file below too."
        )
        blocks.append(md(f"*Refused rows*\n{listed}{more}"))
    duplicates = p.get("duplicate_rows") or []
    if duplicates:
        listed = ", ".join(
            f"line {line} (= line {first})" for line, _m, first in duplicates[:LISTED]
        )
        blocks.append(
            note(f"Duplicates: {listed}" + ("…" if p.get("duplicates", 0) > LISTED else ""))
        )
    count = campaign.callable
    if campaign.status == CampaignStatus.DRAFT and not missing and count > 0:
        send = ButtonElement(
            text=f"Send to {count:,}" if count > LARGE else "Send",
            action_id=ActionId.CAMPAIGN_SEND,
            value=campaign.id,
            style="primary",
        )
        if count > LARGE:
            send.confirm = ConfirmObject(
                title="Start the campaign?",
                text=f"This calls {count:,} people, in {duration_words(p.get('seconds'))}.",
                confirm=f"Call {count:,} people",
                deny="Not yet",
            )
        blocks.append(
            ActionsBlock(
                block_id=BlockId.CAMPAIGN_PREVIEW_ACTIONS,
                elements=[
                    send,
                    ButtonElement(
                        text="Discard", action_id=ActionId.CAMPAIGN_DISCARD, value=campaign.id
                    ),
                ],
            )
        )
    elif count <= 0 and not missing:
        blocks.append(
            md(":warning: Nobody in this file can be called, so there is nothing to send.")
        )
    text = (
        f"Campaign preview: {p.get('valid', 0):,} valid rows, {p.get('refused', 0):,} refused, "
        f"{p.get('duplicates', 0):,} duplicates"
    )
    return message(text, blocks)


def preview_sent(campaign: Campaign) -> Message:
    """The preview once sent: what was decided, without the buttons."""
    where = f" in <#{campaign.channel}>" if campaign.channel else ""
    start = f", starting {when(campaign.start_at)}" if campaign.start_at else ""
    text = (
        f":white_check_mark: Campaign `{campaign.id}` sent to {campaign.callable:,} "
        f"people{start}; follow it{where}."
    )
    return message(text, [md(text)])


def preview_discarded(campaign: Campaign) -> Message:
    text = f"Campaign preview `{campaign.id}` discarded: nobody was called."
    return message(text, [md(text)])


def refused_csv(campaign: Campaign, rows: Sequence[Sequence[Any]]) -> CsvFile | None:
    """Every refused row (`[line, value, reason]`), values as written, numbers masked."""
    if not rows:
        return None
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["line", "value", "reason"])
    for line, value, reason in rows:
        masked = _masked(value)
        writer.writerow([line, masked if masked != value else _cell(value), _cell(reason)])
    return CsvFile(
        filename=f"{campaign.id}-refused.csv",
        title=f"Refused rows ({len(rows):,})",
        content="\ufeff" + out.getvalue(),
    )


def _masked(value: str) -> str:
    """A value that is a callable-looking number, masked; anything else as written."""
    digits = sum(ch.isdigit() for ch in value)
    return phones.mask(value) if digits >= 7 else value


# ---------------------------------------------------------------- the parent message


def moved_note(campaign: Campaign, why: str) -> Message:
    """Above the parent when it lives in the requester's DM instead of its channel."""
    text = (
        f":warning: Campaign `{campaign.id}`'s progress could not be shown in its channel: "
        f"{outside(why, 300)}. It is here instead, with its buttons, and its end follows here."
    )
    return message(text, [md(text)])


def bar(done: int, total: int) -> str:
    filled = round(BAR * done / total) if total else BAR
    return "█" * filled + "░" * (BAR - filled)


def parent_message(campaign: Campaign, progress: Progress, *, sandbox: bool = False) -> Message:
    """The campaign's one message in the channel: state, bar, counts by outcome, time
    left, and the buttons its state allows."""
    total = progress.total
    done = progress.done
    name = outside(campaign.workflow_name, NAME)
    state = {
        CampaignStatus.RUNNING: "running",
        CampaignStatus.PAUSED: "paused",
        CampaignStatus.CANCELLED: "cancelled"
        + (" (ended)" if campaign.finished_at else ": the calls already placed are finishing"),
        CampaignStatus.COMPLETED: "completed",
        CampaignStatus.DRAFT: "not sent yet",
    }[campaign.status]
    head = (
        f"{EMOJI[campaign.status]} *Campaign* `{campaign.id}` — *{name}*, "
        f"{plural(total, 'recipient')}, by <@{campaign.requested_by}>: *{state}*"
    )
    lines = [head, f"`{bar(done, total)}` {done:,}/{total:,} ({percent(done, total)})"]
    counts = counts_line(progress)
    if counts:
        lines.append(counts)
    if campaign.status == CampaignStatus.RUNNING:
        if campaign.start_at and not campaign.finished_at and progress.count("waiting") == total:
            lines.append(f"Starts {when(campaign.start_at)}")
        elif progress.seconds_left is not None:
            lines.append(f"Time left: {duration_words(progress.seconds_left)}")
    if progress.waiting_hours:
        lines.append(
            f":crescent_moon: {progress.waiting_hours:,} wait for their calling hours "
            f"(until {when(progress.hours_open_at)} at the latest)"
        )
    note_text = campaign.preview.get("note")
    if note_text and campaign.status == CampaignStatus.PAUSED:
        lines.append(
            f":warning: *Paused by the app*: {outside(note_text, 600)}. Resume places the "
            "chunks not sent yet once that is mended."
        )
    blocks: list[Block] = [*sandbox_blocks(sandbox), md("\n".join(lines))]
    buttons = []
    if campaign.status == CampaignStatus.RUNNING:
        buttons.append(
            ButtonElement(text="Pause", action_id=ActionId.CAMPAIGN_PAUSE, value=campaign.id)
        )
    if campaign.status == CampaignStatus.PAUSED:
        buttons.append(
            ButtonElement(
                text="Resume",
                action_id=ActionId.CAMPAIGN_RESUME,
                value=campaign.id,
                style="primary",
            )
        )
    if campaign.status in (CampaignStatus.RUNNING, CampaignStatus.PAUSED):
        buttons.append(
            ButtonElement(
                text="Cancel",
                action_id=ActionId.CAMPAIGN_CANCEL,
                value=campaign.id,
                style="danger",
                confirm=ConfirmObject(
                    title="Cancel the campaign?",
                    text="Nobody else is called; calls already placed finish.",
                    confirm="Cancel it",
                    deny="Keep going",
                ),
            )
        )
    if campaign.finished_at:
        buttons.append(
            ButtonElement(text="Call again", action_id=ActionId.CAMPAIGN_AGAIN, value=campaign.id)
        )
    if buttons:
        blocks.append(ActionsBlock(block_id=BlockId.CAMPAIGN_ACTIONS, elements=buttons))
    text = f"Campaign {campaign.id} ({campaign.workflow_name}): {state}, {done:,}/{total:,}"
    return message(outside(text, 300), blocks)


def campaign_line(campaign: Campaign, progress: Progress) -> str:
    """One campaign on one line (the Home tab): state, bar, counts, where it is."""
    done, total = progress.done, progress.total
    where = f" in <#{campaign.channel}>" if campaign.channel else ""
    return (
        f"{EMOJI[campaign.status]} `{campaign.id}` *{outside(campaign.workflow_name, 60)}*"
        f"{where}: {campaign.status} `{bar(done, total)}` {done:,}/{total:,}"
        + (f" · {counts}" if (counts := counts_line(progress)) else "")
    )


def counts_line(progress: Progress) -> str:
    """`answered 40 · no answer 5 · busy 2 · key 1: 30 · waiting 100`."""
    parts = []
    merged: dict[str, int] = {}
    for outcome, n in progress.outcomes.items():
        word = OUTCOME_WORDS.get(outcome, outcome)
        merged[word] = merged.get(word, 0) + n
    order = list(dict.fromkeys(OUTCOME_WORDS.values()))
    for word in sorted(merged, key=lambda w: order.index(w) if w in order else 99):
        if merged[word]:
            parts.append(f"{word} {merged[word]:,}")
    for key, n in sorted(progress.keys.items()):
        parts.append(f"pressed {outside(key, 8)}: {n:,}")
    return " · ".join(parts)


def summary_message(
    campaign: Campaign,
    progress: Progress,
    workflow: Workflow | None,
    refused: Sequence[tuple[int, str]] = (),
) -> Message:
    """The end, in the thread: the figures, what each key meant, the first recipients a
    calling rule kept back and why (`refused`: line, the rule's sentence), what the
    files are."""
    total = progress.total
    answered = progress.count("answered")
    ended = "completed" if campaign.status == CampaignStatus.COMPLETED else "cancelled"
    lines = [
        f"*Campaign `{campaign.id}` {ended}*: "
        f"{answered:,} of {total:,} answered ({percent(answered, total)})",
        counts_line(progress),
    ]
    for key, n in sorted(progress.keys.items()):
        label = workflow.label(key) if workflow else "no label"
        lines.append(f"• {outside(key, 8)} — {outside(label, 80)}: {n:,}")
    if unknown := progress.count("unknown"):
        lines.append(
            f":grey_question: {plural(unknown, 'call')}: outcome unknown. The app was cut off "
            "while sending them and the provider could not say whether it had them, so they "
            "were not sent again and are counted as ended; Call again leaves them out (they "
            "may have been answered)."
        )
    if refused:
        lines.append(f"*Not called* ({len(refused):,}), by the calling rules:")
        lines += [f"• line {line}: {outside(why, 300)}" for line, why in refused[:LISTED]]
        if len(refused) > LISTED:
            lines.append(f"…and {len(refused) - LISTED:,} more: the CSV says why for each.")
    lines.append("The chart and every recipient's result (CSV) follow.")
    text = "\n".join(line for line in lines if line)
    return message(text, [md(text)])


# ---------------------------------------------------------------- results


RESULT_COLUMNS = ("line", "number", "outcome", "key pressed", "duration (s)", "time", "why")


def results_csv(
    campaign: Campaign, rows: Sequence[dict[str, Any]], variables: Sequence[str]
) -> CsvFile:
    """One row per recipient: the line in the uploaded file, the number (masked, as
    everywhere in Slack: the line finds it in your file), each variable, the outcome,
    the key pressed, the duration of an answered call, when its result came, and why
    it was not called when a calling rule said so (the rule, the number masked, when it
    would be allowed)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([RESULT_COLUMNS[0], RESULT_COLUMNS[1], *variables, *RESULT_COLUMNS[2:]])
    for row in rows:
        outcome = row["result"]
        answered = outcome == "answered"
        writer.writerow(
            [
                row["line"],
                phones.mask(row["phone"]),
                *(_cell(row["variables"].get(v, "")) for v in variables),
                OUTCOME_WORDS.get(outcome, outcome),
                _cell(row.get("key_pressed") or ""),
                f"{row['duration']:g}" if answered and row.get("duration") is not None else "",
                (row.get("completed_at") or "")[:19].replace("T", " "),
                _cell(row.get("why") or ""),
            ]
        )
    return CsvFile(
        filename=f"{campaign.id}-results.csv",
        title=f"{outside_plain(campaign.workflow_name, 60)} — results of "
        f"{plural(len(rows), 'recipient')}",
        content="\ufeff" + out.getvalue(),
    )


CELL = 4_000  # characters of someone else's text in a CSV cell, at most


def _cell(value: str | None) -> str:
    """Someone else's text for a spreadsheet (bot/slack/calls/views.py's rule): cleaned,
    never a formula, clipped only far beyond any value a provider takes."""
    return _clipped_cell(value, CELL)
