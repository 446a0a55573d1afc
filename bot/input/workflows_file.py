"""`WORKFLOWS_FILE`: workflows kept as code (YAML), loaded at start, read-only in Slack.

```yaml
workflows:
  - name: Delivery notice
    provider: intron-direct
    message: "Hello {{name}}, your parcel comes on {{date}}. Press 1 to confirm."
    voice: en-female-1
    keypad: {"1": "Confirm", "2": "Move it"}      # or "1": "Confirm|Thank you, see you"
  - name: Payment reminder
    provider: bizphone
    call_flow: {steps: [...]}                    # seed 004's callFlow
```

Each workflow is checked with its provider's rules (`check_app_workflow`); one that is
refused is left out, naming the workflow, the field and the value, and the others load.
Ids are stable, derived from the name (`file-payment-reminder`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from bot.core.consent import check_consent_fields, with_stop_key
from bot.core.workflow_checks import app_workflow, check_app_workflow, first_message
from bot.providers.base import Workflow, WorkflowDraft

TOP_FIELDS = {"name", "provider", "description", "message", "audio_url", "keypad", "call_flow"}
# Calling responsibly (bot/core/consent.py): `calling_hours: "08:00-21:00"` in the
# callee's local time (default CALLING_HOURS), `press_9_to_stop: true` (key 9 puts the
# callee on the opt-out list; the message must say so).
TOP_FIELDS |= {"calling_hours", "press_9_to_stop"}
OPTION_FIELDS = {
    "voice",
    "caller_id",
    "language",
    "retry_count",
    "retry_delay",
    "pitch",
    "rate",
    "recording",
}
MAX_FILE_BYTES = 1_000_000


class Refusal(str):
    """One refused workflow (or the whole file), as its log line says it, and in parts
    for a front end: which workflow (`None`: the file itself), the field (a path such as
    `call_flow.steps[0].digit`, or '' for the file), the value written there (`None`
    when there is none) and why."""

    workflow: str | None
    field: str
    value: str | None
    why: str

    def __new__(
        cls, text: str, *, workflow: str | None, field: str, value: str | None, why: str
    ) -> Refusal:
        made = super().__new__(cls, text)
        made.workflow, made.field, made.value, made.why = workflow, field, value, why
        return made


def _file_refusal(path: Path, why: str) -> Refusal:
    return Refusal(f"{path}: {why}", workflow=None, field="", value=None, why=why)


def _refusal(who: str, name: str | None, problem: str, entry: Any) -> Refusal:
    """`problem` ("field: why" or "field ('value'): why") of the workflow `who`, in parts."""
    field, sep, why = problem.partition(": ")
    field = field.split(" (", 1)[0] if sep else ""
    value = _value_at(entry, field) if field else None
    return Refusal(
        f"{who}: {problem}", workflow=name, field=field, value=value, why=why if sep else problem
    )


def _value_at(entry: Any, path: str) -> str | None:
    """What the file wrote at `path` (`call_flow.steps[0].branches[1].digit`), as text."""
    here = entry
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("[") and isinstance(here, list):
            index = int(part[1:-1])
            here = here[index] if index < len(here) else None
        elif isinstance(here, dict):
            here = here.get(part)
        else:
            here = None
        if here is None:
            return None
    return here if isinstance(here, str) else str(here)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")[:80] or "workflow"


def load_workflows_file(
    path: Path | str, enabled_providers: Iterable[str]
) -> tuple[list[Workflow], list[Refusal]]:
    """The file's valid workflows (read-only, ids `file-<slug>`), and a refusal per bad one
    (each a `Refusal`: the text that is logged, and its workflow, field, value and why)."""
    path = Path(path)
    enabled = set(enabled_providers)
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_FILE_BYTES:
            why = f"the file is {len(raw):,} bytes; at most {MAX_FILE_BYTES:,}"
            return [], [_file_refusal(path, why)]
        data = yaml.safe_load(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [], [_file_refusal(path, f"cannot be read ({first[:300]})")]
    entries = data.get("workflows") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return [], [_file_refusal(path, "expected 'workflows:' with a list of workflows")]
    workflows: list[Workflow] = []
    refusals: list[Refusal] = []
    ids: dict[str, str] = {}
    for index, entry in enumerate(entries):
        workflow, problems = _read(entry, index, enabled)
        if workflow is not None and workflow.id in ids:
            problems = [f"name: '{workflow.name}' is already used by '{ids[workflow.id]}'"]
        if problems or workflow is None:
            named = isinstance(entry, dict) and isinstance(entry.get("name"), str)
            name = entry["name"] if named else None
            who = f"workflow '{name}'" if named else f"workflows[{index}]"
            refusals += [_refusal(who, name, problem, entry) for problem in problems]
            continue
        ids[workflow.id] = workflow.name
        workflows.append(workflow)
    return workflows, refusals


def _read(entry: Any, index: int, enabled: set[str]) -> tuple[Workflow | None, list[str]]:
    if not isinstance(entry, dict):
        return None, [f"workflows[{index}] is not a mapping of fields"]
    unknown = sorted(str(k) for k in entry if k not in TOP_FIELDS | OPTION_FIELDS)
    if unknown:
        known = ", ".join(sorted(TOP_FIELDS | OPTION_FIELDS))
        return None, [f"{unknown[0]}: not a field of a workflow; use {known}"]
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        return None, [f"name: {name!r} is not a name; give each workflow one"]
    provider = entry.get("provider")
    if provider not in enabled:
        return None, [
            f"provider: '{provider}' is not an enabled provider ({', '.join(sorted(enabled))})"
        ]
    message = entry.get("message") or ""
    if not isinstance(message, str):
        return None, [f"message: {str(message)[:60]!r} is not text"]
    keypad, responses, problems = _keypad(entry.get("keypad"))
    flow = entry.get("call_flow")
    if flow is not None and not isinstance(flow, dict):
        problems.append(f"call_flow: {str(flow)[:60]!r} is not a mapping with 'steps'")
    audio = entry.get("audio_url")
    if audio is not None and not isinstance(audio, str):
        problems.append(f"audio_url: {audio!r} is not a URL")
    hours, stop = entry.get("calling_hours"), entry.get("press_9_to_stop", False)
    if hours is not None and not isinstance(hours, str):
        problems.append(f"calling_hours: {str(hours)[:60]!r} is not a window like '08:00-21:00'")
    if not isinstance(stop, bool):
        problems.append(f"press_9_to_stop: {str(stop)[:60]!r} is not true or false")
    if problems:
        return None, problems
    options = {k: entry[k] for k in OPTION_FIELDS if k in entry}
    if responses:
        options["responses"] = responses
    draft = WorkflowDraft(
        name=name.strip(),
        description=entry.get("description") if isinstance(entry.get("description"), str) else None,
        message=message.strip() or (first_message(flow) if flow else ""),
        keypad=keypad,
        audio_url=audio,
        call_flow=flow,
        options=options,
    )
    draft = draft.model_copy(update={"calling_hours": hours or None, "press_9_to_stop": stop})
    found = check_consent_fields(draft, None)
    draft = with_stop_key(draft)
    found = {**check_app_workflow(draft, provider), **found}
    if found:
        return None, [_as_written(field, text, entry) for field, text in found.items()]
    workflow = app_workflow(draft, provider, f"file-{slug(name)}", read_only=True)
    return workflow.model_copy(update={"calling_hours": hours or None, "press_9_to_stop": stop}), []


def _as_written(field: str, text: str, entry: dict) -> str:
    """A problem in the file's own words: `call_flow.steps[0]…: what`."""
    if text.startswith("callFlow"):
        return "call_flow" + text.removeprefix("callFlow")
    value = entry.get(field)
    shown = f" ({str(value)[:60]!r})" if value is not None and field not in text else ""
    return f"{field}{shown}: {text}"


def _keypad(value: Any) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """`{"1": "Confirm"}` or `{"1": "Confirm|Thank you"}` (meaning | response message)."""
    if value is None:
        return {}, {}, []
    if not isinstance(value, dict):
        return {}, {}, [f"keypad: {str(value)[:60]!r} is not digit: meaning pairs"]
    keypad: dict[str, str] = {}
    responses: dict[str, str] = {}
    for digit, meaning in value.items():
        key = str(digit)
        if not isinstance(meaning, str | int | float):
            return {}, {}, [f"keypad.{key}: {str(meaning)[:60]!r} is not a meaning"]
        label, _, response = str(meaning).partition("|")
        keypad[key] = label.strip()
        if response.strip():
            responses[key] = response.strip()
    return dict(sorted(keypad.items())), responses, []
