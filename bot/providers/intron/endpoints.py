"""Where each Intron voicebot operation lives: the one place for paths and rate-limit groups.

Seeds 000/002 document only `POST /call`; seed 003 names the workflow operations
but not their paths. The paths below are what Intron's public docs show (see
DESIGN.md). Each can be overridden with an environment variable
`INTRON_PATH_<NAME>` (e.g. `INTRON_PATH_WORKFLOW_CALLS=/workflow/{workflow_id}/calls`).
The sandbox serves the same paths, so an override moves both.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.providers.http import Endpoint


class LimitGroup(StrEnum):
    """Intron's separate quotas: 5/s for calls (seed 000); 6/min and 60/h for management (003)."""

    CALLS = "calls"
    MANAGEMENT = "management"


class IntronPaths(BaseSettings):
    """Path templates under INTRON_BASE_URL; `{name}` parts are filled per request."""

    model_config = SettingsConfigDict(env_prefix="INTRON_PATH_", env_file=".env", extra="ignore")

    call: str = "/call"
    status: str = "/status/{call_id}"
    workflows: str = "/workflows"
    workflow: str = "/workflows/{workflow_id}"
    workflow_requests: str = "/workflows/{workflow_id}/requests"
    workflow_calls: str = "/workflows/{workflow_id}/calls"


def endpoints(paths: IntronPaths) -> dict[str, Endpoint]:
    """Every operation of the workflow API, keyed by name."""
    calls, management = LimitGroup.CALLS, LimitGroup.MANAGEMENT
    table = [
        Endpoint("place_calls", "POST", paths.call, calls, resend_safe=False),
        Endpoint("call_status", "GET", paths.status, calls, resend_safe=True),
        Endpoint("create_workflow", "POST", paths.workflows, management, resend_safe=False),
        Endpoint("list_workflows", "GET", paths.workflows, management, resend_safe=True),
        Endpoint("get_workflow", "GET", paths.workflow, management, resend_safe=True),
        Endpoint("update_workflow", "PUT", paths.workflow, management, resend_safe=True),
        Endpoint("delete_workflow", "DELETE", paths.workflow, management, resend_safe=True),
        Endpoint("list_workflow_requests", "GET", paths.workflow_requests, management, True),
        Endpoint("list_workflow_calls", "GET", paths.workflow_calls, management, True),
    ]
    return {endpoint.name: endpoint for endpoint in table}
