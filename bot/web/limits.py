"""Request bodies, read within a limit: every route that reads a body reads it here.

A body declared (`Content-Length`) larger than the limit is refused before a byte
of it is read; one without a length (chunked) is read only up to the limit. So a
refused body costs the web process at most `limit` bytes, however large it is.
The server then drops what the client still sends for 2 s at most, so that the
client can read the 413, and closes the connection (`bot.web.connections`).

What bounds the bodies being read at once is the connection bound and the request
deadline (`bot.web.connections`): to keep M bytes in the process's memory, a client
must keep sending them, a new M every 10 s.
"""

from __future__ import annotations

from contextlib import aclosing

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it is known to be larger than `limit` bytes (read no
    further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async with aclosing(request.stream()) as stream:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    return b"".join(chunks)


def too_large(limit: int) -> JSONResponse:
    """413 naming the limit. Not `Connection: close`: uvicorn would close at once, and
    a client still writing the body would get a reset instead of this answer."""
    return JSONResponse({"error": f"body larger than {limit} bytes"}, status_code=413)


def with_body(request: Request, body: bytes) -> Request:
    """`request` again, its body `body` (once `read_body` read it, its own stream is
    spent), for a handler that reads the body itself."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)
