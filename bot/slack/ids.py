"""Every callback, block and action id the Slack adapter uses, in one place."""

from __future__ import annotations

from enum import StrEnum


class CallbackId(StrEnum):
    SEND_CALL = "send_call"


class BlockId(StrEnum):
    SANDBOX_NOTICE = "sandbox_notice"
    WORKFLOW = "workflow"
    WORKFLOW_INFO = "workflow_info"
    VOICE = "voice"
    RECIPIENTS = "recipients"
    CHANNEL = "channel"


class ActionId(StrEnum):
    WORKFLOW_SELECT = "workflow_select"
    VOICE_SELECT = "voice_select"
    RECIPIENTS_INPUT = "recipients_input"
    CHANNEL_SELECT = "channel_select"


DEFAULT_VOICE = "default"
