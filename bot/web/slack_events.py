"""`POST /slack/events`: every Slack request, verified before anything reads it."""

from __future__ import annotations

from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot import failpoints
from bot.web.state import running


async def slack_events(request: Request) -> Response:
    """Verify Slack's signature ourselves first: bolt parses a body (and logs a refused
    one) before checking, so a malformed forgery would otherwise get a 500, and the
    body of a refused request, numbers and all, would reach the log."""
    web = running(request)
    if web is None:
        return JSONResponse({"error": "starting"}, status_code=503)
    secret = web.runtime.settings.slack_signing_secret
    body = await request.body()
    if secret is not None and not _signed_by_slack(secret.get_secret_value(), request, body):
        return JSONResponse({"error": "invalid or missing Slack signature"}, status_code=401)
    failpoints.reach("web.slack_events", body.decode("utf-8", "replace"))
    return await web.slack.handle(request)


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
