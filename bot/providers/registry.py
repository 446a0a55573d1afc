"""Which providers are enabled, and how each is opened (the only module that knows them all).

Each provider whose settings are set is enabled: Intron's workflow API with
`INTRON_API_KEY` (at `INTRON_BASE_URL`), Intron's direct API with
`INTRON_DIRECT_API_KEY` (at `INTRON_DIRECT_BASE_URL`), BizPhone with
`BIZPHONE_API_KEY` and `BIZPHONE_BASE_URL`. With no provider key at all (demo
mode) all three are enabled, as sandboxes; with `SANDBOX=1` the enabled ones are
sandboxes. The web process serves each sandbox under `/_sandbox/<provider id>` on
its own port (`sandbox_apps`), and both processes reach it there, so a fresh
machine runs everything without an account and without placing real calls.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from pydantic import SecretStr
from starlette.types import ASGIApp

from bot.core.ratelimit import SlotLog, Window
from bot.core.workflow_checks import use_flow_check
from bot.providers import intron_direct
from bot.providers.base import Provider
from bot.providers.bizphone.endpoints import LimitGroup as BizPhoneGroup
from bot.providers.bizphone.models import flow_problems
from bot.providers.bizphone.provider import PROVIDER_ID as BIZPHONE
from bot.providers.bizphone.provider import open_bizphone
from bot.providers.bizphone.sandbox import SandboxConfig as BizPhoneSandboxConfig
from bot.providers.bizphone.sandbox import create_sandbox_app as bizphone_sandbox
from bot.providers.intron.client import IntronClient
from bot.providers.intron.endpoints import IntronPaths, LimitGroup
from bot.providers.intron.provider import IntronProvider
from bot.providers.intron.sandbox import SandboxConfig, create_sandbox_app
from bot.providers.intron_direct.client import CALL_RATE
from bot.providers.intron_direct.endpoints import LimitGroup as DirectGroup
from bot.providers.intron_direct.sandbox import SandboxConfig as DirectSandboxConfig
from bot.providers.intron_direct.sandbox import create_sandbox_app as direct_sandbox
from bot.settings import Settings

INTRON = "intron"
INTRON_DIRECT = intron_direct.PROVIDER_ID

SANDBOX_PREFIX = "/_sandbox/intron"
SANDBOX_PREFIXES = {
    INTRON: SANDBOX_PREFIX,
    INTRON_DIRECT: "/_sandbox/intron-direct",
    BIZPHONE: "/_sandbox/bizphone",
}

SlotLogs = Callable[[str], SlotLog]


def sandbox_apps(settings: Settings, sandbox_key: str) -> dict[str, ASGIApp]:
    """The sandboxes the web process serves (mount path → app); none with a real key
    (unless `SANDBOX=1`). Each accepts only `sandbox_key`."""
    if not settings.uses_sandbox:
        return {}
    delay = settings.sandbox_callback_delay
    make = {
        INTRON: lambda: create_sandbox_app(
            SandboxConfig(callback_delay=delay, api_key=sandbox_key)
        ),
        INTRON_DIRECT: lambda: direct_sandbox(
            DirectSandboxConfig(
                event_delay=delay,
                calls_per_minute=settings.intron_direct_calls_per_minute,
                concurrent_calls=settings.intron_direct_concurrent_calls,
                api_key=sandbox_key,
            )
        ),
        BIZPHONE: lambda: bizphone_sandbox(
            BizPhoneSandboxConfig(call_seconds=delay, api_key=sandbox_key)
        ),
    }
    return {SANDBOX_PREFIXES[p]: make[p]() for p in settings.enabled_providers}


def callback_url(settings: Settings, provider_id: str, callback_token: str) -> str:
    """Where a provider posts its results to this app."""
    return f"{settings.public_url.rstrip('/')}/callbacks/{provider_id}/{callback_token}"


def open_providers(
    settings: Settings, *, slot_logs: SlotLogs, callback_token: str, sandbox_key: str
) -> dict[str, Provider]:
    """Every enabled provider, by id, in the order they are offered (close them with
    `aclose`)."""
    return {
        provider_id: _OPEN[provider_id](
            settings, slot_logs, callback_url(settings, provider_id, callback_token), sandbox_key
        )
        for provider_id in settings.enabled_providers
    }


def _where(
    settings: Settings, provider_id: str, sandbox_key: str, key: SecretStr | None, base_url: str
) -> tuple[str, str]:
    """The key and base URL a provider is reached with: its sandbox's, or its own."""
    if settings.uses_sandbox:
        return sandbox_key, settings.local_url + SANDBOX_PREFIXES[provider_id]
    assert key is not None
    return key.get_secret_value(), base_url


def _open_intron(
    settings: Settings, slot_logs: SlotLogs, callback: str, sandbox_key: str
) -> Provider:
    key, base_url = _where(
        settings, INTRON, sandbox_key, settings.intron_api_key, settings.intron_base_url
    )
    client = IntronClient(
        key,
        base_url,
        paths=IntronPaths(),
        call_windows=(Window(settings.intron_calls_per_second, 1.0),),
        management_windows=(
            Window(settings.intron_management_per_minute, 60.0),
            Window(settings.intron_management_per_hour, 3600.0),
        ),
        slot_logs={group: slot_logs(f"intron:{group}") for group in LimitGroup},
        max_wait=settings.intron_max_wait,
        timeout=httpx.Timeout(settings.intron_timeout, connect=5.0),
    )
    return IntronProvider(client, callback_url=callback, sandbox=settings.uses_sandbox)


def _open_intron_direct(
    settings: Settings, slot_logs: SlotLogs, callback: str, sandbox_key: str
) -> Provider:
    key, base_url = _where(
        settings,
        INTRON_DIRECT,
        sandbox_key,
        settings.intron_direct_api_key,
        settings.intron_direct_base_url,
    )
    groups = [*DirectGroup, CALL_RATE]
    return intron_direct.open_intron_direct(
        key,
        base_url=base_url,
        callback_url=callback,
        calls_per_minute=settings.intron_direct_calls_per_minute,
        concurrent_calls=settings.intron_direct_concurrent_calls,
        max_wait=settings.intron_max_wait,
        sandbox=settings.uses_sandbox,
        # A batch carries up to the plan's calls per minute (its default `max_batch`):
        # each event is matched to its request by the call id the batch answer gave.
        slot_logs={str(group): slot_logs(f"{INTRON_DIRECT}:{group}") for group in groups},
    )


def _open_bizphone(
    settings: Settings, slot_logs: SlotLogs, callback: str, sandbox_key: str
) -> Provider:
    # BizPhone never calls back: its results are polled (`callback` is not used).
    key, base_url = _where(
        settings,
        BIZPHONE,
        sandbox_key,
        settings.bizphone_api_key,
        settings.bizphone_base_url or "",
    )
    return open_bizphone(
        api_key=key,
        base_url=base_url,
        caller_id=settings.bizphone_caller_id,
        enable_call_recording=settings.bizphone_call_recording,
        slot_logs={group: slot_logs(f"{BIZPHONE}:{group}") for group in BizPhoneGroup},
        max_wait=settings.intron_max_wait,
        timeout=settings.intron_timeout,
        sandbox=settings.uses_sandbox,
    )


_OPEN = {INTRON: _open_intron, INTRON_DIRECT: _open_intron_direct, BIZPHONE: _open_bizphone}

# The core checks app-side workflows without importing a provider package: BizPhone's
# call-flow rules are handed to it here, where the providers are known.
use_flow_check(BIZPHONE, flow_problems)
