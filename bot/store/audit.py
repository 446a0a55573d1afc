"""The audit trail: who did what to what, and when."""

from __future__ import annotations

import json
from typing import Any

from bot.core.models import now_iso
from bot.store.db import Database


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        with self.db.write():
            self.db.execute(
                "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                [now_iso(), actor, action, target, json.dumps(detail, sort_keys=True)],
            )

    def trail(self) -> list[dict[str, Any]]:
        return self.db.query("SELECT * FROM audit ORDER BY id")
