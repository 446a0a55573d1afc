"""A local BizPhone-compatible server, so everything runs without placing real calls."""

from bot.providers.bizphone.sandbox.server import (
    Fault,
    SandboxConfig,
    SandboxState,
    create_sandbox_app,
)

__all__ = ["Fault", "SandboxConfig", "SandboxState", "create_sandbox_app"]
