"""Configuration from environment variables (and a `.env` file), as fixed by DESIGN.md."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.input.phones import NumberType

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
    sandbox: bool = False  # SANDBOX=1: the sandboxes even though a key is set

    # Serving (contract)
    public_url: str = "http://localhost:3000"
    callback_token: SecretStr | None = None
    database_path: str = "data/robocall.db"
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
    sandbox_callback_delay: float = 2.0  # seconds before the sandbox reports results
    reconcile_after: float = 600.0  # seconds a request may wait for results before we look
    job_lease: float = 30.0  # seconds a worker holds a job before another may take it over
    worker_lanes: str = "calls=8,results=8,slack=16,default=4"  # jobs run at once, per lane
    worker_nice: int = 10  # the worker yields the CPU to the web process, which answers Slack

    @field_validator("allowed_user_ids", "allowed_channel_ids", "admin_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
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
        """Each required Slack setting that is not set, with where to find it."""
        missing = []
        if not _secret(self.slack_bot_token):
            missing.append(
                "SLACK_BOT_TOKEN: the Bot User OAuth Token (xoxb-…), on your Slack "
                "app's page under OAuth & Permissions, after installing the app"
            )
        if not _secret(self.slack_app_token) and not _secret(self.slack_signing_secret):
            missing.append(
                "SLACK_SIGNING_SECRET: on your Slack app's page under Basic "
                "Information → App Credentials (or set SLACK_APP_TOKEN, xapp-…, "
                "to use Socket Mode instead)"
            )
        return missing

    @property
    def has_provider_key(self) -> bool:
        return bool(_secret(self.intron_api_key))

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
