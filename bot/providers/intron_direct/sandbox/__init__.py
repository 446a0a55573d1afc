"""A local stand-in for Intron's direct robo-call API (seed 001): no real calls."""

from bot.providers.intron_direct.sandbox.server import (
    Fault,
    SandboxConfig,
    SandboxState,
    create_sandbox_app,
)

__all__ = ["Fault", "SandboxConfig", "SandboxState", "create_sandbox_app"]
