"""One way to fetch a file someone uploaded to Slack (a modal's file input): the
workflow modal's recording and the campaign's spreadsheet both come through here.

`files.info` says where the file is and how big Slack says it is; its bytes are
fetched from `url_private_download` with the bot token, which is sent to Slack's
own hosts only (its API's host, `SLACK_API_URL`, or `*.slack.com` over https), and
at most `cap` bytes of them are read, streamed (whatever size files.info claimed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.text import outside

DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
NAME = 80  # characters of a file's name in what is said


class DownloadRefused(Exception):
    """Why the file is not fetched, in words for its uploader (mrkdwn); `retry`: a
    passing trouble (Slack's 429 or 5xx, the network), worth trying again; `too_big`:
    larger than the cap (the caller may say which setting sets it)."""

    def __init__(self, why: str, *, retry: bool = False, too_big: bool = False) -> None:
        super().__init__(why)
        self.retry = retry
        self.too_big = too_big


@dataclass(frozen=True)
class Downloaded:
    content: bytes
    name: str


def megabytes(size: int) -> str:
    """A file's size for people: `12 MB`, `2.4 MB`, `800 KB`."""
    if size >= 10_000_000:
        return f"{size / 1_000_000:.0f} MB"
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    return f"{max(1, round(size / 1000))} KB"


def slack_host(url: str, api_url: str) -> bool:
    """Whether `url` is one of Slack's, where the bot token may be sent: its API's host
    (`api_url`, SLACK_API_URL) with its scheme, or `*.slack.com` over https."""
    parts, api = urlsplit(url), urlsplit(api_url)
    if not parts.hostname:
        return False
    if parts.netloc == api.netloc and parts.scheme == api.scheme:
        return True
    host = parts.hostname.lower()
    return parts.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com"))


def too_big(name: str, size: int | None, cap: int) -> str:
    what = f"is {megabytes(size)}" if size is not None else f"is larger than {megabytes(cap)}"
    return f"*{outside(name, NAME)}* {what}; the most this app takes is {megabytes(cap)}"


async def download(
    client: AsyncWebClient,
    file_id: str,
    cap: int,
    *,
    api_url: str,
    name: str = "The file",
    http_timeout: httpx.Timeout | float = DOWNLOAD_TIMEOUT,
) -> Downloaded:
    """The uploaded file's bytes and name, or DownloadRefused saying why not. The token
    is the client's own (the bot token); it goes only to one of Slack's hosts."""
    try:
        info = await client.files_info(file=file_id)
    except SlackApiError as exc:
        status = exc.response.status_code
        error = str(exc.response.get("error") or status)
        if status == 429 or status >= 500:
            raise DownloadRefused(f"Slack answered {error} to files.info", retry=True) from None
        hint = (
            " The app needs Slack's files:read scope (manifest.yml): an admin should "
            "add it and reinstall the app."
            if error in ("missing_scope", "not_allowed_token_type")
            else " Upload it again."
        )
        raise DownloadRefused(
            f"the uploaded file could not be read from Slack ({error}).{hint}"
        ) from None
    file: dict[str, Any] = info.get("file") or {}
    name = str(file.get("name") or file.get("title") or name)
    size = file.get("size")
    if isinstance(size, int) and size > cap:
        raise DownloadRefused(too_big(name, size, cap), too_big=True)
    url = str(file.get("url_private_download") or file.get("url_private") or "")
    if not slack_host(url, api_url):
        raise DownloadRefused(f"Slack gave no address of *{outside(name, NAME)}* to fetch it from.")
    token = client.token or ""
    content = bytearray()
    try:
        async with (
            httpx.AsyncClient(timeout=http_timeout, follow_redirects=True) as http,
            http.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as answer,
        ):
            # httpx drops the Authorization header on a redirect to another host.
            if answer.status_code == 429 or answer.status_code >= 500:
                raise DownloadRefused(
                    f"Slack answered HTTP {answer.status_code} to the download", retry=True
                )
            if answer.status_code != 200 or answer.headers.get("content-type", "").startswith(
                "text/html"
            ):  # Slack answers a login page when the token may not read the file
                raise DownloadRefused(
                    f"Slack answered HTTP {answer.status_code} when the app fetched "
                    f"*{outside(name, NAME)}* (the app needs the files:read scope). "
                    "Upload it again."
                )
            async for chunk in answer.aiter_bytes():
                content += chunk
                if len(content) > cap:
                    raise DownloadRefused(too_big(name, None, cap), too_big=True)
    except httpx.HTTPError as exc:
        raise DownloadRefused(
            f"the app could not fetch *{outside(name, NAME)}* from Slack "
            f"({type(exc).__name__}). Upload it again.",
            retry=True,
        ) from None
    return Downloaded(bytes(content), name)
