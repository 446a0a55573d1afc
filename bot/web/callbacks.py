"""`POST /callbacks/{provider}/{token}`: a provider's results, stored and answered at once.

The route only checks and stores: the callback and the job that applies it are
written in one transaction, and the worker applies it. Duplicate, unknown and
malformed callbacks are answered as before: a repeat of a completed request
200 "duplicate", an unknown request 404, not JSON 400, the wrong shape 422, a
body over 1 MiB 413 (read no further), a wrong token 404 with no side effect.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.core.providers import UnknownProvider
from bot.core.requests import CallbackOutcome
from bot.providers.base import BadCallback
from bot.web.state import running

MAX_CALLBACK_BYTES = 1024 * 1024


async def provider_callback(request: Request) -> Response:
    web = running(request)
    if web is None:
        return JSONResponse({"error": "starting"}, status_code=503)
    runtime = web.runtime
    provider = request.path_params["provider"]
    token = request.path_params["token"]
    if provider not in runtime.providers or not hmac.compare_digest(
        token.encode(), runtime.callback_token.encode()
    ):
        return JSONResponse({"error": "not found"}, status_code=404)
    raw = await _read_limited(request)
    if raw is None:
        return JSONResponse(
            {"error": f"body larger than {MAX_CALLBACK_BYTES} bytes"}, status_code=413
        )
    try:
        outcome, _ = runtime.service.receive_callback(provider, raw)
    except BadCallback as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    except UnknownProvider:
        return JSONResponse({"error": "not found"}, status_code=404)
    if outcome == CallbackOutcome.UNKNOWN_REQUEST:
        return JSONResponse({"error": "unknown request"}, status_code=404)
    return JSONResponse({"ok": True, "outcome": str(outcome)})


async def _read_limited(request: Request) -> bytes | None:
    """The body, or None once it passes MAX_CALLBACK_BYTES (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_CALLBACK_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_CALLBACK_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
