"""`ESCALATION_POLICIES_FILE`: escalation policies kept as code (YAML), loaded at start,
read-only in Slack.

```yaml
policies:
  - name: Payments on-call
    channel: C0123ABCD
    workflow: On-call alert          # a workflow's name (any case) or id
    voice: yoruba/female             # optional
    repeat: 1                        # optional, 0-10 more rounds
    fallback_workflow: Pager (BizPhone)   # optional, on another provider
    urgent: false                    # optional
    steps:
      - call: U0123ABCD              # a Slack user id (the phone of their profile)
        wait: 5m
      - call: "+2348076960623"       # or an E.164 number (quoted: YAML reads + as a sign)
        wait: 30s
```

Each policy is checked as one saved in Slack is (`bot/core/policy_checks.py`); one
that is refused is left out, naming the policy, the step and the value, and the
others load. The app starts either way. Ids are stable, derived from the name.
Numbers in refusals are masked: they are logged and shown in the Home tab.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import yaml

from bot.core.policy_checks import (
    ChannelCheck,
    Issue,
    PhoneLookup,
    PolicyChecker,
    PolicyDraft,
    StepDraft,
)
from bot.input.phones import mask
from bot.store import Store

log = logging.getLogger(__name__)

FIELDS = {"name", "channel", "workflow", "voice", "steps", "repeat", "fallback_workflow", "urgent"}
STEP_FIELDS = {"call", "wait"}
MAX_FILE_BYTES = 1_000_000
REFUSALS_KEY = "escalation_policies_file_refusals"  # meta: the last load's refusals (JSON)
_NUMBER = re.compile(r"\+?\d[\d \-.()]{5,}\d")


def read_policies_file(path: Path | str) -> tuple[list[PolicyDraft], list[str]]:
    """The file's policies as drafts (not yet checked), and a refusal per entry that is
    not even a policy's shape."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_FILE_BYTES:
            return [], [f"{path}: the file is {len(raw):,} bytes; at most {MAX_FILE_BYTES:,}"]
        data = yaml.safe_load(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [], [f"{path}: cannot be read ({first[:300]})"]
    entries = data.get("policies") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return [], [f"{path}: expected 'policies:' with a list of policies"]
    drafts: list[PolicyDraft] = []
    refusals: list[str] = []
    for index, entry in enumerate(entries):
        draft, problem = _read(entry, index)
        if draft is None:
            who = (
                f"policy '{entry['name']}'"
                if isinstance(entry, dict) and isinstance(entry.get("name"), str)
                else f"policies[{index}]"
            )
            refusals.append(f"{who}: {problem}")
        else:
            drafts.append(draft)
    return drafts, refusals


def _read(entry: Any, index: int) -> tuple[PolicyDraft | None, str]:
    if not isinstance(entry, dict):
        return None, f"policies[{index}] is not a mapping of fields"
    unknown = sorted(str(k) for k in entry if k not in FIELDS)
    if unknown:
        return None, f"{unknown[0]}: not a field of a policy; use {', '.join(sorted(FIELDS))}"
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        return None, f"name: {str(name)[:60]!r} is not a name; give each policy one"
    raw_steps = entry.get("steps")
    if not isinstance(raw_steps, list):
        return None, "steps: expected a list of steps, each with call and wait"
    steps: list[StepDraft] = []
    early: list[Issue] = []
    for number, step in enumerate(raw_steps, start=1):
        if not isinstance(step, dict) or set(step) - STEP_FIELDS or "call" not in step:
            early.append(Issue("steps", "expected call: and wait: (e.g. wait: 5m)", number))
            steps.append(StepDraft(None, ""))  # refused above
            continue
        # A number written without quotes comes back from YAML as an int: read its digits
        # (for `call` only: `wait: 300`, an int too, is 300 seconds).
        steps.append(StepDraft(_phone_text(step.get("call")), _text(step.get("wait"))))
    urgent = entry.get("urgent", False)
    if not isinstance(urgent, bool):
        early.append(Issue("urgent", f"urgent {str(urgent)[:20]!r} is not true or false"))
    return PolicyDraft(
        name=name.strip(),
        channel=_text(entry.get("channel")),
        workflow=_text(entry.get("workflow")),
        steps=steps,
        voice=_text(entry.get("voice")) or None,
        repeat=entry.get("repeat", 0),
        fallback_workflow=_text(entry.get("fallback_workflow")) or None,
        urgent=urgent is True,
        source="file",
        early=early,
    ), ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(value).strip()


def _phone_text(value: Any) -> str:
    """A step's `call`: `call: +2348076960623` unquoted is read by YAML as a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"+{value}"
    return _text(value)


def masked(text: str) -> str:
    """A refusal with every phone number in it masked (it is logged and shown)."""
    return _NUMBER.sub(lambda m: mask(m.group()), text)


async def load_policies_file(
    path: Path | str | None,
    store: Store,
    checker: PolicyChecker,
    *,
    phones: PhoneLookup | None,
    channel_problem: ChannelCheck | None = None,
) -> list[str]:
    """Load the policies kept as code in place of those loaded before, and keep the
    refusals (for the Home tab, `file_refusals`); each refusal is logged. Never raises
    for what the file holds: the app starts with the good ones."""
    if path is None:
        with store.write():
            store.policies.replace_file([])
            store.meta.set(REFUSALS_KEY, "[]")
        return []
    drafts, refusals = read_policies_file(path)
    loaded = []
    names: set[str] = set()
    for draft in drafts:
        if draft.name.casefold() in names:
            refusals.append(
                f"policy '{draft.name}': name '{draft.name}' is used by another policy in the "
                "file; give each its own name"
            )
            continue
        names.add(draft.name.casefold())
        checked = await checker.check(
            draft, phones=phones, channel_problem=channel_problem, unknown_profiles_ok=True
        )
        for warning in checked.warnings:
            log.warning("ESCALATION_POLICIES_FILE: policy '%s': %s", draft.name, masked(warning))
        if checked.policy is None:
            refusals += [issue.named(draft.name) for issue in checked.issues]
        else:
            loaded.append(checked.policy)
    refusals = [masked(r) for r in refusals]
    with store.write():  # the policies and their refusals are seen together
        store.policies.replace_file(loaded)
        store.meta.set(REFUSALS_KEY, json.dumps(refusals))
    for refusal in refusals:
        log.warning("ESCALATION_POLICIES_FILE: %s (not loaded)", refusal)
    if loaded:
        log.info("ESCALATION_POLICIES_FILE: %d policies loaded", len(loaded))
    return refusals


def file_refusals(store: Store) -> list[str]:
    """What the last load of the file refused (for admins, in the Home tab)."""
    try:
        return list(json.loads(store.meta.get(REFUSALS_KEY) or "[]"))
    except ValueError:
        return []
