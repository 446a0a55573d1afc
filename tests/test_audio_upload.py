"""The Intron direct workflow modal, end to end: a recording uploaded with Slack's file
input is fetched by the worker (files.info, then its download URL with the bot token),
checked by its content and size, kept, and served at an unguessable
`PUBLIC_URL/audio/…` address that becomes the workflow's audio URL — which the direct
API is then sent; a refused file says why (its type or size) and changes nothing.
And the live character count under the message, against the provider's limit.

Signed Slack requests in, the fake Slack (which hosts the uploaded files) out, the
direct API's sandbox over a socket, SQLite a real file."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import struct
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import logsafety
from bot.providers.intron_direct import sandbox as direct_sandbox
from bot.serving import RunningServer, start_server
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.store.audio import AudioStore, kind_of
from tests.conftest import NUMBER
from tests.harness import Harness, assert_valid_view
from tests.support.fake_slack import DOWNLOAD_METHOD, FakeSlack
from tests.support.slack_requests import modal_view, plain_text_value

DIRECT = "intron-direct"
BOT_TOKEN = "xoxb-test-token"  # the harness's SLACK_BOT_TOKEN


def mp3_bytes(frames: int = 20, tag: bool = True) -> bytes:
    """A small MPEG-1 Layer III stream (128 kbit/s, 44.1 kHz frames of silence), with an
    ID3v2.3 tag in front when `tag`."""
    frame = b"\xff\xfb\x90\x64" + bytes(413)
    head = b"ID3\x03\x00\x00" + bytes([0, 0, 0, 10]) + b"TIT2" + bytes(6) if tag else b""
    return head + frame * frames


def wav_bytes(seconds: float = 0.1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<h", 0) * int(8000 * seconds))
    return out.getvalue()


PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


@dataclasses.dataclass
class Box:
    server: RunningServer
    state: Any

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
async def direct_box() -> AsyncIterator[Box]:
    app = direct_sandbox.create_sandbox_app(
        direct_sandbox.SandboxConfig(event_delay=0.05, callback_attempts=1)
    )
    box = Box(await start_server(app), app.state.sandbox)
    yield box
    await box.server.stop()


async def started(tmp_path: Path, fake: FakeSlack, box: Box, **overrides: Any) -> Harness:
    settings = {"intron_direct_api_key": "test-direct-key", "intron_direct_base_url": box.url}
    harness = Harness(tmp_path, fake, None, overrides=settings | overrides)
    await harness.start(wait_for_workflows=False)  # no Intron workflow API to wait for
    return harness


def form(
    name: str = "Recorded notice",
    message: str | None = None,
    *,
    audio_url: str | None = None,
    file_id: str | None = None,
) -> dict:
    values = {
        BlockId.WF_NAME: {ActionId.WF_NAME_INPUT: plain_text_value(name)},
        BlockId.WF_DESCRIPTION: {ActionId.WF_DESCRIPTION_INPUT: plain_text_value(None)},
        BlockId.WF_MESSAGE: {ActionId.WF_MESSAGE_INPUT: plain_text_value(message)},
        BlockId.WF_AUDIO: {ActionId.WF_AUDIO_INPUT: plain_text_value(audio_url)},
        BlockId.WF_OPTIONS: {ActionId.WF_OPTIONS_INPUT: plain_text_value(None)},
    }
    files = [{"id": file_id, "name": "upload"}] if file_id else []
    # As Slack puts a file input in the view state: the uploaded files, with their ids.
    values[BlockId.WF_AUDIO_FILE] = {
        ActionId.WF_AUDIO_FILE_INPUT: {"type": "file_input", "files": files}
    }
    return values


METADATA = json.dumps({"provider": DIRECT, "workflow_id": None})


async def submit(harness: Harness, values: dict, view_id: str = "VAUDIO") -> dict:
    assert harness.slack is not None
    answer = await harness.slack.submit_view(
        CallbackId.WORKFLOW_EDIT, values, private_metadata=METADATA, view_id=view_id
    )
    assert answer.status_code == 200, answer.text
    return answer.json() if answer.content else {}


def saved(harness: Harness, name: str):
    return next((w for w in harness.store.workflows.all() if w.name == name), None)


def audio_folder(harness: Harness) -> Path:
    return AudioStore.beside(harness.settings().database_path).folder


def kept_files(harness: Harness) -> list[Path]:
    folder = audio_folder(harness)
    return sorted(folder.iterdir()) if folder.exists() else []


async def final_modal(harness: Harness, view_id: str) -> str:
    """The text of the modal once the worker has told how the save went."""

    def done(fake: FakeSlack) -> str | None:
        updates = [c for c in fake.calls("views.update") if c.params.get("view_id") == view_id]
        texts = [c.all_text() for c in updates]
        return next((t for t in reversed(texts) if "Saving" not in t.split("\n")[0]), None)

    return await harness.fake.wait_for(done, timeout=10)


# ---------------------------------------------------------------- an upload, kept and served


@pytest.mark.parametrize(
    ("content", "filename", "kind", "content_type"),
    [
        (mp3_bytes(), "notice.mp3", "mp3", "audio/mpeg"),
        (mp3_bytes(tag=False), "plain.mp3", "mp3", "audio/mpeg"),
        (wav_bytes(), "notice.wav", "wav", "audio/wav"),
    ],
)
async def test_an_uploaded_recording_is_kept_served_and_sent_to_intron(
    tmp_path: Path,
    fake_slack: FakeSlack,
    direct_box: Box,
    caplog: pytest.LogCaptureFixture,
    content: bytes,
    filename: str,
    kind: str,
    content_type: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    harness = await started(tmp_path, fake_slack, direct_box)
    try:
        upload = fake_slack.add_file(content, filename, mimetype=content_type)
        answer = await submit(harness, form(file_id=upload.id))
        assert answer["response_action"] == "update"
        assert "Saving" in json.dumps(answer["view"])
        text = await final_modal(harness, "VAUDIO")
        assert "Created" in text, text
        workflow = saved(harness, "Recorded notice")
        assert workflow is not None and workflow.message == ""
        prefix = f"{harness.url}/audio/"
        assert workflow.audio_url.startswith(prefix) and workflow.audio_url.endswith(f".{kind}")
        name = workflow.audio_url.removeprefix(prefix)
        assert len(name) >= 40 + len(kind)  # unguessable
        # Fetched from Slack with the bot token, once.
        (download,) = fake_slack.calls(DOWNLOAD_METHOD)
        assert download.token == BOT_TOKEN and download.params["file_id"] == upload.id
        assert [c.params["file"] for c in fake_slack.calls("files.info")] == [upload.id]
        # Never logged: not the address, not the name.
        assert name not in caplog.text
        async with httpx.AsyncClient() as http:
            served = await http.get(workflow.audio_url)
        assert served.status_code == 200
        assert served.content == content
        assert served.headers["content-type"] == content_type
        # The direct API is sent the address, to fetch the recording from.
        assert harness.slack is not None
        response = await harness.slack.command(f'call "Recorded notice" {NUMBER.format(3)}')
        assert "accepted" in response.text, response.text
        await harness.wait_until(lambda: direct_box.state.calls)
        (sent,) = direct_box.state.calls.values()
        assert sent.request["audio_url"] == workflow.audio_url
        assert "message" not in sent.request
    finally:
        await harness.stop()


async def test_on_edit_a_new_upload_replaces_the_apps_own_earlier_recording(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    harness = await started(tmp_path, fake_slack, direct_box)
    try:
        first = fake_slack.add_file(mp3_bytes(), "first.mp3")
        await submit(harness, form(file_id=first.id), view_id="VFIRST")
        assert "Created" in await final_modal(harness, "VFIRST")
        before = saved(harness, "Recorded notice")
        second = fake_slack.add_file(wav_bytes(), "second.wav")
        # Edit: the URL field still shows the earlier upload's address; the new file wins.
        assert harness.slack is not None
        answer = await harness.slack.submit_view(
            CallbackId.WORKFLOW_EDIT,
            form(audio_url=before.audio_url, file_id=second.id),
            private_metadata=json.dumps({"provider": DIRECT, "workflow_id": before.id}),
            view_id="VSECOND",
        )
        assert answer.json()["response_action"] == "update"
        assert "Updated" in await final_modal(harness, "VSECOND")
        after = saved(harness, "Recorded notice")
        assert after.id == before.id and after.audio_url.endswith(".wav")
        assert after.audio_url != before.audio_url
        async with httpx.AsyncClient() as http:
            assert (await http.get(after.audio_url)).content == wav_bytes()
            assert (await http.get(before.audio_url)).status_code == 200  # kept: see README
    finally:
        await harness.stop()


async def test_the_audio_route_serves_only_kept_names(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    harness = await started(tmp_path, fake_slack, direct_box)
    try:
        name = AudioStore.beside(harness.settings().database_path).save(mp3_bytes(), "mp3")
        (audio_folder(harness) / "notes.txt").write_text("not audio")
        async with httpx.AsyncClient(base_url=harness.url) as http:
            assert (await http.get(f"/audio/{name}")).status_code == 200
            assert (await http.head(f"/audio/{name}")).status_code == 200
            wrong = [
                "A" * 43 + ".mp3",  # the right shape, not kept
                name.replace(".mp3", ".wav"),
                name.removesuffix(".mp3"),
                "notes.txt",
                "robocall.db",
                "..%2Frobocall.db",
                "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                "../robocall.db",
                f".{name}.part",
            ]
            answers = {path: (await http.get(f"/audio/{path}")).status_code for path in wrong}
        assert set(answers.values()) == {404}, answers
    finally:
        await harness.stop()


def test_an_audio_address_is_masked_in_logs() -> None:
    line = "GET https://robocall.example/audio/" + "x" * 43 + ".mp3 failed"
    assert "x" * 43 not in logsafety.redact(line)
    assert "/audio/[redacted]" in logsafety.redact(line)


# ---------------------------------------------------------------- refused, saying why


async def expect_refusal(harness: Harness, fake: FakeSlack, text: str, *words: str) -> None:
    """The modal said why nothing was saved, naming `words`; so does a DM; nothing kept."""
    assert "Not saved" in text or "was not saved" in text, text
    for word in words:
        assert word in text, (word, text)
    await fake.wait_for(
        lambda f: any(all(w in m.params["text"] for w in words) for m in f.messages("U1"))
    )
    await harness.settled()
    assert saved(harness, "Recorded notice") is None
    assert kept_files(harness) == []


async def test_a_file_that_is_not_mp3_or_wav_is_refused_naming_its_type(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    harness = await started(tmp_path, fake_slack, direct_box)
    try:
        # Named .mp3, and Slack may even call it mp3: its content decides.
        upload = fake_slack.add_file(PNG, "notice.mp3", filetype="mp3", mimetype="audio/mpeg")
        await submit(harness, form(file_id=upload.id))
        text = await final_modal(harness, "VAUDIO")
        await expect_refusal(
            harness, fake_slack, text, "notice.mp3", "not an mp3 or wav", "PNG image"
        )
    finally:
        await harness.stop()


async def test_a_file_too_large_is_refused_naming_its_size_before_it_is_fetched(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    harness = await started(tmp_path, fake_slack, direct_box, audio_max_bytes=5_000)
    try:
        upload = fake_slack.add_file(mp3_bytes(), "long.mp3", size=12_400_000)
        await submit(harness, form(file_id=upload.id))
        text = await final_modal(harness, "VAUDIO")
        await expect_refusal(
            harness, fake_slack, text, "long.mp3", "12 MB", "5 KB", "AUDIO_MAX_BYTES"
        )
        assert fake_slack.calls(DOWNLOAD_METHOD) == []  # Slack's size was enough
    finally:
        await harness.stop()


async def test_a_file_larger_than_slack_said_is_cut_off_and_refused(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    harness = await started(tmp_path, fake_slack, direct_box, audio_max_bytes=5_000)
    try:
        content = mp3_bytes(frames=40)  # about 17 KB, where Slack says 1 KB
        upload = fake_slack.add_file(content, "long.mp3", size=1_000)
        await submit(harness, form(file_id=upload.id))
        text = await final_modal(harness, "VAUDIO")
        await expect_refusal(harness, fake_slack, text, "long.mp3", "larger than 5 KB")
    finally:
        await harness.stop()


async def test_a_file_slack_will_not_give_is_refused_and_changes_nothing(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    harness = await started(tmp_path, fake_slack, direct_box)
    try:
        await submit(harness, form(file_id="F_NOT_THERE"))
        text = await final_modal(harness, "VAUDIO")
        await expect_refusal(
            harness, fake_slack, text, "could not be read from Slack", "file_not_found"
        )
    finally:
        await harness.stop()


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (
            form(audio_url="https://example.com/notice.mp3", file_id="F1"),
            "not both",
        ),
        (form(message="Hello {{name}}", file_id="F1"), "message or an audio file, not both"),
    ],
)
async def test_a_file_with_a_url_or_a_message_is_refused_on_the_field_before_anything(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box, values: dict, words: str
) -> None:
    harness = await started(tmp_path, fake_slack, direct_box)
    try:
        answer = await submit(harness, values)
        assert answer["response_action"] == "errors"
        assert words in answer["errors"][BlockId.WF_AUDIO_FILE]
        await harness.settled()
        assert fake_slack.calls("files.info") == [] and kept_files(harness) == []
    finally:
        await harness.stop()


# ---------------------------------------------------------------- the modal's fields


async def open_new_workflow(harness: Harness, provider: str, chooser: bool) -> dict:
    """New workflow (→ the provider chooser, when several) → that provider's modal."""
    assert harness.slack is not None
    await harness.slack.action(ActionId.WORKFLOW_NEW, "new", channel_id="C1", message_ts="1.1")
    opened = await harness.fake.wait_for(lambda f: f.calls("views.open"))
    view = opened[-1].params["view"]
    if not chooser:
        return view
    answer = await harness.slack.submit_view(
        CallbackId.WORKFLOW_PROVIDER,
        {
            BlockId.WF_PROVIDER: {
                ActionId.WF_PROVIDER_SELECT: {
                    "type": "static_select",
                    "selected_option": {"value": provider},
                }
            }
        },
        private_metadata=view["private_metadata"],
    )
    return answer.json()["view"]


def block(view: dict, block_id: str) -> dict | None:
    return next((b for b in view["blocks"] if b.get("block_id") == block_id), None)


async def test_the_upload_field_is_shown_only_where_the_provider_plays_audio(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    bizphone = {"bizphone_api_key": "test-biz-key", "bizphone_base_url": "http://127.0.0.1:9"}
    harness = await started(tmp_path, fake_slack, direct_box, **bizphone)
    try:
        direct = await open_new_workflow(harness, DIRECT, chooser=True)
        assert_valid_view(direct)
        upload = block(direct, BlockId.WF_AUDIO_FILE)
        assert upload is not None and upload["optional"] is True
        assert upload["element"] == {
            "type": "file_input",
            "action_id": ActionId.WF_AUDIO_FILE_INPUT,
            "filetypes": ["mp3", "wav"],
            "max_files": 1,
        }
        assert "10 MB" in upload["hint"]["text"]
        fake_slack.clear()
        biz = await open_new_workflow(harness, "bizphone", chooser=True)
        assert block(biz, BlockId.WF_AUDIO_FILE) is None  # BizPhone plays no recording
        assert block(biz, BlockId.WF_MESSAGE) is not None
    finally:
        await harness.stop()


@pytest.mark.parametrize(
    ("provider", "limit"),
    [(DIRECT, "3,000"), ("bizphone", "1,000")],
)
async def test_the_message_is_counted_live_against_the_providers_limit(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box, provider: str, limit: str
) -> None:
    bizphone = {"bizphone_api_key": "test-biz-key", "bizphone_base_url": "http://127.0.0.1:9"}
    harness = await started(tmp_path, fake_slack, direct_box, **bizphone)
    try:
        opened = await open_new_workflow(harness, provider, chooser=True)
        message = block(opened, BlockId.WF_MESSAGE)
        assert message is not None and message["dispatch_action"] is True
        assert message["element"]["dispatch_action_config"] == {
            "trigger_actions_on": ["on_character_entered"]
        }
        assert f"0 / {limit} characters" in block(opened, BlockId.WF_COUNT)["elements"][0]["text"]
        typed = "Hello {{name}}, " + "x" * 1184  # 1,200 characters
        shown = modal_view(
            CallbackId.WORKFLOW_EDIT,
            view_id="VTYPED",
            private_metadata=json.dumps({"provider": provider, "workflow_id": None}),
            values={BlockId.WF_MESSAGE: {ActionId.WF_MESSAGE_INPUT: plain_text_value(typed)}},
        )
        assert harness.slack is not None
        answer = await harness.slack.action(
            ActionId.WF_MESSAGE_INPUT,
            None,
            view=shown,
            block_id=BlockId.WF_MESSAGE,
            action_type="plain_text_input",
        )
        assert answer.status_code == 200
        calls = await fake_slack.wait_for(lambda f: f.calls("views.update"))
        assert calls[-1].params["view_id"] == "VTYPED"
        updated = calls[-1].params["view"]
        assert_valid_view(updated)
        text = block(updated, BlockId.WF_COUNT)["elements"][0]["text"]
        assert f"1,200 / {limit} characters" in text and "variables: [name]" in text
        assert ("too long" in text) is (provider == "bizphone")
    finally:
        await harness.stop()


async def test_a_message_over_the_limit_is_refused_naming_its_length(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    harness = await started(tmp_path, fake_slack, direct_box)
    try:
        answer = await submit(harness, form(message="Hello " + "x" * 4_100))
        assert answer["response_action"] == "errors"
        error = answer["errors"][BlockId.WF_MESSAGE]
        assert "4,106 characters" in error and "4,000" in error
    finally:
        await harness.stop()


def test_content_decides_the_kind_not_the_name() -> None:
    assert kind_of(mp3_bytes()) == "mp3"
    assert kind_of(mp3_bytes(tag=False)) == "mp3"
    assert kind_of(wav_bytes()) == "wav"
    for other in (
        PNG,
        b"",
        b"ID3",
        b"ID3\x03\x00\x00\x00\x00\x00\x0a" + bytes(50),
        b"RIFFxxxxAVI ",
    ):
        assert kind_of(other) is None, other
    assert kind_of(b"\xff\xfb\x90") is None  # too short for a frame header
    assert kind_of(b"\xff\xe8\x90\x64" + bytes(10)) is None  # reserved MPEG version
