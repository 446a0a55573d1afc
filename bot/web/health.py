"""`GET /healthz`: 200 with a small JSON body once the database is open."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.web.state import running


async def healthz(request: Request) -> Response:
    web = running(request)
    if web is None:
        return JSONResponse({"ok": False, "database": "not open"}, status_code=503)
    runtime = web.runtime
    runtime.store.db.execute("SELECT 1").fetchone()
    providers = runtime.providers
    return JSONResponse(
        {
            "ok": True,
            "database": "open",
            "provider": "sandbox" if providers.sandbox else ",".join(p.id for p in providers),
        }
    )
