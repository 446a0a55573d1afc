"""Signed requests shaped as Slack sends them to an app: commands, interactions, events.

Body builders return ``(body_bytes, content_type)``; `sign` makes the v0 signature
headers; `SlackRequester` does both and POSTs to the app's ``/slack/events``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlencode

import httpx

if TYPE_CHECKING:
    from tests.support.fake_slack import FakeSlack

JsonDict = dict[str, Any]
Body = tuple[bytes, str]

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
VERIFICATION_TOKEN = "fake-verification-token"
# Port 9 (discard) on loopback: an app that answers a request built without a real
# response_url gets a refused connection instead of reaching hooks.slack.com.
UNROUTED_RESPONSE_URL = "http://127.0.0.1:9/response/unset"
BASE_TS = 1_700_000_000

_trigger_seq = itertools.count(1)
_event_seq = itertools.count(1)


# ---- signing


def sign(
    signing_secret: str,
    body: bytes,
    timestamp: int | None = None,
    *,
    content_type: str | None = None,
) -> dict[str, str]:
    """Headers Slack sends with `body`: timestamp, v0 signature and content type.

    The signature is ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` keyed by the
    signing secret. `timestamp` defaults to now; pass an old one to test replay rejection.
    `content_type` defaults to JSON for bodies that look like JSON, else form-encoded.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    base = b"v0:" + str(ts).encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": content_type or _guess_content_type(body),
    }


def _guess_content_type(body: bytes) -> str:
    return JSON if body.lstrip().startswith(b"{") else FORM


# ---- ids


def new_trigger_id() -> str:
    """A fresh trigger id in Slack's ``<digits>.<digits>.<hex>`` shape."""
    return f"{BASE_TS}{next(_trigger_seq):04d}.{BASE_TS}.{secrets.token_hex(16)}"


def new_event_id() -> str:
    """A fresh Events API event id (``Ev…``)."""
    return f"Ev{next(_event_seq):08d}{secrets.token_hex(3).upper()}"


# ---- view state values (the inner {action_id: {...}} entries of view.state.values)


def option(value: str, text: str | None = None) -> JsonDict:
    """A select option object."""
    return {"text": {"type": "plain_text", "text": text or value, "emoji": True}, "value": value}


def plain_text_value(value: str | None) -> JsonDict:
    """State of a plain_text_input (None: left empty, as Slack sends it)."""
    return {"type": "plain_text_input", "value": value}


def static_select_value(value: str | None, text: str | None = None) -> JsonDict:
    """State of a static_select (None: nothing selected)."""
    selected = None if value is None else option(value, text)
    return {"type": "static_select", "selected_option": selected}


def external_select_value(value: str | None, text: str | None = None) -> JsonDict:
    """State of an external_select (options loaded by block_suggestion)."""
    selected = None if value is None else option(value, text)
    return {"type": "external_select", "selected_option": selected}


def radio_value(value: str | None, text: str | None = None) -> JsonDict:
    """State of radio_buttons."""
    selected = None if value is None else option(value, text)
    return {"type": "radio_buttons", "selected_option": selected}


def checkboxes_value(values: list[str]) -> JsonDict:
    """State of checkboxes with `values` ticked."""
    return {"type": "checkboxes", "selected_options": [option(v) for v in values]}


def conversation_value(channel_id: str | None) -> JsonDict:
    """State of a conversations_select."""
    return {"type": "conversations_select", "selected_conversation": channel_id}


def channel_value(channel_id: str | None) -> JsonDict:
    """State of a channels_select."""
    return {"type": "channels_select", "selected_channel": channel_id}


def user_value(user_id: str | None) -> JsonDict:
    """State of a users_select."""
    return {"type": "users_select", "selected_user": user_id}


# ---- common payload parts


def _user(user_id: str, team_id: str) -> JsonDict:
    name = f"user-{user_id.lower()}"
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def _team(team_id: str, team_domain: str) -> JsonDict:
    return {"id": team_id, "domain": team_domain}


def _payload_body(payload: JsonDict) -> Body:
    """Interactivity requests are a form with one field, ``payload``, holding JSON."""
    return urlencode({"payload": json.dumps(payload)}).encode(), FORM


def modal_view(
    callback_id: str,
    *,
    values: Mapping[str, Mapping[str, JsonDict]] | None = None,
    private_metadata: str = "",
    view_id: str = "VFAKE0001",
    view_type: str = "modal",
    blocks: list[JsonDict] | None = None,
    title: str = "Robocall",
    external_id: str = "",
    view_hash: str = f"{BASE_TS}.fakehash",
    root_view_id: str | None = None,
    previous_view_id: str | None = None,
    team_id: str = "T1",
    api_app_id: str = "A1",
    bot_id: str = "BBOT",
) -> JsonDict:
    """A view as Slack includes it in interaction payloads (with its state)."""
    return {
        "id": view_id,
        "team_id": team_id,
        "type": view_type,
        "blocks": blocks or [],
        "private_metadata": private_metadata,
        "callback_id": callback_id,
        "state": {"values": {k: dict(v) for k, v in (values or {}).items()}},
        "hash": view_hash,
        "title": {"type": "plain_text", "text": title, "emoji": True},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None,
        "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
        "previous_view_id": previous_view_id,
        "root_view_id": root_view_id or view_id,
        "app_id": api_app_id,
        "external_id": external_id,
        "app_installed_team_id": team_id,
        "bot_id": bot_id,
    }


def _interaction(
    kind: str, *, user_id: str, team_id: str, team_domain: str, api_app_id: str
) -> JsonDict:
    return {
        "type": kind,
        "team": _team(team_id, team_domain),
        "user": _user(user_id, team_id),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "enterprise": None,
        "is_enterprise_install": False,
    }


def _container(view: JsonDict | None, channel_id: str | None, message_ts: str | None) -> JsonDict:
    """Where the interaction happened: a view (modal, home tab) or a message."""
    if view is not None:
        return {"container": {"type": "view", "view_id": view.get("id")}, "view": view}
    if channel_id is None and message_ts is None:
        return {"container": {}}
    return {
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "channel": {"id": channel_id, "name": f"channel-{(channel_id or '').lower()}"},
    }


# ---- body builders


def slash_command(
    text: str,
    *,
    command: str = "/robocall",
    user_id: str = "U1",
    channel_id: str = "C1",
    team_id: str = "T1",
    user_name: str | None = None,
    channel_name: str | None = None,
    team_domain: str = "fake-workspace",
    trigger_id: str | None = None,
    response_url: str | None = None,
    api_app_id: str = "A1",
) -> Body:
    """A slash command, form-encoded with the fields Slack sends."""
    fields = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name or f"channel-{channel_id.lower()}",
        "user_id": user_id,
        "user_name": user_name or f"user-{user_id.lower()}",
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url or UNROUTED_RESPONSE_URL,
        "trigger_id": trigger_id or new_trigger_id(),
    }
    return urlencode(fields).encode(), FORM


def view_submission(
    callback_id: str,
    values: Mapping[str, Mapping[str, JsonDict]],
    private_metadata: str = "",
    *,
    user_id: str = "U1",
    team_id: str = "T1",
    team_domain: str = "fake-workspace",
    view_id: str = "VFAKE0001",
    trigger_id: str | None = None,
    response_urls: list[JsonDict] | None = None,
    api_app_id: str = "A1",
    **view_fields: Any,
) -> Body:
    """A modal submission; `values` is ``view.state.values`` as Slack shapes it.

    That is ``{block_id: {action_id: {"type": ..., "value" | "selected_option" | ...}}}``;
    the ``*_value`` helpers in this module build the inner entries. Other keyword
    arguments (blocks, title, view_hash, external_id, ...) go to `modal_view`.
    """
    view = modal_view(
        callback_id,
        values=values,
        private_metadata=private_metadata,
        view_id=view_id,
        team_id=team_id,
        api_app_id=api_app_id,
        **view_fields,
    )
    payload = _interaction(
        "view_submission",
        user_id=user_id,
        team_id=team_id,
        team_domain=team_domain,
        api_app_id=api_app_id,
    )
    payload.update(
        trigger_id=trigger_id or new_trigger_id(), view=view, response_urls=response_urls or []
    )
    return _payload_body(payload)


def block_actions(
    action_id: str,
    value: str | None = None,
    *,
    block_id: str = "actions",
    user_id: str = "U1",
    team_id: str = "T1",
    team_domain: str = "fake-workspace",
    view: JsonDict | None = None,
    channel_id: str | None = None,
    message_ts: str | None = None,
    message: JsonDict | None = None,
    selected_option: str | JsonDict | None = None,
    action_type: str | None = None,
    action_fields: Mapping[str, Any] | None = None,
    trigger_id: str | None = None,
    response_url: str | None = None,
    api_app_id: str = "A1",
) -> Body:
    """A click or selection on a Block Kit element in a message or a view.

    Pass `view` (e.g. from `modal_view`) for modals and home tabs, or `channel_id` and
    `message_ts` for messages. `selected_option` may be a value or a full option object.
    """
    action: JsonDict = {
        "action_id": action_id,
        "block_id": block_id,
        "type": action_type or ("static_select" if selected_option is not None else "button"),
        "action_ts": f"{time.time():.6f}",
    }
    if value is not None:
        action["value"] = value
    if isinstance(selected_option, str):
        action["selected_option"] = option(selected_option)
    elif selected_option is not None:
        action["selected_option"] = selected_option
    action.update(action_fields or {})
    payload = _interaction(
        "block_actions",
        user_id=user_id,
        team_id=team_id,
        team_domain=team_domain,
        api_app_id=api_app_id,
    )
    payload.update(_container(view, channel_id, message_ts))
    payload.update(trigger_id=trigger_id or new_trigger_id(), actions=[action])
    payload["state"] = (view or {}).get("state", {"values": {}})
    if view is None and (channel_id or message_ts):
        payload["message"] = message or _bot_message(message_ts)
        payload["response_url"] = response_url or UNROUTED_RESPONSE_URL
    return _payload_body(payload)


def block_suggestion(
    action_id: str,
    value: str,
    *,
    block_id: str = "block",
    user_id: str = "U1",
    team_id: str = "T1",
    team_domain: str = "fake-workspace",
    view: JsonDict | None = None,
    channel_id: str | None = None,
    message_ts: str | None = None,
    api_app_id: str = "A1",
) -> Body:
    """An options load for an external_select, with what the user has typed so far."""
    payload = _interaction(
        "block_suggestion",
        user_id=user_id,
        team_id=team_id,
        team_domain=team_domain,
        api_app_id=api_app_id,
    )
    payload.update(_container(view, channel_id, message_ts))
    payload.update(action_id=action_id, block_id=block_id, value=value)
    return _payload_body(payload)


def event_callback(
    event: JsonDict,
    *,
    team_id: str = "T1",
    event_id: str | None = None,
    api_app_id: str = "A1",
    bot_user_id: str = "UBOT",
    event_time: int | None = None,
) -> Body:
    """An Events API delivery wrapping `event`, as JSON."""
    payload = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or new_event_id(),
        "event_time": event_time or int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    return json.dumps(payload).encode(), JSON


def url_verification(challenge: str = "fake-challenge") -> Body:
    """The handshake Slack sends when the events URL is configured."""
    payload = {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
    return json.dumps(payload).encode(), JSON


def app_home_opened(
    user_id: str = "U1", *, tab: str = "home", view: JsonDict | None = None, channel: str = "D1"
) -> JsonDict:
    """An ``app_home_opened`` event (wrap it with `event_callback`)."""
    event: JsonDict = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": channel,
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }
    if view is not None:
        event["view"] = view
    return event


def _bot_message(ts: str | None) -> JsonDict:
    return {"type": "message", "user": "UBOT", "bot_id": "BBOT", "ts": ts, "text": "", "blocks": []}


# ---- sending


class SlackRequester:
    """Signs and POSTs Slack-shaped requests to the app under test.

    With `fake`, commands and message actions get a `fake.response_url(...)` so whatever
    the app sends back there is recorded; `last_response_id` names the latest one.
    Defaults for user, team and channel apply to every builder call unless overridden.
    """

    def __init__(
        self,
        base_url: str,
        signing_secret: str,
        *,
        client: httpx.AsyncClient | None = None,
        path: str = "/slack/events",
        fake: FakeSlack | None = None,
        user_id: str = "U1",
        team_id: str = "T1",
        channel_id: str = "C1",
    ) -> None:
        """`client` may be supplied, e.g. one with an ASGI transport; it is closed too."""
        self.url = base_url.rstrip("/") + path
        self.signing_secret = signing_secret
        # trust_env=False: a proxy from the environment must never carry test traffic.
        self.client = client or httpx.AsyncClient(timeout=10.0, trust_env=False)
        self.fake = fake
        self.defaults = {"user_id": user_id, "team_id": team_id}
        self.channel_id = channel_id
        self.last_response_id: str | None = None
        self._response_seq = itertools.count(1)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    async def post(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Sign `body` and POST it; `headers` are added last, so they can spoil the signature."""
        signed = sign(self.signing_secret, body, timestamp, content_type=content_type)
        return await self.client.post(self.url, content=body, headers={**signed, **(headers or {})})

    async def command(self, text: str, **kw: Any) -> httpx.Response:
        """Send a slash command (keyword arguments as for `slash_command`)."""
        kw.setdefault("channel_id", self.channel_id)
        if "response_url" not in kw:
            kw["response_url"] = self._new_response_url()
        return await self.post(*slash_command(text, **{**self.defaults, **kw}))

    async def submit_view(
        self, callback_id: str, values: Mapping[str, Mapping[str, JsonDict]], **kw: Any
    ) -> httpx.Response:
        """Submit a modal (keyword arguments as for `view_submission`)."""
        return await self.post(*view_submission(callback_id, values, **{**self.defaults, **kw}))

    async def action(self, action_id: str, value: str | None = None, **kw: Any) -> httpx.Response:
        """Send a block action (keyword arguments as for `block_actions`)."""
        in_message = kw.get("view") is None and (kw.get("channel_id") or kw.get("message_ts"))
        if in_message and "response_url" not in kw:
            kw["response_url"] = self._new_response_url()
        return await self.post(*block_actions(action_id, value, **{**self.defaults, **kw}))

    async def suggest(self, action_id: str, value: str, **kw: Any) -> httpx.Response:
        """Ask for external select options (keyword arguments as for `block_suggestion`)."""
        return await self.post(*block_suggestion(action_id, value, **{**self.defaults, **kw}))

    async def event(self, event: JsonDict, **kw: Any) -> httpx.Response:
        """Deliver an Events API event (keyword arguments as for `event_callback`)."""
        kw.setdefault("team_id", self.defaults["team_id"])
        return await self.post(*event_callback(event, **kw))

    def _new_response_url(self) -> str | None:
        if self.fake is None:
            return None
        self.last_response_id = f"r{next(self._response_seq)}"
        return self.fake.response_url(self.last_response_id)
