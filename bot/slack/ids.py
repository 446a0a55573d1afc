"""Every callback, block and action id the Slack adapter uses, in one place."""

from __future__ import annotations

from enum import StrEnum


class CallbackId(StrEnum):
    SEND_CALL = "send_call"
    WORKFLOW_EDIT = "workflow_edit"
    WORKFLOW_DELETE = "workflow_delete"
    WORKFLOW_VIEW = "workflow_view"
    WORKFLOW_CALLS = "workflow_calls"
    WORKFLOW_DONE = "workflow_done"
    REQUEST_CALLS = "request_calls"  # a request's calls, paged (View calls)
    CONFIRM_SEND = "confirm_send"  # "Call 120 people?" pushed over the Send modal
    WORKFLOW_PROVIDER = "workflow_provider"  # New workflow: which provider, first
    # Escalation policies (bot/slack/escalations/handlers.py)
    POLICY_EDIT = "policy_edit"  # the New/Edit policy modal
    POLICY_DELETE = "policy_delete"  # "Delete this policy?"
    ESCALATE_MESSAGE = "escalate_message"  # the message shortcut *Escalate by phone*
    ESCALATE_MESSAGE_SUBMIT = "escalate_message_submit"  # its modal
    CAMPAIGN_NEW = "campaign_new"  # the New campaign modal (bot/slack/campaigns)


class BlockId(StrEnum):
    SANDBOX_NOTICE = "sandbox_notice"
    # Send modal
    WORKFLOW = "workflow"
    WORKFLOW_INFO = "workflow_info"
    VOICE = "voice"
    RECIPIENTS = "recipients"
    CHANNEL = "channel"
    WHEN = "when"  # optional: dial later
    # Workflow modal
    WF_NAME = "wf_name"
    WF_DESCRIPTION = "wf_description"
    WF_TYPE = "wf_type"
    WF_MESSAGE = "wf_message"
    WF_COUNT = "wf_count"
    WF_REPLY = "wf_reply"
    WF_OPTIONS = "wf_options"
    # Calls modal
    CALLS_BATCH = "calls_batch"
    CALLS_STATUS = "calls_status"
    CALLS_PHONE = "calls_phone"
    CALLS_RESULTS = "calls_results"
    # A request's calls modal
    REQUEST_CALLS_FILTER = "request_calls_filter"
    # Workflow modal, for the providers whose workflows live in this app
    WF_PROVIDER = "wf_provider"
    WF_AUDIO = "wf_audio"
    WF_VOICE = "wf_voice"
    WF_CALLER = "wf_caller"
    WF_LANGUAGE = "wf_language"
    WF_RETRY_COUNT = "wf_retry_count"
    WF_RETRY_DELAY = "wf_retry_delay"
    WF_DEFAULT = "wf_default"
    WF_FLOW = "wf_flow"
    WF_PITCH = "wf_pitch"
    WF_RATE = "wf_rate"
    WF_RECORDING = "wf_recording"
    WF_AUDIO_FILE = "wf_audio_file"  # an uploaded recording (file_input), Intron direct
    WF_HOURS = "wf_hours"  # calling hours (bot/core/consent.py)
    WF_STOP = "wf_stop"  # "press 9 to stop these calls"
    # Escalation policy modal, and the shortcut's modal
    EP_NAME = "ep_name"
    EP_CHANNEL = "ep_channel"
    EP_WORKFLOW = "ep_workflow"
    EP_VOICE = "ep_voice"
    EP_STEPS = "ep_steps"
    EP_REPEAT = "ep_repeat"
    EP_FALLBACK = "ep_fallback"
    EP_URGENT = "ep_urgent"
    ESCALATE_POLICY = "escalate_policy"
    ESCALATE_TEXT = "escalate_text"
    # New campaign modal, preview and parent (bot/slack/campaigns)
    CAMPAIGN_FILE = "campaign_file"
    CAMPAIGN_WORKFLOW = "campaign_workflow"
    CAMPAIGN_VOICE = "campaign_voice"
    CAMPAIGN_WHEN = "campaign_when"
    CAMPAIGN_PREVIEW_ACTIONS = "campaign_preview_actions"
    CAMPAIGN_ACTIONS = "campaign_actions"


class ActionId(StrEnum):
    # Send modal
    WORKFLOW_SELECT = "workflow_select"
    VOICE_SELECT = "voice_select"
    RECIPIENTS_INPUT = "recipients_input"
    CHANNEL_SELECT = "channel_select"
    WHEN_SELECT = "when_select"  # a datetimepicker
    # Workflow modal inputs
    WF_NAME_INPUT = "wf_name_input"
    WF_DESCRIPTION_INPUT = "wf_description_input"
    WF_TYPE_SELECT = "wf_type_select"
    WF_MESSAGE_INPUT = "wf_message_input"
    WF_REPLY_TOGGLE = "wf_reply_toggle"
    WF_OPTIONS_INPUT = "wf_options_input"
    # Buttons on workflow lists (message and Home tab)
    WORKFLOW_NEW = "workflow_new"
    WORKFLOW_SEND = "workflow_send"
    WORKFLOW_VIEW = "workflow_view"
    WORKFLOW_EDIT = "workflow_edit"
    WORKFLOW_DELETE = "workflow_delete"
    WORKFLOW_FIX_CALLBACK = "workflow_fix_callback"
    WORKFLOWS_REFRESH = "workflows_refresh"
    WORKFLOWS_PAGE = "workflows_page"
    WORKFLOW_CALLS = "workflow_calls"
    # Calls modal
    CALLS_BATCH_INPUT = "calls_batch_input"
    CALLS_STATUS_SELECT = "calls_status_select"
    CALLS_PHONE_INPUT = "calls_phone_input"
    CALLS_PAGE = "calls_page"
    # Home tab
    HOME_SEND = "home_send"
    # Buttons on a request's parent message (and the Home tab); each button's value is
    # the request id
    REQUEST_VIEW_CALLS = "request_view_calls"
    REQUEST_CALL_AGAIN = "request_call_again"  # those who did not answer
    REQUEST_TRY_AGAIN = "request_try_again"  # a failed request, the same recipients
    REQUEST_CHECK_NOW = "request_check_now"  # "outcome unknown": ask the provider now
    REQUEST_CANCEL = "request_cancel"  # a scheduled request, before it is dialled
    REQUEST_CALLS_PAGE = "request_calls_page"  # paging inside the View calls modal
    REQUEST_CALLS_FILTER = "request_calls_filter"  # its outcome filter
    # A large send from /robocall call, confirmed (value: the pending order's key)
    CONFIRM_CALL = "confirm_call"
    CANCEL_CALL = "cancel_call"
    # Workflow modal, for the providers whose workflows live in this app
    WF_PROVIDER_SELECT = "wf_provider_select"
    WF_AUDIO_INPUT = "wf_audio_input"
    WF_VOICE_INPUT = "wf_voice_input"
    WF_CALLER_INPUT = "wf_caller_input"
    WF_LANGUAGE_INPUT = "wf_language_input"
    WF_RETRY_COUNT_INPUT = "wf_retry_count_input"
    WF_RETRY_DELAY_INPUT = "wf_retry_delay_input"
    WF_DEFAULT_INPUT = "wf_default_input"
    WF_FLOW_INPUT = "wf_flow_input"
    WF_PITCH_INPUT = "wf_pitch_input"
    WF_RATE_INPUT = "wf_rate_input"
    WF_RECORDING_TOGGLE = "wf_recording_toggle"
    WF_AUDIO_FILE_INPUT = "wf_audio_file_input"
    WF_HOURS_INPUT = "wf_hours_input"
    WF_STOP_TOGGLE = "wf_stop_toggle"
    # Escalation policies: the list's buttons (value: the policy id, or "new") and the
    # policy modal's inputs
    POLICY_NEW = "policy_new"
    POLICY_EDIT = "policy_edit"
    POLICY_DELETE = "policy_delete"
    POLICY_TEST = "policy_test"
    EP_NAME_INPUT = "ep_name_input"
    EP_CHANNEL_SELECT = "ep_channel_select"
    EP_WORKFLOW_SELECT = "ep_workflow_select"
    EP_VOICE_SELECT = "ep_voice_select"
    EP_STEPS_INPUT = "ep_steps_input"
    EP_REPEAT_SELECT = "ep_repeat_select"
    EP_FALLBACK_SELECT = "ep_fallback_select"
    EP_URGENT_TOGGLE = "ep_urgent_toggle"
    ESCALATE_POLICY_SELECT = "escalate_policy_select"
    ESCALATE_TEXT_INPUT = "escalate_text_input"
    # A running escalation's parent message (value: the escalation id); anyone may press
    ESCALATION_ACKNOWLEDGE = "escalation_acknowledge"
    ESCALATION_RESOLVE = "escalation_resolve"
    # Campaigns (bot/slack/campaigns); each button's value is the campaign id
    CAMPAIGN_FILE_INPUT = "campaign_file_input"
    CAMPAIGN_WORKFLOW_SELECT = "campaign_workflow_select"
    CAMPAIGN_VOICE_SELECT = "campaign_voice_select"
    CAMPAIGN_WHEN_SELECT = "campaign_when_select"
    CAMPAIGN_SEND = "campaign_send"
    CAMPAIGN_DISCARD = "campaign_discard"
    CAMPAIGN_PAUSE = "campaign_pause"
    CAMPAIGN_RESUME = "campaign_resume"
    CAMPAIGN_CANCEL = "campaign_cancel"
    CAMPAIGN_AGAIN = "campaign_again"


DEFAULT_VOICE = "default"
ANY_STATUS = "any"
