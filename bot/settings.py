"""Configuration from environment variables (and a `.env` file), as fixed by DESIGN.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.input.phones import NumberType

# Every provider, in the order they are offered (the first is the default).
PROVIDERS = ("intron", "intron-direct", "bizphone")

IdList = Annotated[list[str], NoDecode]
NumberTypeList = Annotated[list[NumberType], NoDecode]


class Settings(BaseSettings):
    """Every setting the app reads. Names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Slack (contract)
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    # Providers (contract). No key at all means demo mode: the built-in sandboxes.
    intron_api_key: SecretStr | None = None
    intron_base_url: str = "https://voicebot.intron.health/voicebot/v1"
    intron_direct_api_key: SecretStr | None = None  # Intron's direct robo-call API
    intron_direct_base_url: str = "https://voice.intron.io/api/v1/voice-bot"
    bizphone_api_key: SecretStr | None = None  # BizPhone: enabled with BIZPHONE_BASE_URL
    bizphone_base_url: str | None = None  # no default: each organisation has its own
    bizphone_caller_id: str | None = None  # the number (or name) BizPhone calls from
    bizphone_call_recording: bool = False  # record BizPhone's calls
    sandbox: bool = False  # SANDBOX=1: the sandboxes even though a key is set

    # Serving (contract)
    public_url: str = "http://localhost:3000"
    callback_token: SecretStr | None = None
    # The secret path segment of POST /alerts/{token}; generated and kept when unset.
    alert_webhook_token: SecretStr | None = None
    database_path: str = "data/robocall.db"
    # Workflows kept as code (YAML), for the providers whose workflows live in this app.
    workflows_file: Path | None = None
    # Escalation policies kept as code (YAML), loaded at start, read-only in Slack.
    escalation_policies_file: Path | None = None
    host: str = "0.0.0.0"
    port: int = 3000

    # Who may do what (contract); empty means everyone.
    allowed_user_ids: IdList = Field(default_factory=list)
    allowed_channel_ids: IdList = Field(default_factory=list)
    admin_user_ids: IdList = Field(default_factory=list)
    admin_usergroup_id: str | None = None  # members of this Slack user group are admins too

    # Ours, beyond the contract.
    default_phone_region: str | None = None  # e.g. "NG": lets people omit +234
    # Kinds of number refused unless named here: premium_rate, shared_cost, satellite,
    # short_code. Emergency numbers are always refused.
    allowed_number_types: NumberTypeList = Field(default_factory=list)
    intron_calls_per_second: int = 5  # seed 000
    intron_management_per_minute: int = 6  # seed 003
    intron_management_per_hour: int = 60  # seed 003
    intron_max_wait: float = 120.0  # longest a request waits for a rate-limit slot
    intron_timeout: float = 15.0  # seconds to wait for Intron's answer (connect: 5)
    intron_direct_calls_per_minute: int = Field(10, ge=1)  # the plan's limit (Free: 10)
    intron_direct_concurrent_calls: int = Field(2, ge=1)  # the plan's limit (Free: 2)
    # The largest audio file the workflow modal takes (mp3 or wav; Slack's file input
    # takes at most 10 MB); kept under `audio/` next to DATABASE_PATH, served at
    # PUBLIC_URL/audio/<unguessable name>.
    audio_max_bytes: int = Field(10_000_000, ge=1_000, le=100_000_000)
    sandbox_callback_delay: float = 2.0  # seconds before the sandbox reports results
    reconcile_after: float = 600.0  # seconds a request may wait for results before we look
    confirm_above: int = Field(25, ge=0)  # a send to more recipients asks to confirm first
    job_lease: float = 30.0  # seconds a worker holds a job before another may take it over
    worker_lanes: str = "calls=8,results=8,slack=16,default=4"  # jobs run at once, per lane
    worker_nice: int = 10  # the worker yields the CPU to the web process, which answers Slack
    # Calling responsibly (bot/core/consent.py): the default daily window in the callee's
    # local time (a workflow may set its own), and at most this many campaign or request
    # calls per number in 24 hours (0: no cap; escalations are exempt).
    calling_hours: str = "08:00-21:00"
    calls_per_day_cap: int = Field(3, ge=0)

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "intron_api_key",
        "intron_direct_api_key",
        "bizphone_api_key",
        "bizphone_base_url",
        "bizphone_caller_id",
        "callback_token",
        "alert_webhook_token",
        mode="before",
    )
    @classmethod
    def _blank_secret_is_unset(cls, value: object) -> object:
        """`SLACK_APP_TOKEN=` (an example line emptied) means unset, not an empty token."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("allowed_user_ids", "allowed_channel_ids", "admin_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("calling_hours")
    @classmethod
    def _check_calling_hours(cls, value: str) -> str:
        from bot.core.consent import CallingHours

        try:
            CallingHours.parse(value)
        except ValueError as exc:
            raise ValueError(f"CALLING_HOURS: {exc}") from None
        return value

    @field_validator("allowed_number_types", mode="before")
    @classmethod
    def _split_number_types(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        known = [kind.value for kind in NumberType]
        for name in value if isinstance(value, list) else ():
            if name not in known:
                never = "; emergency numbers can never be allowed" if name == "emergency" else ""
                raise ValueError(
                    f"ALLOWED_NUMBER_TYPES: {name!r} is not a number type that can be allowed; "
                    f"use one or more of {', '.join(known)}, separated by commas{never}"
                )
        return value

    def missing_for_slack(self) -> list[str]:
        """Each required Slack setting that is not set, or still holds a placeholder such
        as .env.example's, with where to find it."""
        missing = []
        if not _filled(self.slack_bot_token):
            missing.append(
                f"SLACK_BOT_TOKEN{_why(self.slack_bot_token)}: the Bot User OAuth Token "
                "(xoxb-…), on your Slack app's page under OAuth & Permissions, after "
                "installing the app"
            )
        if self.slack_app_token is not None and not _filled(self.slack_app_token):
            missing.append(
                f"SLACK_APP_TOKEN{_why(self.slack_app_token)}: for Socket Mode, an app-level "
                "token (xapp-…) with connections:write, on your Slack app's page under Basic "
                "Information → App-Level Tokens; or remove the line to use SLACK_SIGNING_SECRET "
                "and PUBLIC_URL/slack/events instead"
            )
        elif self.slack_app_token is None and not _filled(self.slack_signing_secret):
            missing.append(
                f"SLACK_SIGNING_SECRET{_why(self.slack_signing_secret)}: on your Slack app's "
                "page under Basic Information → App Credentials (or set SLACK_APP_TOKEN, "
                "xapp-…, to use Socket Mode instead)"
            )
        return missing

    def missing(self) -> list[str]:
        """`missing_for_slack`, and any other secret setting that still holds a placeholder
        (unset, those have working defaults)."""
        missing = self.missing_for_slack()
        if self.intron_api_key is not None and not _filled(self.intron_api_key):
            missing.append(
                f"INTRON_API_KEY{_why(self.intron_api_key)}: your Intron API key; or remove "
                "the line to use the built-in sandbox (no real calls are placed)"
            )
        if self.intron_direct_api_key is not None and not _filled(self.intron_direct_api_key):
            missing.append(
                f"INTRON_DIRECT_API_KEY{_why(self.intron_direct_api_key)}: your key of "
                "Intron's direct robo-call API; or remove the line to leave it off"
            )
        if self.bizphone_api_key is not None and not _filled(self.bizphone_api_key):
            missing.append(
                f"BIZPHONE_API_KEY{_why(self.bizphone_api_key)}: your BizPhone API key; or "
                "remove the line to leave BizPhone off"
            )
        elif self.bizphone_api_key is not None and not self.bizphone_base_url:
            missing.append(
                "BIZPHONE_BASE_URL: BizPhone's API address for your organisation, which "
                "BIZPHONE_API_KEY needs (it has no default); or remove BIZPHONE_API_KEY"
            )
        elif self.bizphone_base_url and is_placeholder(self.bizphone_base_url):
            missing.append(
                "BIZPHONE_BASE_URL (still the example's placeholder): BizPhone's API "
                "address for your organisation"
            )
        if self.callback_token is not None and not _filled(self.callback_token):
            missing.append(
                f"CALLBACK_TOKEN{_why(self.callback_token)}: a long random string of your "
                "own; or remove the line to have one generated and kept in the database"
            )
        if self.alert_webhook_token is not None and not _filled(self.alert_webhook_token):
            missing.append(
                f"ALERT_WEBHOOK_TOKEN{_why(self.alert_webhook_token)}: a long random string "
                "of your own; or remove the line to have one generated and kept in the database"
            )
        return missing

    @property
    def keyed_providers(self) -> list[str]:
        """The providers whose settings are set (BizPhone: its key and its base URL), by
        id, in the order they are offered."""
        keyed = {
            "intron": bool(_secret(self.intron_api_key)),
            "intron-direct": bool(_secret(self.intron_direct_api_key)),
            "bizphone": bool(_secret(self.bizphone_api_key)) and bool(self.bizphone_base_url),
        }
        return [provider for provider, on in keyed.items() if on]

    @property
    def enabled_providers(self) -> list[str]:
        """The providers offered: those with keys; all of them (as sandboxes) in demo mode."""
        return self.keyed_providers or list(PROVIDERS)

    @property
    def has_provider_key(self) -> bool:
        return bool(self.keyed_providers)

    @property
    def uses_sandbox(self) -> bool:
        """True when the sandboxes stand in for the providers: no real call is placed."""
        return self.sandbox or not self.has_provider_key

    @property
    def local_url(self) -> str:
        """Where the web process can be reached from this machine (the worker uses it
        to reach the embedded sandbox)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def lanes(self) -> dict[str, int]:
        """`WORKER_LANES` read: how many jobs of each lane one worker runs at once."""
        lanes = {}
        for part in self.worker_lanes.split(","):
            name, _, count = part.partition("=")
            if name.strip() and count.strip().isdigit() and int(count) > 0:
                lanes[name.strip()] = int(count)
        return lanes


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value().strip() if value is not None else ""


# What an example value looks like rather than a real one: `xoxb-your-bot-token`,
# `your-signing-secret`, `xoxb-...`, `…`, `changeme`, `<token>`, or a bare prefix (`xapp-`).
# Real Slack tokens and secrets, Intron keys and generated tokens never contain these.
PLACEHOLDER = re.compile(
    r"your[-_ ]|\.\.\.|…|change[-_ ]?me|replace[-_ ]?me|<[^>]*>|^x(?:ox[a-z]|app)-$",
    re.IGNORECASE,
)


def is_placeholder(value: str) -> bool:
    """True when `value` is an example's stand-in (such as .env.example's), not a value."""
    return bool(PLACEHOLDER.search(value.strip()))


def _filled(value: SecretStr | None) -> bool:
    """Set to something that is not a placeholder."""
    secret = _secret(value)
    return bool(secret) and not is_placeholder(secret)


def _why(value: SecretStr | None) -> str:
    """How a setting that is not `_filled` is wrong, to follow its name."""
    return " (still the example's placeholder)" if _secret(value) else ""
