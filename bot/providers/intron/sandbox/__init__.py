"""A local Intron-compatible server, so everything runs without placing real calls."""

from bot.providers.intron.sandbox.server import (
    Chaos,
    Fault,
    SandboxConfig,
    SandboxState,
    create_sandbox_app,
)

__all__ = ["Chaos", "Fault", "SandboxConfig", "SandboxState", "create_sandbox_app"]
