"""Orders waiting for their requester's confirmation (a large send), by token.

The token is unguessable and is all the client holds (the Confirm button's value,
or a confirmation modal's private_metadata); what was asked for stays here. A
row lives until it expires or is cancelled; once confirmed it remembers the
request it became, so a second click shows that request instead of placing
another.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from bot.store.db import Database, now


@dataclass(frozen=True)
class Pending:
    token: str
    user_id: str
    kind: str  # what asked: "command" or "modal"
    payload: dict[str, Any]
    created_at: float
    expires_at: float
    request_id: str | None = None  # set once confirmed

    @property
    def expired(self) -> bool:
        return now() >= self.expires_at


class PendingOrderStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, user_id: str, kind: str, payload: dict[str, Any], *, ttl: float) -> Pending:
        """Keep an order for `ttl` seconds under a new token; drops the expired ones."""
        token = secrets.token_urlsafe(18)
        at = now()
        with self.db.write():
            self.db.execute("DELETE FROM pending_orders WHERE expires_at < ?", [at])
            self.db.execute(
                "INSERT INTO pending_orders (token, user_id, kind, payload, created_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                [token, user_id, kind, json.dumps(payload), at, at + ttl],
            )
        return Pending(token, user_id, kind, payload, at, at + ttl)

    def get(self, token: str) -> Pending | None:
        row = self.db.one("SELECT * FROM pending_orders WHERE token = ?", [token])
        if row is None:
            return None
        return Pending(
            token=row["token"],
            user_id=row["user_id"],
            kind=row["kind"],
            payload=json.loads(row["payload"]),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            request_id=row["request_id"],
        )

    def confirmed(self, token: str, request_id: str) -> None:
        """Remember the request the order became (in the transaction that stored it)."""
        with self.db.write():
            self.db.execute(
                "UPDATE pending_orders SET request_id = ? WHERE token = ?", [request_id, token]
            )

    def delete(self, token: str) -> bool:
        with self.db.write():
            cursor = self.db.execute("DELETE FROM pending_orders WHERE token = ?", [token])
        return cursor.rowcount > 0
