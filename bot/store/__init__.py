"""The SQLite store, one module per concern (`Store` bundles the core's).

`db.py` opens the file and runs `migrations.py`; `requests.py`, `workflows.py`,
`jobs.py`, `ratelimits.py`, `audit.py`, `meta.py` and `pending.py` (orders waiting
for confirmation) are the core's tables;
`slack.py` holds the Slack adapter's, which the core never reads.
"""

from __future__ import annotations

from pathlib import Path

from bot.store.audit import AuditLog
from bot.store.campaigns import CampaignStore
from bot.store.consent import ConsentStore
from bot.store.db import Database
from bot.store.escalations import EscalationStore
from bot.store.jobs import JobStore
from bot.store.meta import MetaStore
from bot.store.pending import PendingOrderStore
from bot.store.policies import PolicyStore
from bot.store.requests import RequestStore
from bot.store.workflows import WorkflowStore


class Store:
    """The core's tables over one connection."""

    def __init__(self, path: str | Path, *, checkpoint_pages: int = 1000) -> None:
        self.db = Database(path, checkpoint_pages=checkpoint_pages)
        self.requests = RequestStore(self.db)
        self.workflows = WorkflowStore(self.db)
        self.jobs = JobStore(self.db)
        self.audit = AuditLog(self.db)
        self.meta = MetaStore(self.db)
        self.pending = PendingOrderStore(self.db)
        self.campaigns = CampaignStore(self.db)
        self.consent = ConsentStore(self.db)  # opt-outs, calling hours (bot/core/consent.py)
        self.escalations = EscalationStore(self.db)
        self.policies = PolicyStore(self.db)

    def write(self):
        """One transaction around several writes."""
        return self.db.write()

    def close(self) -> None:
        self.db.close()
