"""`POST /callbacks/{provider}/{token}`: a provider's results, stored and answered at once.

The route only checks and stores: the callback and the job that applies it are
written in one transaction, and the worker applies it. Duplicate, unknown and
malformed callbacks are answered as before: a repeat of a completed request
200 "duplicate", an unknown request 404, not JSON 400, the wrong shape 422, a
body over `callback_limit` 413 (read no further), a wrong token 404 with no side
effect; a batch id and calls' tags that name different requests 409.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.core.providers import UnknownProvider
from bot.core.requests import CallbackOutcome
from bot.providers.base import BadCallback
from bot.web.limits import read_body
from bot.web.state import running

# A callback reports at most one submission, and a submission carries at most the
# provider's `max_batch` recipients (larger requests are split), so its size follows
# from that: a seed-002 call result is about 350 bytes; 2 KiB each leaves room for
# long ids and extra fields. Intron: 64 KiB + 1,000 * 2 KiB, about 2.1 MB.
CALLBACK_BASE_BYTES = 64 * 1024
CALLBACK_BYTES_PER_CALL = 2 * 1024


def callback_limit(max_batch: int) -> int:
    """The largest callback body accepted from a provider whose submissions carry
    at most `max_batch` recipients."""
    return CALLBACK_BASE_BYTES + CALLBACK_BYTES_PER_CALL * max_batch


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
    limit = callback_limit(runtime.providers.get(provider).capabilities.max_batch)
    raw = await read_body(request, limit)
    if raw is None:
        return JSONResponse({"error": f"body larger than {limit} bytes"}, status_code=413)
    try:
        outcome, _ = runtime.service.receive_callback(provider, raw)
    except BadCallback as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    except UnknownProvider:
        return JSONResponse({"error": "not found"}, status_code=404)
    if outcome == CallbackOutcome.UNKNOWN_REQUEST:
        return JSONResponse({"error": "unknown request"}, status_code=404)
    if outcome == CallbackOutcome.CONFLICT:
        return JSONResponse(
            {"error": "the batch id and the calls' request tags name different requests"},
            status_code=409,
        )
    return JSONResponse({"ok": True, "outcome": str(outcome)})
