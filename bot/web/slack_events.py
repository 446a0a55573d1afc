"""`POST /slack/events`: every Slack request, verified before anything parses it.

A body over `MAX_SLACK_BYTES` is refused with 413 before the signature is checked,
without being read (or read no further than the limit, when it has no length).

Why 2 MiB: most of Slack's payloads are a few KB; the largest is a modal's
`view_submission`, the whole view again plus what was typed. A field of 3,000
characters (the workflow message's `max_length`) can take up to 16 bytes a
character once JSON-escaped and URL-encoded (an emoji, `\\ud83d\\ude00`
percent-encoded): under 50 KB. The recipients field has no `max_length`, and the
app reads it up to 400,000 characters (`bot.input.recipients`); a longer paste must
get that field's own error, not a bare 413. A 400,000-character list of numbers is
about 460 KB as Slack encodes it; the 1 MB paste of `test_bad_input.py` is 1.28 MB.
2 MiB covers that with room to spare, and costs at most 2 MiB a request.
"""

from __future__ import annotations

from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot import failpoints
from bot.web.limits import read_body, too_large, with_body
from bot.web.state import running

MAX_SLACK_BYTES = 2 * 1024 * 1024


async def slack_events(request: Request) -> Response:
    """Verify Slack's signature ourselves first: bolt parses a body (and logs a refused
    one) before checking, so a malformed forgery would otherwise get a 500, and the
    body of a refused request, numbers and all, would reach the log."""
    web = running(request)
    if web is None:
        return JSONResponse({"error": "starting"}, status_code=503)
    secret = web.runtime.settings.slack_signing_secret
    body = await read_body(request, MAX_SLACK_BYTES)
    if body is None:
        return too_large(MAX_SLACK_BYTES)
    if secret is not None and not _signed_by_slack(secret.get_secret_value(), request, body):
        return JSONResponse({"error": "invalid or missing Slack signature"}, status_code=401)
    failpoints.reach("web.slack_events", body.decode("utf-8", "replace"))
    return await web.slack.handle(with_body(request, body))


def _signed_by_slack(secret: str, request: Request, body: bytes) -> bool:
    """Slack's v0 signature, with a timestamp no more than 5 minutes off."""
    timestamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature", "")
    if not timestamp.isdigit() or not signature:
        return False
    try:
        return SignatureVerifier(secret).is_valid(
            body=body, timestamp=timestamp, signature=signature
        )
    except UnicodeDecodeError:  # Slack sends UTF-8; anything else is not from Slack
        return False
