"""A fake Slack Web API on a real loopback socket, for end-to-end tests of the Slack app.

Point the app at it with ``SLACK_API_URL = fake.api_url``. Every request it accepts is
recorded as a `SlackCall`, in order; faults, latency and a per-channel rate limit can be
switched on at run time. It serves `slack_sdk` as it really talks: JSON bodies for the
methods that carry blocks or views, form bodies (sync client) or query strings (async
client) for the rest, and GET for some read methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.serving import RunningServer, start_server

JsonDict = dict[str, Any]
Answer = Callable[["SlackCall"], JsonDict]
T = TypeVar("T")

RESPONSE_URL_METHOD = "response_url"
# The POST of a file's bytes to the `upload_url` files.getUploadURLExternal gave
# (files_upload_v2's second step), recorded under this name; faults can target it too.
UPLOAD_METHOD = "files.upload_url"
# A GET of a hosted file's `url_private_download` (files.info gives it), recorded under
# this name with the token it came with; faults can target it too.
DOWNLOAD_METHOD = "files.download"
MESSAGE_METHODS = frozenset({"chat.postMessage", "chat.update"})
VIEW_METHODS = ("views.open", "views.push", "views.update", "views.publish")

# Fields that clients send as JSON text when the body is form-encoded (and that some
# callers json.dumps themselves even in JSON bodies).
JSON_FIELDS = frozenset(
    {
        "attachments",
        "blocks",
        "chunks",
        "files",
        "manifest",
        "message",
        "metadata",
        "outputs",
        "prefs",
        "unfurls",
        "user_auth_blocks",
        "view",
    }
)

SIGN_IN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in | Slack</title></head></html>"

FAULT_ERRORS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}
BASE_TS = 1_700_000_000


@dataclass(frozen=True)
class SlackCall:
    """One request the fake accepted (answered ``ok: true``), parameters decoded.

    `at` is read from the fake's clock (`time.monotonic` unless one was injected).
    `response_id` is set only for posts to a ``response_url``.
    """

    method: str
    params: JsonDict
    token: str | None
    at: float
    response_id: str | None = None

    def all_text(self) -> str:
        """The `text` parameter and every text found in blocks, attachments and views."""
        return "\n".join(_texts(self.params))


@dataclass(frozen=True)
class SlackFile:
    """A file shared with files_upload_v2: files.getUploadURLExternal, the bytes POSTed
    to its upload URL, then files.completeUploadExternal naming where it goes."""

    id: str
    filename: str
    title: str | None
    content: bytes
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None = None

    @property
    def text(self) -> str:
        """The content as text (UTF-8, a byte-order mark dropped)."""
        return self.content.decode("utf-8-sig", errors="replace")


@dataclass(frozen=True)
class HostedFile:
    """A file someone uploaded to Slack (a modal's file input, a message), registered by
    a test with `add_file`: files.info describes it, and its bytes are served at its
    `url_private_download` to a request bearing a token the fake accepts."""

    id: str
    name: str
    content: bytes
    filetype: str
    mimetype: str
    user: str
    size: int


@dataclass
class _Upload:
    filename: str
    length: int
    content: bytes | None = None


@dataclass(frozen=True)
class Rejection:
    """A request the fake refused: an injected fault, a rate limit, or an error answer."""

    method: str
    params: JsonDict
    token: str | None
    at: float
    status: int
    error: str
    retry_after: int | None = None


@dataclass(frozen=True)
class RateLimit:
    """At most `burst` messages per channel in any rolling `per_seconds` window."""

    burst: int
    per_seconds: float
    methods: frozenset[str] = MESSAGE_METHODS


@dataclass
class _Fault:
    status: int
    error: str
    retry_after: int | None
    remaining: int


@dataclass
class _Request:
    method: str
    params: JsonDict
    token: str | None
    response_id: str | None = None
    needs_auth: bool = True


class BadBody(ValueError):
    """The request body could not be read as form or JSON parameters."""


class FakeSlack:
    """State and behaviour of the fake; `start()` serves it, `app` is the ASGI app."""

    def __init__(
        self,
        *,
        team_id: str = "T1",
        team_name: str = "Fake Workspace",
        team_domain: str = "fake-workspace",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        app_id: str = "A1",
        tokens: Collection[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Configure the identity the fake answers with.

        `tokens`, when given, is the set of tokens it accepts (others get ``invalid_auth``);
        by default any non-empty token is accepted.
        """
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self._initial_tokens = None if tokens is None else frozenset(tokens)
        self._initial_clock = clock
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api_endpoint, methods=["GET", "POST"]),
                Route("/response/{response_id}", self._response_endpoint, methods=["POST"]),
                Route("/upload/{file_id}", self._upload_endpoint, methods=["POST"]),
                Route("/files-pri/{file_id}/{name}", self._download_endpoint, methods=["GET"]),
            ]
        )
        self._server: RunningServer | None = None
        self._base_url = ""
        self._answers = self._builtin_answers()
        self.rejected: list[Rejection] = []
        self._reset_config()
        self._reset_records()

    def _reset_config(self) -> None:
        # Public and meant to be changed by tests at run time.
        self.tokens: Collection[str] | None = self._initial_tokens
        self.clock = self._initial_clock
        self.rate_limit: RateLimit | None = None
        # Extra fields merged into users.info / conversations.info answers, by id.
        self.users: dict[str, JsonDict] = {}
        self.channels: dict[str, JsonDict] = {}
        self._overrides: dict[str, Answer] = {}
        self._latency: dict[str, float] = {}
        self._faults: dict[str, deque[_Fault]] = {}

    def _reset_records(self) -> None:
        self._calls: list[SlackCall] = []
        self.rejected.clear()
        self._sent: dict[str, deque[float]] = {}
        self._ts_seq = itertools.count(1)
        self._view_seq = itertools.count(1)
        self._hash_seq = itertools.count(1)
        self._views: dict[str, JsonDict] = {}
        self._home_view_ids: dict[str, str] = {}
        self._messages: dict[tuple[str, str], JsonDict] = {}
        self._joined: set[str] = set()
        self._file_seq = itertools.count(1)
        self._uploads: dict[str, _Upload] = {}
        self._files: list[SlackFile] = []
        self._hosted: dict[str, HostedFile] = {}

    # ---- serving

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeSlack:
        """Serve on a loopback socket (a free port by default) and return self."""
        self._server = await start_server(self.app, host=host, port=port)
        return self

    async def stop(self) -> None:
        """Stop serving; recorded calls stay readable."""
        if self._server is not None:
            await self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        """Base URL of the running fake, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("FakeSlack is not running: call start() first")
        return self._server.url

    @property
    def api_url(self) -> str:
        """The Web API base URL, with the trailing slash slack_sdk's base_url expects."""
        return f"{self.url}/api/"

    def response_url(self, response_id: str) -> str:
        """A ``response_url`` that records what the app posts to it under `response_id`."""
        return f"{self.url}/response/{response_id}"

    # ---- run-time configuration

    def fail_next(
        self,
        method: str,
        status: int = 500,
        times: int = 1,
        retry_after: int | None = None,
        error: str | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` (``"*"``: any method) with an error.

        The call is not recorded as delivered, only in `rejected`. `retry_after` adds a
        ``Retry-After`` header (integer seconds, as Slack sends). With ``status=200`` and an
        `error`, it answers ``{"ok": false, "error": error}`` like a Slack-level failure.
        """
        if status == 200 and error is None:
            raise ValueError("a status 200 fault needs an error, e.g. 'expired_trigger_id'")
        message = error or FAULT_ERRORS.get(status, "fatal_error")
        queue = self._faults.setdefault(method, deque())
        queue.append(_Fault(status, message, retry_after, times))

    def set_rate_limit(self, limit: RateLimit | None) -> None:
        """Limit messages per channel (None: no limit, the default)."""
        self.rate_limit = limit
        self._sent.clear()

    def set_latency(self, method: str, seconds: float) -> None:
        """Delay answers to `method` (``"*"``: any method) by `seconds`."""
        self._latency[method] = seconds

    def answer_with(self, method: str, answer: Answer | None) -> None:
        """Replace the built-in answer for `method` (None restores it).

        An answer without ``"ok": true`` is recorded as a rejection, not a call.
        """
        if answer is None:
            self._overrides.pop(method, None)
        else:
            self._overrides[method] = answer

    def clear(self) -> None:
        """Forget recorded calls, rejections, messages and views (not configuration)."""
        self._reset_records()

    def reset(self) -> None:
        """Back to as constructed: records cleared, faults, limits and overrides removed."""
        self._reset_config()
        self._reset_records()

    def add_file(
        self,
        content: bytes,
        name: str,
        *,
        filetype: str | None = None,
        mimetype: str = "application/octet-stream",
        user: str = "U1",
        size: int | None = None,
    ) -> HostedFile:
        """Register a file as uploaded to Slack by `user` (e.g. through a modal's file
        input): files.info then describes it (`size` may claim another size than the
        content's, as a hostile or stale answer could) and its bytes are served at its
        `url_private_download`, only with a token. Returns it; its `id` goes in the
        view state a test submits."""
        file_id = f"F{next(self._file_seq):010d}"
        kind = filetype or (name.rsplit(".", 1)[-1].lower() if "." in name else "binary")
        hosted = HostedFile(
            file_id, name, content, kind, mimetype, user, len(content) if size is None else size
        )
        self._hosted[file_id] = hosted
        return hosted

    def download_url(self, file_id: str) -> str:
        """Where a registered file's bytes are served (its `url_private_download`)."""
        hosted = self._hosted[file_id]
        base = self.url if self._server is not None else self._base_url
        return f"{base}/files-pri/{hosted.id}/{hosted.name}"

    # ---- queries for tests

    def calls(self, method: str | None = None) -> list[SlackCall]:
        """Delivered calls in order, optionally only those of one method."""
        return [c for c in self._calls if method is None or c.method == method]

    def messages(self, channel: str | None = None) -> list[SlackCall]:
        """Delivered ``chat.postMessage`` calls, optionally to one channel."""
        return [
            c
            for c in self.calls("chat.postMessage")
            if channel is None or c.params.get("channel") == channel
        ]

    def files(self, channel: str | None = None, thread_ts: str | None = None) -> list[SlackFile]:
        """Files shared (files.completeUploadExternal) in order, optionally only those in
        one channel, or in one thread of it."""
        return [
            f
            for f in self._files
            if (channel is None or f.channel == channel)
            and (thread_ts is None or f.thread_ts == thread_ts)
        ]

    def thread(self, channel: str, ts: str) -> list[SlackCall]:
        """Messages posted in `channel` as replies in the thread of `ts`."""
        return [c for c in self.messages(channel) if c.params.get("thread_ts") == ts]

    def updates(self, channel: str, ts: str) -> list[SlackCall]:
        """Delivered ``chat.update`` calls for the message `ts` in `channel`."""
        return [
            c
            for c in self.calls("chat.update")
            if c.params.get("channel") == channel and c.params.get("ts") == ts
        ]

    def ephemerals(self, user_id: str | None = None) -> list[SlackCall]:
        """Delivered ``chat.postEphemeral`` calls, optionally to one user."""
        return [
            c
            for c in self.calls("chat.postEphemeral")
            if user_id is None or c.params.get("user") == user_id
        ]

    def responses(self, response_id: str | None = None) -> list[SlackCall]:
        """Bodies posted to response URLs, optionally to one response id."""
        return [
            c
            for c in self.calls(RESPONSE_URL_METHOD)
            if response_id is None or c.response_id == response_id
        ]

    def rejections(self, method: str | None = None) -> list[Rejection]:
        """Refused requests in order, optionally only those of one method."""
        return [r for r in self.rejected if method is None or r.method == method]

    def last_view(self) -> JsonDict:
        """The view sent by the latest views.open/push/update/publish call."""
        views = [c for c in self._calls if c.method in VIEW_METHODS]
        if not views:
            raise AssertionError(f"no view was sent\n{self.summary()}")
        return views[-1].params["view"]

    def published_home(self, user_id: str) -> JsonDict:
        """The home tab view last published for `user_id`."""
        published = [c for c in self.calls("views.publish") if c.params.get("user_id") == user_id]
        if not published:
            raise AssertionError(f"no home tab was published for {user_id}\n{self.summary()}")
        return published[-1].params["view"]

    def view(self, view_id: str) -> JsonDict:
        """The fake's current state of a view, as Slack would return it."""
        return self._views[view_id]

    # A timeout parameter rather than asyncio.timeout: on expiry we want the summary of
    # what was recorded, not a bare TimeoutError.
    async def wait_for(
        self,
        predicate: Callable[[FakeSlack], T],
        timeout: float = 5.0,
        interval: float = 0.01,
    ) -> T:
        """Poll until `predicate(self)` is truthy and return its value.

        Raises AssertionError listing everything recorded if `timeout` seconds pass first.
        """
        # Real time, not self.clock: an injected clock may stand still.
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self)
            if result:
                return result
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s\n{self.summary()}")
            await asyncio.sleep(interval)

    def summary(self) -> str:
        """Human-readable list of recorded calls and rejections, for failure messages."""
        lines = [f"{len(self._calls)} call(s) delivered:"]
        lines += [f"  {i}. {_describe(c.method, c.params)}" for i, c in enumerate(self._calls, 1)]
        lines.append(f"{len(self.rejected)} rejected:")
        lines += [
            f"  {i}. {_describe(r.method, r.params)} -> {r.status} {r.error}"
            for i, r in enumerate(self.rejected, 1)
        ]
        return "\n".join(lines)

    # ---- HTTP endpoints

    async def _api_endpoint(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        try:
            params = await _read_params(request)
        except BadBody as exc:
            return JSONResponse({"ok": False, "error": str(exc)})
        # Where the fake is reached (also when its `app` is mounted in another server):
        # the upload URLs it hands out point there.
        self._base_url = str(request.base_url).rstrip("/")
        # Slack takes the token from either place; keep it out of the recorded params.
        param_token = params.pop("token", None)
        token = _bearer_token(request.headers.get("authorization")) or param_token
        return await self._serve(_Request(method, params, token))

    async def _response_endpoint(self, request: Request) -> JSONResponse:
        try:
            params = await _read_params(request)
        except BadBody as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        if isinstance(params.get("payload"), str):
            params = _decode_json_fields(json.loads(params["payload"]))
        response_id = request.path_params["response_id"]
        return await self._serve(
            _Request(RESPONSE_URL_METHOD, params, None, response_id, needs_auth=False)
        )

    async def _upload_endpoint(self, request: Request) -> PlainTextResponse:
        """A file's bytes, POSTed to the upload URL (no token: the URL is the secret).
        Answers as files.slack.com does: text/plain `OK - <length>`."""
        file_id = request.path_params["file_id"]
        body = await request.body()
        await self._simulate_latency(UPLOAD_METHOD)
        now = self.clock()
        params: JsonDict = {
            "file_id": file_id,
            "length": len(body),
            "content": body.decode("utf-8", errors="replace"),
        }
        req = _Request(UPLOAD_METHOD, params, None, needs_auth=False)
        fault = self._take_fault(UPLOAD_METHOD)
        if fault is not None:
            self._reject(req, now, fault.status, fault.error, fault.retry_after)
            return PlainTextResponse(fault.error, status_code=fault.status)
        upload = self._uploads.get(file_id)
        if upload is None:
            self._reject(req, now, 404, "file_not_found")
            return PlainTextResponse("file_not_found", status_code=404)
        upload.content = body
        self._calls.append(SlackCall(UPLOAD_METHOD, params, None, now))
        return PlainTextResponse(f"OK - {len(body)}")

    async def _download_endpoint(self, request: Request) -> Response:
        """A hosted file's bytes, as files.slack.com serves `url_private_download`: only
        with a bot token (`Authorization: Bearer`); without one, Slack answers 200 with
        its HTML sign-in page, not the file, and so does this."""
        file_id = request.path_params["file_id"]
        token = _bearer_token(request.headers.get("authorization"))
        await self._simulate_latency(DOWNLOAD_METHOD)
        now = self.clock()
        req = _Request(DOWNLOAD_METHOD, {"file_id": file_id}, token)
        fault = self._take_fault(DOWNLOAD_METHOD)
        if fault is not None:
            self._reject(req, now, fault.status, fault.error, fault.retry_after)
            return PlainTextResponse(fault.error, status_code=fault.status)
        hosted = self._hosted.get(file_id)
        if hosted is None or hosted.name != request.path_params["name"]:
            self._reject(req, now, 404, "file_not_found")
            return PlainTextResponse("file_not_found", status_code=404)
        if self._auth_error(req) is not None:
            self._reject(req, now, 200, "not_authed")
            return Response(SIGN_IN_PAGE, media_type="text/html")
        self._calls.append(SlackCall(DOWNLOAD_METHOD, {"file_id": file_id}, token, now))
        return Response(hosted.content, media_type=hosted.mimetype)

    async def _serve(self, req: _Request) -> JSONResponse:
        await self._simulate_latency(req.method)
        now = self.clock()
        fault = self._take_fault(req.method)
        if fault is not None:
            return self._reject(req, now, fault.status, fault.error, fault.retry_after)
        auth_error = self._auth_error(req)
        if auth_error is not None:
            return self._reject(req, now, 200, auth_error)
        retry_after = self._rate_limited(req, now)
        if retry_after is not None:
            return self._reject(req, now, 429, "ratelimited", retry_after)
        call = SlackCall(req.method, req.params, req.token, now, req.response_id)
        body = self._answer(call)
        if body.get("ok") is not True:
            return self._reject(req, now, 200, str(body.get("error", "unknown_error")), body=body)
        self._calls.append(call)
        self._note_sent(req, now)
        return JSONResponse(body)

    def _reject(
        self,
        req: _Request,
        now: float,
        status: int,
        error: str,
        retry_after: int | None = None,
        body: JsonDict | None = None,
    ) -> JSONResponse:
        self.rejected.append(
            Rejection(req.method, req.params, req.token, now, status, error, retry_after)
        )
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        content = body or {"ok": False, "error": error}
        return JSONResponse(content, status_code=status, headers=headers)

    async def _simulate_latency(self, method: str) -> None:
        delay = self._latency.get(method, self._latency.get("*", 0.0))
        if delay > 0:
            await asyncio.sleep(delay)

    def _take_fault(self, method: str) -> _Fault | None:
        for key in (method, "*"):
            queue = self._faults.get(key)
            if queue:
                fault = queue[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.popleft()
                return fault
        return None

    def _auth_error(self, req: _Request) -> str | None:
        if not req.needs_auth:
            return None
        if not req.token:
            return "not_authed"
        if self.tokens is not None and req.token not in self.tokens:
            return "invalid_auth"
        return None

    def _rate_limited(self, req: _Request, now: float) -> int | None:
        """Seconds to wait (rounded up, as Slack's integer Retry-After) or None if allowed."""
        limit = self.rate_limit
        channel = req.params.get("channel")
        if limit is None or req.method not in limit.methods or not channel:
            return None
        window = self._window(str(channel), now, limit)
        if len(window) < limit.burst:
            return None
        return max(1, math.ceil(window[0] + limit.per_seconds - now))

    def _window(self, channel: str, now: float, limit: RateLimit) -> deque[float]:
        window = self._sent.setdefault(channel, deque())
        while window and window[0] <= now - limit.per_seconds:
            window.popleft()
        return window

    def _note_sent(self, req: _Request, now: float) -> None:
        if self.rate_limit is not None and req.method in self.rate_limit.methods:
            channel = req.params.get("channel")
            if channel:
                self._sent.setdefault(str(channel), deque()).append(now)

    # ---- answers

    def _answer(self, call: SlackCall) -> JsonDict:
        answer = self._overrides.get(call.method) or self._answers.get(call.method)
        return answer(call) if answer is not None else {"ok": True}

    def _builtin_answers(self) -> dict[str, Answer]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update_message,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.delete": self._delete_message,
            "chat.getPermalink": self._permalink,
            "views.open": self._open_view,
            "views.push": self._open_view,
            "views.update": self._update_view,
            "views.publish": self._publish_view,
            "users.info": self._user_info,
            "conversations.info": self._conversation_info,
            "conversations.join": self._join_conversation,
            "conversations.open": self._open_conversation,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "files.info": self._file_info,
        }

    def _auth_test(self, call: SlackCall) -> JsonDict:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": "robocall",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, call: SlackCall) -> JsonDict:
        p = call.params
        channel = p.get("channel")
        if not channel:
            return _error("channel_not_found")
        if not any(p.get(k) for k in ("text", "blocks", "attachments", "markdown_text")):
            return _error("no_text")
        ts = self._next_ts()
        message = self._new_message(p, ts)
        self._messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _update_message(self, call: SlackCall) -> JsonDict:
        p = call.params
        channel, ts = p.get("channel"), p.get("ts")
        if not channel:
            return _error("channel_not_found")
        if not ts:
            return _error("message_not_found")
        # Lenient on unknown ts: tests often act on messages they built themselves.
        message = self._messages.get((channel, ts)) or self._new_message({}, ts)
        message.update({k: p[k] for k in ("text", "blocks", "attachments", "metadata") if k in p})
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        self._messages[(channel, ts)] = message
        text = message.get("text", "")
        return {"ok": True, "channel": channel, "ts": ts, "text": text, "message": message}

    def _post_ephemeral(self, call: SlackCall) -> JsonDict:
        if not call.params.get("channel"):
            return _error("channel_not_found")
        if not call.params.get("user"):
            return _error("user_not_in_channel")
        return {"ok": True, "message_ts": self._next_ts()}

    def _delete_message(self, call: SlackCall) -> JsonDict:
        channel, ts = call.params.get("channel"), call.params.get("ts")
        if not channel or not ts:
            return _error("message_not_found")
        self._messages.pop((channel, ts), None)
        return {"ok": True, "channel": channel, "ts": ts}

    def _permalink(self, call: SlackCall) -> JsonDict:
        channel, ts = call.params.get("channel"), call.params.get("message_ts")
        if not channel or not ts:
            return _error("message_not_found")
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _open_view(self, call: SlackCall) -> JsonDict:
        sent = call.params.get("view")
        if not isinstance(sent, dict) or not call.params.get("trigger_id"):
            return _error("invalid_arguments")
        return {"ok": True, "view": self._store_view(self._new_view_id(), sent)}

    def _update_view(self, call: SlackCall) -> JsonDict:
        sent = call.params.get("view")
        if not isinstance(sent, dict):
            return _error("invalid_arguments")
        view_id = call.params.get("view_id") or self._view_id_for(call.params.get("external_id"))
        if not view_id:
            return _error("not_found")
        if self._hash_conflicts(view_id, call.params.get("hash")):
            return _error("hash_conflict")
        return {"ok": True, "view": self._store_view(view_id, sent)}

    def _publish_view(self, call: SlackCall) -> JsonDict:
        sent, user_id = call.params.get("view"), call.params.get("user_id")
        if not isinstance(sent, dict) or not user_id:
            return _error("invalid_arguments")
        view_id = self._home_view_ids.setdefault(user_id, self._new_view_id())
        if self._hash_conflicts(view_id, call.params.get("hash")):
            return _error("hash_conflict")
        return {"ok": True, "view": self._store_view(view_id, sent)}

    def _user_info(self, call: SlackCall) -> JsonDict:
        user_id = call.params.get("user")
        if not user_id:
            return _error("user_not_found")
        return {"ok": True, "user": self._user(user_id)}

    def _conversation_info(self, call: SlackCall) -> JsonDict:
        channel = call.params.get("channel")
        if not channel:
            return _error("channel_not_found")
        return {"ok": True, "channel": self._channel(channel)}

    def _join_conversation(self, call: SlackCall) -> JsonDict:
        channel = call.params.get("channel")
        if not channel:
            return _error("channel_not_found")
        self._joined.add(channel)
        return {"ok": True, "channel": self._channel(channel)}

    def _open_conversation(self, call: SlackCall) -> JsonDict:
        users = str(call.params.get("users") or call.params.get("channel") or "")
        if not users:
            return _error("users_list_not_supplied")
        dm_id = "D" + users.split(",")[0].removeprefix("U")
        return {"ok": True, "channel": {"id": dm_id}}

    def _get_upload_url(self, call: SlackCall) -> JsonDict:
        filename, length = call.params.get("filename"), call.params.get("length")
        if not filename or length in (None, ""):
            return _error("invalid_arguments")
        file_id = f"F{next(self._file_seq):010d}"
        self._uploads[file_id] = _Upload(str(filename), int(length))
        base = self.url if self._server is not None else self._base_url
        return {"ok": True, "upload_url": f"{base}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, call: SlackCall) -> JsonDict:
        p = call.params
        files = p.get("files")
        if not isinstance(files, list) or not files:
            return _error("invalid_arguments")
        uploads = [(f.get("id"), f, self._uploads.get(str(f.get("id")))) for f in files]
        if any(upload is None or upload.content is None for _, _, upload in uploads):
            return _error("file_not_found")  # never announced, or its bytes never came
        shared = []
        for file_id, item, upload in uploads:
            assert upload is not None and upload.content is not None
            shared.append(
                SlackFile(
                    id=str(file_id),
                    filename=upload.filename,
                    title=item.get("title"),
                    content=upload.content,
                    channel=p.get("channel_id") or p.get("channels"),
                    thread_ts=p.get("thread_ts"),
                    initial_comment=p.get("initial_comment"),
                )
            )
            del self._uploads[str(file_id)]
        self._files += shared
        return {
            "ok": True,
            "files": [{"id": f.id, "name": f.filename, "title": f.title} for f in shared],
        }

    def _file_info(self, call: SlackCall) -> JsonDict:
        hosted = self._hosted.get(str(call.params.get("file") or ""))
        if hosted is None:
            return _error("file_not_found")
        url = self.download_url(hosted.id)
        return {
            "ok": True,
            "file": {
                "id": hosted.id,
                "name": hosted.name,
                "title": hosted.name,
                "filetype": hosted.filetype,
                "mimetype": hosted.mimetype,
                "size": hosted.size,
                "user": hosted.user,
                "url_private": url,
                "url_private_download": url,
            },
        }

    # ---- answer helpers

    def _next_ts(self) -> str:
        n = next(self._ts_seq)
        return f"{BASE_TS + n // 10_000}.{(n % 10_000) * 100:06d}"

    def _new_message(self, params: JsonDict, ts: str) -> JsonDict:
        message: JsonDict = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "ts": ts,
            "text": params.get("text", ""),
        }
        for key in ("blocks", "attachments", "metadata", "thread_ts"):
            if params.get(key):
                message[key] = params[key]
        return message

    def _new_view_id(self) -> str:
        return f"V{next(self._view_seq):010d}"

    def _view_id_for(self, external_id: str | None) -> str | None:
        if not external_id:
            return None
        found = [v["id"] for v in self._views.values() if v.get("external_id") == external_id]
        return found[-1] if found else None

    def _hash_conflicts(self, view_id: str, sent_hash: str | None) -> bool:
        known = self._views.get(view_id)
        return bool(sent_hash) and known is not None and known["hash"] != sent_hash

    def _store_view(self, view_id: str, sent: JsonDict) -> JsonDict:
        previous = self._views.get(view_id, {})
        view: JsonDict = {
            "type": "modal",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": None,
            "previous_view_id": None,
            **sent,
            "id": view_id,
            "team_id": self.team_id,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
            "root_view_id": previous.get("root_view_id", view_id),
            "state": {"values": {}},
            "hash": f"{BASE_TS}.{next(self._hash_seq):08x}",
        }
        self._views[view_id] = view
        return view

    def _user(self, user_id: str) -> JsonDict:
        name = f"user-{user_id.lower()}"
        user: JsonDict = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": f"User {user_id}",
            "deleted": False,
            "is_bot": False,
            "is_admin": False,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": {"real_name": f"User {user_id}", "display_name": name},
        }
        return {**user, **self.users.get(user_id, {})}

    def _channel(self, channel_id: str) -> JsonDict:
        channel: JsonDict = {
            "id": channel_id,
            "name": f"channel-{channel_id.lower()}",
            "is_channel": channel_id.startswith("C"),
            "is_group": channel_id.startswith("G"),
            "is_im": channel_id.startswith("D"),
            "is_private": channel_id.startswith(("G", "D")),
            "is_archived": False,
            "is_member": channel_id in self._joined,
            "created": BASE_TS,
        }
        return {**channel, **self.channels.get(channel_id, {})}


@contextlib.asynccontextmanager
async def run_fake_slack(**options: Any) -> AsyncIterator[FakeSlack]:
    """Start a `FakeSlack(**options)` on a free loopback port; stop it on exit."""
    fake = await FakeSlack(**options).start()
    try:
        yield fake
    finally:
        await fake.stop()


# ---- request parsing


async def _read_params(request: Request) -> JsonDict:
    """Query string and body parameters merged, JSON-text fields decoded."""
    params: JsonDict = dict(request.query_params)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    params.update(_parse_body(await request.body(), content_type))
    return _decode_json_fields(params)


def _parse_body(body: bytes, content_type: str) -> JsonDict:
    if not body.strip():
        return {}
    if content_type == "application/json" or body.lstrip().startswith(b"{"):
        return _parse_json_body(body)
    if content_type in ("application/x-www-form-urlencoded", ""):
        # Starlette's request.form() would need python-multipart, which is not installed.
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    raise BadBody("invalid_form_data")


def _parse_json_body(body: bytes) -> JsonDict:
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise BadBody("invalid_json") from exc
    if not isinstance(parsed, dict):
        raise BadBody("invalid_json")
    return parsed


def _decode_json_fields(params: JsonDict) -> JsonDict:
    return {k: _maybe_json(v) if k in JSON_FIELDS else v for k, v in params.items()}


def _maybe_json(value: Any) -> Any:
    if not isinstance(value, str) or not value.lstrip().startswith(("[", "{")):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


# ---- small helpers


def _error(error: str) -> JsonDict:
    return {"ok": False, "error": error}


def _texts(value: Any) -> Iterator[str]:
    """Every string under a ``text`` key, depth first, in document order."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            else:
                yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def _describe(method: str, params: JsonDict, limit: int = 200) -> str:
    text = json.dumps(params, default=str, sort_keys=True)
    return f"{method} {text if len(text) <= limit else text[:limit] + '...'}"


__all__ = [
    "FakeSlack",
    "HostedFile",
    "RateLimit",
    "Rejection",
    "SlackCall",
    "SlackFile",
    "run_fake_slack",
]
