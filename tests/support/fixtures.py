"""Pytest fixtures for the Slack test support.

Re-export them from a conftest.py: ``from tests.support.fixtures import fake_slack``.

Stopping a uvicorn server costs about 0.2 s (its 0.1 s tick plus a fixed 0.1 s grace),
so a module with many tests can share one fake: use `shared_fake_slack`, and run the
module's tests in the module's event loop, where the shared server lives::

    pytestmark = pytest.mark.asyncio(loop_scope="module")
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.support.fake_slack import FakeSlack, run_fake_slack


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A running fake Slack Web API, fresh for each test."""
    async with run_fake_slack() as fake:
        yield fake


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_fake_slack() -> AsyncIterator[FakeSlack]:
    """One running fake for the whole test module (see the module docstring)."""
    async with run_fake_slack() as fake:
        yield fake


@pytest.fixture
def shared_fake_slack(module_fake_slack: FakeSlack) -> FakeSlack:
    """The module's fake, reset to as new before each test."""
    module_fake_slack.reset()
    return module_fake_slack
