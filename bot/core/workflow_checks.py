"""Checks for the workflows that live in this app (`Capabilities.workflows_at_provider`
False: Intron's direct API and BizPhone), before one is stored, from Slack or a file.

`check_app_workflow` answers field → message, each naming the value and what would be
right, whatever the other fields hold. The core knows providers only through their
interface (`tests/test_layout.py`), so the rules of Intron's direct API are restated
here from its request model (`retry_count` 0-3, `retry_delay` 1-1440 minutes, message
XOR audio URL), and BizPhone's call-flow check is its own package's `flow_problems`,
handed in where the providers are wired (`use_flow_check`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bot.input import templates
from bot.providers.base import Workflow, WorkflowDraft

INTRON_DIRECT = "intron-direct"
BIZPHONE = "bizphone"

NAME_LIMIT = 150
DIRECT_MESSAGE_LIMIT = 4_000  # Intron's rule, after the variables are filled in
DIRECT_MAX_RETRIES = 3
DIRECT_MAX_RETRY_DELAY = 24 * 60  # minutes
BIZPHONE_MESSAGE_LIMIT = 1_000
KEYPAD_DIGITS = tuple("0123456789")
AUDIO_URL = re.compile(r"^https?://[^\s/]+/\S*\.(mp3|wav)(\?\S*)?$", re.IGNORECASE)
VOICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")
CALLER_ID = re.compile(r"^\+?[0-9A-Za-z ]{1,32}$")
RESPONSE_LIMIT = 1_000

# BizPhone's flow built from a message and keypad (the provider's `call_flow_for` when a
# workflow has no flow of its own) says this after a key.
CHOSEN = "You chose: {meaning}. Thank you, goodbye."
NO_CHOICE = "We did not get a choice. Goodbye."

FlowCheck = Callable[[Any], list[str]]  # a callFlow dict → "callFlow.steps[0]…: what" lines
_FLOW_CHECKS: dict[str, FlowCheck] = {}


def use_flow_check(provider_id: str, check: FlowCheck) -> None:
    """Check this provider's call flows with `check` (BizPhone: `models.flow_problems`)."""
    _FLOW_CHECKS[provider_id] = check


def app_workflow(
    draft: WorkflowDraft,
    provider_id: str,
    workflow_id: str,
    *,
    read_only: bool = False,
    created_at=None,
) -> Workflow:
    """The workflow a checked draft makes."""
    return Workflow(
        id=workflow_id,
        provider=provider_id,
        name=draft.name,
        description=draft.description,
        kind=draft.kind,
        message=draft.message,
        keypad=dict(draft.keypad),
        audio_url=draft.audio_url,
        call_flow=draft.call_flow,
        options=dict(draft.options),
        read_only=read_only,
        created_at=created_at,
    )


def check_app_workflow(draft: WorkflowDraft, provider_id: str) -> dict[str, str]:
    """Every problem with a draft of an app-side provider's workflow, by field."""
    problems: dict[str, str] = {}
    if not draft.name.strip():
        problems["name"] = "Give the workflow a name, e.g. Delivery notice."
    elif len(draft.name) > NAME_LIMIT:
        problems["name"] = f"The name is {len(draft.name)} characters; keep it to {NAME_LIMIT}."
    if provider_id == INTRON_DIRECT:
        _intron_direct(draft, problems)
    elif provider_id == BIZPHONE:
        _bizphone(draft, problems)
    else:
        problems["provider"] = f"'{provider_id}' does not keep its workflows in this app."
    return problems


# ---------------------------------------------------------------- Intron direct


def _intron_direct(draft: WorkflowDraft, problems: dict[str, str]) -> None:
    message, audio = draft.message.strip(), (draft.audio_url or "").strip()
    if message and audio:
        problems["audio_url"] = (
            "Give either a message or an audio URL, not both; clear one of them."
        )
    elif not message and not audio:
        problems["message"] = (
            "Write the message the call speaks, or give an audio URL (https://…/notice.mp3)."
        )
    if message and (problem := _message_problem(message, DIRECT_MESSAGE_LIMIT, "Intron")):
        problems["message"] = problem
    if audio and not AUDIO_URL.match(audio):
        problems["audio_url"] = (
            f"'{audio[:100]}' is not an http(s) URL of an .mp3 or .wav file; "
            "write e.g. https://example.com/notice.mp3"
        )
    options = draft.options
    _pattern(options, "voice", VOICE_ID, "a voice id such as en-female-1", problems)
    _pattern(options, "caller_id", CALLER_ID, "a number such as +2348012345678", problems)
    _pattern(options, "language", LANGUAGE, "a language code such as en or en-NG", problems)
    _whole(options, "retry_count", 0, DIRECT_MAX_RETRIES, "", problems)
    _whole(options, "retry_delay", 1, DIRECT_MAX_RETRY_DELAY, " minutes", problems)
    _keypad(draft.keypad, problems)
    responses = options.get("responses") or {}
    if not isinstance(responses, dict):
        problems["keypad"] = "The keypad's response messages must be digit → message."
        return
    for digit, text in responses.items():
        if digit not in draft.keypad:
            problems["keypad"] = f"A response message is given for {digit}, which has no meaning."
        elif not isinstance(text, str) or len(text) > RESPONSE_LIMIT:
            problems["keypad"] = (
                f"The response message for {digit} must be text of at most "
                f"{RESPONSE_LIMIT:,} characters."
            )
        elif problem := templates.bracket_problem(text):
            problems["keypad"] = f"The response message for {digit}: {problem}"


def _message_problem(message: str, limit: int, label: str) -> str | None:
    if problem := templates.bracket_problem(message):
        return problem
    if len(message) > limit:
        return (
            f"The message is {len(message):,} characters; {label}'s limit is {limit:,}, "
            "after the variables are filled in."
        )
    return None


def _pattern(options: dict, key: str, pattern: re.Pattern, example: str, problems: dict) -> None:
    value = options.get(key)
    if value is None or value == "":
        return
    if not isinstance(value, str) or not pattern.match(value):
        problems[key] = f"'{str(value)[:64]}' is not {example}."


def _whole(options: dict, key: str, low: int, high: int, unit: str, problems: dict) -> None:
    value = options.get(key)
    if value is None or value == "":
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = str(value)[:20]
        problems[key] = f"{key} '{shown}' is not a whole number from {low} to {high}{unit}."


def _keypad(keypad: dict[str, str], problems: dict[str, str]) -> None:
    for digit, meaning in keypad.items():
        if digit not in KEYPAD_DIGITS:
            problems["keypad"] = f"'{str(digit)[:10]}' is not one keypad digit 0-9."
            return
        if not isinstance(meaning, str) or not meaning.strip():
            problems["keypad"] = f"Say what pressing {digit} means, e.g. {digit}=Confirm."
            return


# ---------------------------------------------------------------- BizPhone


def _bizphone(draft: WorkflowDraft, problems: dict[str, str]) -> None:
    options = draft.options
    for key in ("pitch", "rate"):
        _whole(options, key, 0, 9, "", problems)
    recording = options.get("recording")
    if recording is not None and not isinstance(recording, bool):
        shown = str(recording)[:20]
        problems["recording"] = f"recording '{shown}' is not on (true) or off (false)."
    check = _FLOW_CHECKS.get(BIZPHONE)
    if draft.call_flow is not None:
        flow, built = draft.call_flow, False
    else:
        if not draft.message.strip():
            problems["message"] = "Write the message the call speaks, or give a call flow."
            return
        if problem := templates.bracket_problem(draft.message):
            problems["message"] = problem
            return
        _keypad(draft.keypad, problems)
        flow, built = bizphone_flow(draft.message, draft.keypad), True
    if check is None:
        problems["call_flow"] = (
            "BizPhone's call-flow check is not wired into this app, so nothing can be saved "
            "for BizPhone yet; an admin should report it."
        )
        return
    for line in check(flow):
        field = "call_flow"
        if built:
            field = "message" if line.startswith("callFlow.steps[0].message") else "keypad"
        problems.setdefault(field, line)


def bizphone_flow(message: str, keypad: dict[str, str]) -> dict[str, Any]:
    """The call flow BizPhone plays for a message and keypad with no flow of their own."""
    spoken = {"msg": templates.in_syntax(message, "braces")}
    if not keypad:
        return {"steps": [{"name": "play", "message": spoken}]}
    branches: list[dict[str, Any]] = [
        {"digit": d, "callFlow": say(CHOSEN.format(meaning=m))} for d, m in sorted(keypad.items())
    ]
    branches.append({"default": True, "callFlow": say(NO_CHOICE)})
    return {"steps": [{"name": "gather", "message": spoken, "branches": branches}]}


def say(text: str) -> dict[str, Any]:
    return {"steps": [{"name": "play", "message": {"msg": text}}]}


def first_message(flow: Any) -> str:
    """The first thing a call flow says (shown in lists, and where its variables are read
    from), or '' when its first step says nothing."""
    try:
        return str(flow["steps"][0]["message"]["msg"])[:3000]
    except (KeyError, IndexError, TypeError):
        return ""
