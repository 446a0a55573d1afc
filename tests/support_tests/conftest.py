"""Fixtures for the tests of the Slack test support."""

from tests.support.fixtures import fake_slack, module_fake_slack, shared_fake_slack

__all__ = ["fake_slack", "module_fake_slack", "shared_fake_slack"]
