"""WORKFLOWS_FILE's refused workflows, shown to admins in Slack, not only logged: the Home
tab and `/robocall workflows` name each refused workflow, the field, the value written
there and why; each listed workflow is marked with its provider. Others see neither.

The app runs with Intron direct and BizPhone enabled against their sandboxes over real
sockets, signed Slack requests in, the fake Slack Web API recording what comes out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.input.workflows_file import Refusal, load_workflows_file
from bot.providers.bizphone import sandbox as bizphone_sandbox
from bot.providers.intron_direct import sandbox as direct_sandbox
from bot.serving import start_server
from bot.slack.home.views import home_view
from bot.slack.workflows.views import workflows_list
from tests.harness import Harness, assert_valid_blocks, assert_valid_view
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import app_home_opened
from tests.test_app_workflows import WORKFLOWS_YAML

ADMIN, OTHER = "UADMIN", "UOTHER"
# One more refused workflow, whose name would ping the channel if it were not escaped.
HOSTILE = """  - name: "<!channel> ping"
    provider: bizphone
    message: Hello
    pitch: 10
"""
FILE = WORKFLOWS_YAML + HOSTILE


@pytest.fixture
async def app(tmp_path: Path, fake_slack: FakeSlack) -> AsyncIterator[Harness]:
    direct = await start_server(direct_sandbox.create_sandbox_app())
    biz = await start_server(bizphone_sandbox.create_sandbox_app())
    path = tmp_path / "workflows.yaml"
    path.write_text(FILE)
    harness = Harness(
        tmp_path,
        fake_slack,
        None,
        overrides={
            "intron_direct_api_key": "test-direct-key",
            "intron_direct_base_url": direct.url,
            "bizphone_api_key": "test-bizphone-key",
            "bizphone_base_url": biz.url,
            "workflows_file": str(path),
            "admin_user_ids": [ADMIN],
        },
    )
    await harness.start(wait_for_workflows=False)
    yield harness
    await harness.stop()
    await direct.stop()
    await biz.stop()


# ---------------------------------------------------------------- the refusals, in parts


def test_each_refusal_names_workflow_field_value_and_why(tmp_path: Path) -> None:
    path = tmp_path / "workflows.yaml"
    path.write_text(FILE)
    _, refusals = load_workflows_file(path, ["intron-direct", "bizphone"])
    parts = [(r.workflow, r.field, r.value) for r in refusals]
    assert parts == [
        ("Bad digit", "call_flow.steps[0].branches[1].digit", "12"),
        ("Too many retries", "retry_count", "4"),
        ("Nowhere", "call_flow.steps[0].destination", "1000"),
        ("Unknown provider", "provider", "twilio"),
        ("<!channel> ping", "pitch", "10"),
    ]
    assert refusals[0].why == "digit '12' is not one keypad key: 0-9, * or #"
    # Still the line that is logged, word for word.
    assert refusals[0] == (
        "workflow 'Bad digit': call_flow.steps[0].branches[1].digit: "
        "digit '12' is not one keypad key: 0-9, * or #"
    )


def test_a_file_that_cannot_be_read_is_one_refusal_of_the_file(tmp_path: Path) -> None:
    _, [refusal] = load_workflows_file(tmp_path / "missing.yaml", ["bizphone"])
    assert isinstance(refusal, Refusal)
    assert (refusal.workflow, refusal.field, refusal.value) == (None, "", None)
    assert "cannot be read" in refusal.why
    [block] = workflows_list(
        [],
        page=1,
        calls_back_here={},
        can_manage=True,
        fetched_at=None,
        sandbox=False,
        refused=[refusal],
    ).blocks[1:2]
    assert "missing.yaml: cannot be read" in json.dumps(block, ensure_ascii=False)


def test_at_most_ten_are_listed_and_the_rest_counted() -> None:
    many = [
        Refusal(
            f"workflow 'W{i}': pitch: bad", workflow=f"W{i}", field="pitch", value="10", why="bad"
        )
        for i in range(13)
    ]
    view = home_view(
        [],
        [],
        voice_of={},
        calls_back_here={},
        can_manage=True,
        sandbox=False,
        refused=many,
    )
    assert_valid_view(view.to_dict())
    text = json.dumps(view.to_dict(), ensure_ascii=False)
    assert "*W9*" in text and "*W10*" not in text and "and 3 more" in text


# ---------------------------------------------------------------- in Slack


def refused_text(blocks: list[dict]) -> str:
    return json.dumps(
        [b for b in blocks if b.get("block_id") == "workflows_refused"], ensure_ascii=False
    )


async def test_admins_see_the_refused_workflows_in_the_workflows_list(app: Harness) -> None:
    assert app.slack is not None
    assert len(app.running.workflows.file_refusals) == 5  # and the app started
    answer = await app.slack.command("workflows", user_id=ADMIN)
    blocks = answer.json()["blocks"]
    assert_valid_blocks(blocks)
    shown = refused_text(blocks)
    assert "5 refusals at start" in shown
    assert "*Bad digit*: `call_flow.steps[0].branches[1].digit` is `12`" in shown
    assert "digit '12' is not one keypad key" in shown
    assert "*Too many retries*: `retry_count` is `4`" in shown
    assert "*Unknown provider*: `provider` is `twilio`" in shown
    # Escaped: shown as written, never a channel ping.
    assert "&lt;!channel&gt; ping" in shown and "<!channel>" not in json.dumps(
        blocks, ensure_ascii=False
    )
    # The valid ones are listed, each with its provider.
    listed = json.dumps(blocks, ensure_ascii=False)
    assert "*Payment reminder* · BizPhone" in listed
    assert "*Delivery notice* · Intron (direct)" in listed

    others = (await app.slack.command("workflows", user_id=OTHER)).json()["blocks"]
    assert refused_text(others) == "[]" and "Bad digit" not in json.dumps(
        others, ensure_ascii=False
    )
    assert "*Payment reminder* · BizPhone" in json.dumps(others, ensure_ascii=False)


async def test_admins_see_the_refused_workflows_in_the_home_tab(app: Harness) -> None:
    assert app.slack is not None
    for user in (ADMIN, OTHER):
        await app.slack.event(app_home_opened(user))
    published = await app.fake.wait_for(
        lambda f: (calls := f.calls("views.publish")) and len(calls) >= 2 and calls
    )
    home = {c.params["user_id"]: c.params["view"] for c in published}
    for view in home.values():
        assert_valid_view(view)
        text = json.dumps(view, ensure_ascii=False)
        # Each workflow marked with its provider, for everyone.
        assert "*Payment reminder* · BizPhone" in text
        assert "*Recorded notice* · Intron (direct)" in text
    admin = refused_text(home[ADMIN]["blocks"])
    assert "*Nowhere*: `call_flow.steps[0].destination` is `1000`" in admin
    assert "neither an E.164 number" in admin and "5 refusals at start" in admin
    assert refused_text(home[OTHER]["blocks"]) == "[]"
    assert "Nowhere" not in json.dumps(home[OTHER], ensure_ascii=False)
