"""What every Slack handler and Slack job needs, and who may do what."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from slack_sdk.web.async_client import AsyncWebClient

from bot.core.campaigns import CampaignService
from bot.core.escalation import EscalationService
from bot.core.jobs import Jobs
from bot.core.requests import CallService
from bot.core.workflows import WorkflowService
from bot.providers.base import Provider, Voice
from bot.settings import Settings
from bot.store import Store
from bot.store.slack import SlackStore

GROUP_CACHE_SECONDS = 300.0


@dataclass
class SlackContext:
    """The core services, the adapter's own tables, settings, and the Slack clients."""

    service: CallService
    workflows: WorkflowService
    slack_store: SlackStore
    jobs: Jobs
    settings: Settings
    client: AsyncWebClient  # waits out 429s: for answers people are waiting for
    # Running escalations (bot/core/escalation.py); set by bot/app.py once built.
    escalations: EscalationService | None = None
    # Campaigns (bot/core/campaigns.py); set by bot/app.py once built.
    campaigns: CampaignService | None = None
    _group: tuple[float, frozenset[str]] | None = field(default=None, repr=False)

    @property
    def sandbox(self) -> bool:
        return self.service.providers.sandbox

    @property
    def store(self) -> Store:
        return self.service.store

    def provider(self, provider_id: str | None = None) -> Provider:
        providers = self.service.providers
        return providers.get(provider_id) if provider_id else providers.default

    def voices(self, provider_id: str | None = None) -> tuple[Voice, ...]:
        return tuple(self.provider(provider_id).voices())

    def voice_label(self, provider_id: str, key: str | None) -> str:
        """How a request's voice reads: `Igbo (female)`, or the provider's default."""
        if not key:
            return "provider default"
        if provider_id in self.service.providers:
            for voice in self.provider(provider_id).voices():
                if voice.key == key:
                    return voice.label
        return key

    def refusal(self, user_id: str, channel_id: str | None) -> str | None:
        """Why this user may not place calls from this channel, or None if they may."""
        allowed_users = self.settings.allowed_user_ids
        allowed_channels = self.settings.allowed_channel_ids
        if allowed_users and user_id not in allowed_users:
            return (
                "You are not on the list of people who may place calls "
                "(ALLOWED_USER_IDS); ask an admin to add you. Nothing was sent."
            )
        if allowed_channels and channel_id not in allowed_channels:
            listed = ", ".join(f"<#{c}>" for c in allowed_channels)
            where = f"<#{channel_id}>" if channel_id else "here"
            return (
                f"Calls may not be placed from {where}; use one of {listed} "
                "(ALLOWED_CHANNEL_IDS). Nothing was sent."
            )
        return None

    async def can_manage(self, user_id: str) -> bool:
        """May this user create, edit and delete workflows? Everyone may when no admin
        user ids and no admin user group are configured."""
        admins = self.settings.admin_user_ids
        group = self.settings.admin_usergroup_id
        if not admins and not group:
            return True
        if user_id in admins:
            return True
        return bool(group) and user_id in await self._group_members(group)

    async def _group_members(self, group: str) -> frozenset[str]:
        now = time.monotonic()
        if self._group is None or now - self._group[0] > GROUP_CACHE_SECONDS:
            answer = await self.client.usergroups_users_list(usergroup=group)
            self._group = (now, frozenset(answer.get("users", [])))
        return self._group[1]
