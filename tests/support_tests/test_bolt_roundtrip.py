"""SlackRequester and FakeSlack around a real Bolt app served on a socket.

The app is a sync Bolt App; its Web API calls and response_url posts go to the fake.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from slack_bolt import Ack, App, Respond
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk import WebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.serving import RunningServer, start_server
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import (
    SlackRequester,
    app_home_opened,
    option,
    plain_text_value,
    slash_command,
    static_select_value,
    url_verification,
)

# The fake and the Bolt server are shared by the module and live in its event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "s3cret"
TOKEN = "xoxb-test"
CALL_VALUES = {
    "phone": {"number": plain_text_value("+442079460000")},
    "voice": {"voice": static_select_value("ada", "Ada")},
}

JsonDict = dict[str, Any]


def build_bolt_app(fake: FakeSlack) -> App:
    """A small Bolt app exercising each kind of request the requester sends."""
    app = App(signing_secret=SECRET, client=WebClient(token=TOKEN, base_url=fake.api_url))

    @app.command("/robocall")
    def command(ack: Ack, respond: Respond, command: JsonDict) -> None:
        ack(f"Dialling {command['text']}")
        respond(text=f"Queued {command['text']}", response_type="ephemeral")

    @app.view("place_call")
    def submitted(ack: Ack, view: JsonDict, client: WebClient) -> None:
        ack()
        values = view["state"]["values"]
        number = values["phone"]["number"]["value"]
        voice = values["voice"]["voice"]["selected_option"]["value"]
        client.chat_postMessage(channel=view["private_metadata"], text=f"{number} as {voice}")

    @app.action("cancel")
    def cancel(ack: Ack, body: JsonDict, client: WebClient) -> None:
        ack()
        channel, ts = body["channel"]["id"], body["message"]["ts"]
        client.chat_update(channel=channel, ts=ts, text=f"Cancelled {body['actions'][0]['value']}")

    @app.options("voice")
    def voices(ack: Ack, payload: JsonDict) -> None:
        ack(options=[option(v) for v in ("ada", "bola") if v.startswith(payload["value"])])

    @app.event("app_home_opened")
    def home(event: JsonDict, client: WebClient) -> None:
        client.views_publish(user_id=event["user"], view={"type": "home", "blocks": []})

    return app


def bolt_asgi(app: App) -> Starlette:
    """Serve a sync Bolt app without blocking the loop that also serves the fake."""

    async def events(request: Request) -> Response:
        bolt_request = to_bolt_request(request, await request.body())
        return to_starlette_response(await asyncio.to_thread(app.dispatch, bolt_request))

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"])])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bolt_server(module_fake_slack: FakeSlack) -> AsyncIterator[RunningServer]:
    # App() calls auth.test synchronously, so build it off the loop serving the fake.
    app = await asyncio.to_thread(build_bolt_app, module_fake_slack)
    server = await start_server(bolt_asgi(app))
    yield server
    await server.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def requester(
    bolt_server: RunningServer, shared_fake_slack: FakeSlack
) -> AsyncIterator[SlackRequester]:
    async with SlackRequester(bolt_server.url, SECRET, fake=shared_fake_slack) as requester:
        yield requester


async def test_command_is_acked_and_responded_to(
    requester: SlackRequester, shared_fake_slack: FakeSlack
) -> None:
    answer = await requester.command("+442079460000")

    assert answer.status_code == 200
    assert answer.text == "Dialling +442079460000"
    response_id = requester.last_response_id
    [response] = await shared_fake_slack.wait_for(lambda f: f.responses(response_id))
    assert response.params == {"text": "Queued +442079460000", "response_type": "ephemeral"}


async def test_view_submission_reaches_the_view_listener(
    requester: SlackRequester, shared_fake_slack: FakeSlack
) -> None:
    answer = await requester.submit_view("place_call", CALL_VALUES, private_metadata="C5")

    assert answer.status_code == 200
    [message] = await shared_fake_slack.wait_for(lambda f: f.messages("C5"))
    assert message.params["text"] == "+442079460000 as ada"


async def test_action_on_a_message(requester: SlackRequester, shared_fake_slack: FakeSlack) -> None:
    answer = await requester.action("cancel", "call-1", channel_id="C1", message_ts="1.2")

    assert answer.status_code == 200
    [update] = await shared_fake_slack.wait_for(lambda f: f.updates("C1", "1.2"))
    assert update.params["text"] == "Cancelled call-1"


async def test_options_load(requester: SlackRequester) -> None:
    answer = await requester.suggest("voice", "bo")

    assert answer.status_code == 200
    assert answer.json() == {"options": [option("bola")]}


async def test_event_is_dispatched(requester: SlackRequester, shared_fake_slack: FakeSlack) -> None:
    answer = await requester.event(app_home_opened("U7"))

    assert answer.status_code == 200
    home = await shared_fake_slack.wait_for(lambda f: f.calls("views.publish"))
    assert home[0].params["user_id"] == "U7"


async def test_url_verification_is_answered(requester: SlackRequester) -> None:
    answer = await requester.post(*url_verification("abc"))

    assert answer.json() == {"challenge": "abc"}


async def test_bad_or_stale_signatures_are_refused(requester: SlackRequester) -> None:
    body, content_type = slash_command("+442079460000")

    stale = await requester.post(body, content_type, timestamp=1_600_000_000)
    forged = await requester.post(body, content_type, headers={"X-Slack-Signature": "v0=00"})

    assert (stale.status_code, forged.status_code) == (401, 401)
