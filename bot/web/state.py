"""What the routes share while the web process runs."""

from __future__ import annotations

from dataclasses import dataclass

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from starlette.requests import Request

from bot.app import Runtime


@dataclass
class WebState:
    runtime: Runtime
    slack: AsyncSlackRequestHandler


def running(request: Request) -> WebState | None:
    """The running app's state, or None while it starts or stops."""
    return request.app.state.web
