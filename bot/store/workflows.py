"""The workflow cache: each provider's workflows as last fetched, so nothing waits on a quota."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from bot.core.models import now_iso
from bot.providers.base import Workflow
from bot.store.db import Database
from bot.store.meta import MetaStore


class WorkflowStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.meta = MetaStore(db)

    def replace(self, provider: str, workflows: Iterable[Workflow]) -> None:
        """Replace one provider's cached workflows with a fresh listing."""
        fetched = now_iso()
        with self.db.write():
            self.db.execute("DELETE FROM workflows WHERE provider = ?", [provider])
            for workflow in workflows:
                self._put(workflow, fetched)
            self.meta.set(f"workflows_fetched_at:{provider}", fetched)

    def replace_kept(self, workflows: Iterable[Workflow]) -> None:
        """Replace the workflows kept as code (read-only) with these."""
        fetched = now_iso()
        with self.db.write():
            self.db.execute("DELETE FROM workflows WHERE json_extract(data, '$.read_only') = 1")
            for workflow in workflows:
                self._put(workflow, fetched)

    def put(self, workflow: Workflow) -> None:
        with self.db.write():
            self._put(workflow, now_iso())

    def _put(self, workflow: Workflow, fetched_at: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO workflows (id, provider, name, data, fetched_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [workflow.id, workflow.provider, workflow.name, workflow.model_dump_json(), fetched_at],
        )

    def all(self) -> list[Workflow]:
        rows = self.db.execute("SELECT data FROM workflows ORDER BY name COLLATE NOCASE, id")
        return [Workflow.model_validate_json(data) for (data,) in rows.fetchall()]

    def get(self, workflow_id: str) -> Workflow | None:
        row = self.db.execute("SELECT data FROM workflows WHERE id = ?", [workflow_id]).fetchone()
        return Workflow.model_validate_json(row[0]) if row else None

    def delete(self, workflow_id: str) -> None:
        with self.db.write():
            self.db.execute("DELETE FROM workflows WHERE id = ?", [workflow_id])

    def fetched_at(self, provider: str) -> datetime | None:
        value = self.meta.get(f"workflows_fetched_at:{provider}")
        return datetime.fromisoformat(value) if value else None
