"""Escalation policies, one row each, the policy as JSON.

The models `Policy` and `PolicyStep` are defined here, beside their table, so the
store can return them while knowing no service (tests/test_layout.py); import them
from `bot.core.policies`, which owns them (with the wait parser and the ids).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.core.models import now_iso
from bot.store.db import Database

MAX_STEPS = 20
MAX_REPEAT = 10
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def is_user_id(value: str) -> bool:
    """True for a Slack user id (U…/W…)."""
    return bool(_USER_ID.match(value))


class PolicyStep(BaseModel):
    """One step of the chain: whom to call, and how long they have to acknowledge."""

    model_config = ConfigDict(frozen=True)

    call: str  # a Slack user id (U…/W…) or an E.164 number
    wait: float  # seconds, >= MIN_WAIT

    @property
    def is_user(self) -> bool:
        """True when the step calls a Slack user (phone from their profile)."""
        return is_user_id(self.call)


class Policy(BaseModel):
    """An escalation policy."""

    model_config = ConfigDict(frozen=True)

    id: str  # "ep-" + 12 hex; from the file: "ep-" + stable hash of the name
    name: str
    channel: str  # channel id
    workflow: str  # workflow id (any provider); digit 1 = acknowledge
    voice: str | None = None
    steps: list[PolicyStep] = Field(min_length=1, max_length=MAX_STEPS)
    repeat: int = Field(default=0, ge=0, le=MAX_REPEAT)  # how many MORE times to run the chain
    fallback_workflow: str | None = None  # workflow id on another provider
    urgent: bool = False  # ignores calling hours (issue 14)
    source: Literal["slack", "file"] = "slack"
    created_by: str | None = None


class PolicyStore:
    """Policies made in Slack and those kept as code (`source="file"`), by name."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, policy_id: str) -> Policy | None:
        """The policy with this id, or None."""
        row = self.db.execute(
            "SELECT data FROM escalation_policies WHERE id = ?", [policy_id]
        ).fetchone()
        return Policy.model_validate_json(row[0]) if row else None

    def by_name(self, name: str) -> Policy | None:
        """The policy with this name, whatever its case (or None)."""
        wanted = name.strip().casefold()
        return next((p for p in self.list() if p.name.casefold() == wanted), None)

    def list(self) -> list[Policy]:
        """Every policy, by name."""
        rows = self.db.execute(
            "SELECT data FROM escalation_policies ORDER BY name COLLATE NOCASE, id"
        ).fetchall()
        return [Policy.model_validate_json(data) for (data,) in rows]

    def put(self, policy: Policy) -> None:
        """Add or replace a policy (by id)."""
        with self.db.write():
            self._put(policy)

    def delete(self, policy_id: str) -> None:
        """Remove a policy; nothing happens if it is not there."""
        with self.db.write():
            self.db.execute("DELETE FROM escalation_policies WHERE id = ?", [policy_id])

    def replace_file(self, policies: Iterable[Policy]) -> None:
        """Replace the policies kept as code with these (in one transaction)."""
        with self.db.write():
            self.db.execute("DELETE FROM escalation_policies WHERE source = 'file'")
            for policy in policies:
                self._put(policy)

    def _put(self, policy: Policy) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO escalation_policies (id, name, source, data, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [policy.id, policy.name, policy.source, policy.model_dump_json(), now_iso()],
        )
