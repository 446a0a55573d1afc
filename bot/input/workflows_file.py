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

from bot.core.workflow_checks import app_workflow, check_app_workflow, first_message
from bot.providers.base import Workflow, WorkflowDraft

TOP_FIELDS = {"name", "provider", "description", "message", "audio_url", "keypad", "call_flow"}
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


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")[:80] or "workflow"


def load_workflows_file(
    path: Path | str, enabled_providers: Iterable[str]
) -> tuple[list[Workflow], list[str]]:
    """The file's valid workflows (read-only, ids `file-<slug>`), and a refusal per bad one."""
    path = Path(path)
    enabled = set(enabled_providers)
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_FILE_BYTES:
            return [], [f"{path}: the file is {len(raw):,} bytes; at most {MAX_FILE_BYTES:,}"]
        data = yaml.safe_load(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [], [f"{path}: cannot be read ({first[:300]})"]
    entries = data.get("workflows") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return [], [f"{path}: expected 'workflows:' with a list of workflows"]
    workflows: list[Workflow] = []
    refusals: list[str] = []
    ids: dict[str, str] = {}
    for index, entry in enumerate(entries):
        workflow, problems = _read(entry, index, enabled)
        if workflow is not None and workflow.id in ids:
            problems = [f"name: '{workflow.name}' is already used by '{ids[workflow.id]}'"]
        if problems or workflow is None:
            who = (
                f"workflow '{entry['name']}'"
                if isinstance(entry, dict) and isinstance(entry.get("name"), str)
                else f"workflows[{index}]"
            )
            refusals += [f"{who}: {problem}" for problem in problems]
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
    found = check_app_workflow(draft, provider)
    if found:
        return None, [_as_written(field, text, entry) for field, text in found.items()]
    return app_workflow(draft, provider, f"file-{slug(name)}", read_only=True), []


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
