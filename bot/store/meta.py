"""Small named values the app keeps for itself (generated tokens, fetch times)."""

from __future__ import annotations

import secrets

from bot.store.db import Database


class MetaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        with self.db.write():
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    def values(self, prefix: str) -> list[str]:
        """The values of every key starting with `prefix`."""
        rows = self.db.execute(
            "SELECT value FROM meta WHERE key >= ? AND key < ?", [prefix, prefix + "\uffff"]
        ).fetchall()
        return [value for (value,) in rows]

    def keys(self, prefix: str) -> list[str]:
        rows = self.db.execute(
            "SELECT key FROM meta WHERE key >= ? AND key < ?", [prefix, prefix + "\uffff"]
        ).fetchall()
        return [key for (key,) in rows]

    def delete(self, key: str) -> None:
        with self.db.write():
            self.db.execute("DELETE FROM meta WHERE key = ?", [key])

    def token(self, key: str, configured: str | None) -> str:
        """The configured secret, or one generated on first start and kept."""
        if configured:
            return configured
        with self.db.write():  # two processes starting at once agree on one token
            if (token := self.get(key)) is None:
                token = secrets.token_urlsafe(24)
                self.set(key, token)
        return token
