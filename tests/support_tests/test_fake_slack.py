"""The fake Slack Web API, driven by slack_sdk's real clients."""

from __future__ import annotations

import asyncio
import json
import types
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import InputBlock, PlainTextInputElement, SectionBlock
from slack_sdk.models.views import View
from slack_sdk.webhook import WebhookClient

from tests.support.fake_slack import FakeSlack, RateLimit

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

# One fake serves the whole module (a server costs ~0.2 s to stop); it lives in the
# module's event loop, so the tests must run there too.
pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "xoxb-test"
BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Calling *+44 20 7946 0000*"}}
]


@pytest.fixture
def fake(shared_fake_slack: FakeSlack) -> FakeSlack:
    """The module's fake Slack, reset before each test."""
    return shared_fake_slack


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    """slack_sdk's AsyncWebClient aimed at the fake; it needs aiohttp, so skip without it."""
    pytest.importorskip("aiohttp", reason="slack_sdk's AsyncWebClient needs aiohttp")
    from slack_sdk.web.async_client import AsyncWebClient

    return AsyncWebClient(token=TOKEN, base_url=fake.api_url)


class FakeClock:
    """A clock the test moves by hand, so rate-limit windows need no sleeping."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ---- messages


async def test_post_message_records_blocks_as_dicts(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    answer = await client.chat_postMessage(channel="C1", text="calling", blocks=BLOCKS)

    assert answer["ok"] is True
    assert answer["channel"] == "C1"
    assert answer["ts"] == "1700000000.000100"
    assert answer["message"]["blocks"] == BLOCKS
    [call] = fake.messages("C1")
    assert call.params["blocks"] == BLOCKS
    assert call.token == TOKEN
    assert "Calling *+44 20 7946 0000*" in call.all_text()


async def test_message_ts_are_unique_and_increasing(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    stamps = [(await client.chat_postMessage(channel="C1", text=str(i)))["ts"] for i in range(3)]

    assert len(set(stamps)) == 3
    assert stamps == sorted(stamps, key=float)


async def test_thread_replies_and_updates(fake: FakeSlack, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel="C1", text="call queued")
    reply = await client.chat_postMessage(channel="C1", text="ringing", thread_ts=parent["ts"])
    updated = await client.chat_update(channel="C1", ts=parent["ts"], text="call answered")

    assert reply["message"]["thread_ts"] == parent["ts"]
    assert [c.params["text"] for c in fake.thread("C1", parent["ts"])] == ["ringing"]
    assert updated["ts"] == parent["ts"]
    assert updated["text"] == "call answered"
    assert [c.params["text"] for c in fake.updates("C1", parent["ts"])] == ["call answered"]


async def test_post_ephemeral_answers_message_ts(fake: FakeSlack, client: AsyncWebClient) -> None:
    answer = await client.chat_postEphemeral(channel="C1", user="U7", text="only you")

    assert answer["message_ts"]
    assert [c.params["text"] for c in fake.ephemerals("U7")] == ["only you"]


async def test_post_message_without_text_is_refused_like_slack(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    with pytest.raises(SlackApiError) as raised:
        await client.api_call("chat.postMessage", json={"channel": "C1"})

    assert raised.value.response["error"] == "no_text"
    assert fake.calls() == []
    assert [r.error for r in fake.rejections("chat.postMessage")] == ["no_text"]


# ---- views


def modal() -> View:
    return View(
        type="modal",
        callback_id="place_call",
        title="Place a call",
        submit="Call",
        private_metadata="C1",
        blocks=[
            SectionBlock(text="Who should we call?"),
            InputBlock(
                block_id="phone",
                label="Phone number",
                element=PlainTextInputElement(action_id="number"),
            ),
        ],
    )


async def test_views_open_echoes_the_view_with_an_id(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    answer = await client.views_open(trigger_id="123.456.abc", view=modal())

    view = answer["view"]
    assert view["id"].startswith("V")
    assert view["hash"]
    assert view["callback_id"] == "place_call"
    assert view["private_metadata"] == "C1"
    assert view["state"] == {"values": {}}
    sent = fake.last_view()
    assert sent["blocks"][1]["element"]["action_id"] == "number"
    assert sent == modal().to_dict()


async def test_views_update_keeps_the_id_and_checks_the_hash(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    opened = (await client.views_open(trigger_id="t", view=modal()))["view"]
    updated = await client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal())

    assert updated["view"]["id"] == opened["id"]
    assert updated["view"]["hash"] != opened["hash"]
    with pytest.raises(SlackApiError) as raised:
        await client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal())
    assert raised.value.response["error"] == "hash_conflict"


async def test_views_publish_keeps_one_home_view_per_user(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    home = {"type": "home", "blocks": BLOCKS}
    first = await client.views_publish(user_id="U1", view=home)
    again = await client.views_publish(user_id="U1", view={"type": "home", "blocks": []})
    other = await client.views_publish(user_id="U2", view=home)

    assert first["view"]["id"] == again["view"]["id"] != other["view"]["id"]
    assert fake.published_home("U1")["blocks"] == []
    assert fake.published_home("U2")["blocks"] == BLOCKS
    with pytest.raises(AssertionError, match="no home tab"):
        fake.published_home("U3")


# ---- other methods, auth


async def test_auth_test_and_lookups(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.users["U5"] = {"tz": "Africa/Lagos", "tz_offset": 3600}

    auth = await client.auth_test()
    user = await client.users_info(user="U5")
    joined = await client.conversations_join(channel="C9")
    link = await client.chat_getPermalink(channel="C9", message_ts="1700000000.000100")
    other = await client.reactions_add(channel="C9", timestamp="1", name="phone")

    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == ("UBOT", "BBOT", "T1")
    assert user["user"]["id"] == "U5"
    assert user["user"]["tz"] == "Africa/Lagos"
    assert joined["channel"]["is_member"] is True
    assert link["permalink"].endswith("/archives/C9/p1700000000000100")
    assert other["ok"] is True
    # The async client sends these as GET or POST query strings; both must be read.
    assert fake.calls("users.info")[0].params == {"user": "U5"}
    assert fake.calls("conversations.join")[0].params == {"channel": "C9"}


async def test_missing_token_is_not_authed(fake: FakeSlack, client: AsyncWebClient) -> None:
    client.token = None

    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C1", text="hi")

    assert raised.value.response["error"] == "not_authed"
    assert fake.messages() == []


async def test_only_configured_tokens_are_accepted(fake: FakeSlack) -> None:
    fake.tokens = {"xoxb-right"}
    url = f"{fake.api_url}auth.test"
    async with httpx.AsyncClient(trust_env=False) as http:
        wrong = await http.post(url, headers={"Authorization": "Bearer xoxb-wrong"})
        right = await http.post(url, data={"token": "xoxb-right"})

    assert wrong.json() == {"ok": False, "error": "invalid_auth"}
    assert right.json()["ok"] is True
    assert fake.calls()[0].token == "xoxb-right"
    assert "token" not in fake.calls()[0].params


# ---- form bodies: the sync client and hand-made requests


async def test_form_body_json_fields_are_decoded(fake: FakeSlack) -> None:
    form = {"channel": "C1", "text": "hi", "blocks": json.dumps(BLOCKS), "token": TOKEN}
    async with httpx.AsyncClient(trust_env=False) as http:
        answer = await http.post(f"{fake.api_url}chat.postMessage", data=form)

    assert answer.json()["ok"] is True
    assert fake.messages("C1")[0].params == {"channel": "C1", "text": "hi", "blocks": BLOCKS}


async def test_sync_web_client_json_and_form_calls(fake: FakeSlack) -> None:
    client = WebClient(token=TOKEN, base_url=fake.api_url)

    def talk() -> None:
        client.chat_postMessage(channel="C1", text="json body", blocks=BLOCKS)
        client.api_call("chat.postMessage", data={"channel": "C2", "blocks": json.dumps(BLOCKS)})
        client.conversations_join(channel="C3")

    # The sync client blocks, and the fake serves from this test's event loop.
    await asyncio.to_thread(talk)

    assert fake.messages("C1")[0].params["blocks"] == BLOCKS
    assert fake.messages("C2")[0].params["blocks"] == BLOCKS
    assert fake.calls("conversations.join")[0].params == {"channel": "C3"}


async def test_response_url_records_json_bodies(fake: FakeSlack) -> None:
    webhook = WebhookClient(fake.response_url("cmd-1"))

    answer = await asyncio.to_thread(
        webhook.send, text="queued", blocks=BLOCKS, response_type="ephemeral"
    )

    assert answer.status_code == 200
    [response] = fake.responses("cmd-1")
    assert response.method == "response_url"
    assert response.params["blocks"] == BLOCKS
    assert response.params["response_type"] == "ephemeral"
    assert fake.responses("other") == []


# ---- faults and limits


async def test_fail_next_429_raises_with_retry_after(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.fail_next("chat.postMessage", status=429, retry_after=3)

    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C1", text="first")
    await client.chat_postMessage(channel="C1", text="second")

    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "3"
    assert raised.value.response["error"] == "ratelimited"
    assert [c.params["text"] for c in fake.messages()] == ["second"]
    [rejected] = fake.rejections()
    assert (rejected.status, rejected.retry_after, rejected.params["text"]) == (429, 3, "first")


async def test_fail_next_429_is_retried_by_slack_sdk_handler(
    fake: FakeSlack, client: AsyncWebClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slack_sdk.http_retry import builtin_async_handlers

    # The handler sleeps int(Retry-After) + random() seconds; no jitter keeps this fast.
    monkeypatch.setattr(builtin_async_handlers, "random", types.SimpleNamespace(random=lambda: 0))
    handler = builtin_async_handlers.AsyncRateLimitErrorRetryHandler(max_retry_count=2)
    client.retry_handlers.append(handler)
    fake.fail_next("chat.postMessage", status=429, times=2, retry_after=0)

    answer = await client.chat_postMessage(channel="C1", text="persistent")

    assert answer["ok"] is True
    assert len(fake.rejections("chat.postMessage")) == 2
    assert len(fake.messages("C1")) == 1


async def test_fail_next_500_and_slack_level_errors(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.fail_next("*", status=500)
    fake.fail_next("views.open", status=200, error="expired_trigger_id")

    with pytest.raises(SlackApiError) as server_error:
        await client.auth_test()
    with pytest.raises(SlackApiError) as slack_error:
        await client.views_open(trigger_id="t", view=modal())

    assert server_error.value.response.status_code == 500
    assert slack_error.value.response["error"] == "expired_trigger_id"
    assert fake.calls() == []
    assert (await client.auth_test())["ok"] is True


async def test_per_channel_rate_limit(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.clock = clock = FakeClock()
    fake.set_rate_limit(RateLimit(burst=2, per_seconds=1.5))
    for text in ("one", "two"):
        await client.chat_postMessage(channel="C1", text=text)

    with pytest.raises(SlackApiError) as raised:
        await client.chat_update(channel="C1", ts="1700000000.000100", text="three")
    await client.chat_postMessage(channel="C2", text="other channel")
    clock.advance(1.5)
    await client.chat_postMessage(channel="C1", text="after the window")

    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "2"
    [rejected] = fake.rejections()
    assert (rejected.method, rejected.retry_after) == ("chat.update", 2)
    assert [c.params["text"] for c in fake.messages("C1")] == ["one", "two", "after the window"]


async def test_rate_limit_is_off_by_default(fake: FakeSlack, client: AsyncWebClient) -> None:
    await asyncio.gather(*(client.chat_postMessage(channel="C1", text=str(i)) for i in range(20)))

    assert len(fake.messages("C1")) == 20
    assert fake.rejections() == []


async def test_latency_delays_answers(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.set_latency("auth.test", 0.2)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await client.auth_test()
    # The abandoned request still lands; wait so it is not recorded in the next test.
    await fake.wait_for(lambda f: f.calls("auth.test"))


# ---- waiting


async def test_wait_for_returns_the_predicate_value(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="C1", text="done")

    task = asyncio.create_task(later())
    found = await fake.wait_for(lambda f: f.messages("C1"), timeout=2.0)
    await task

    assert found[0].params["text"] == "done"


async def test_wait_for_timeout_lists_what_was_recorded(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    await client.chat_postMessage(channel="C2", text="wrong channel")

    with pytest.raises(AssertionError, match=r"(?s)within 0.05s.*chat.postMessage.*C2"):
        await fake.wait_for(lambda f: f.messages("C1"), timeout=0.05)
