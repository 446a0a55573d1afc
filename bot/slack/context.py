"""What every Slack handler needs, and who may do what."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from slack_sdk.web.async_client import AsyncWebClient

from bot.background import Background
from bot.service import CallService
from bot.settings import Settings
from bot.workflows import WorkflowService

GROUP_CACHE_SECONDS = 300.0


@dataclass
class SlackContext:
    """The core services, settings, and where to run work after the ack."""

    service: CallService
    workflows: WorkflowService
    settings: Settings
    background: Background
    sandbox: bool
    _group: tuple[float, frozenset[str]] | None = field(default=None, repr=False)

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

    async def can_manage(self, client: AsyncWebClient, user_id: str) -> bool:
        """May this user create, edit and delete workflows? Everyone may when no admin
        user ids and no admin user group are configured."""
        admins = self.settings.admin_user_ids
        group = self.settings.admin_usergroup_id
        if not admins and not group:
            return True
        if user_id in admins:
            return True
        return bool(group) and user_id in await self._group_members(client, group)

    async def _group_members(self, client: AsyncWebClient, group: str) -> frozenset[str]:
        now = time.monotonic()
        if self._group is None or now - self._group[0] > GROUP_CACHE_SECONDS:
            answer = await client.usergroups_users_list(usergroup=group)
            self._group = (now, frozenset(answer.get("users", [])))
        return self._group[1]
