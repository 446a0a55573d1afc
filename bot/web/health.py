"""`GET /healthz`: 200 with a small JSON body once the database is open: the enabled
providers (in the sandbox, `"provider": "sandbox"` and their ids in `providers`), and
the jobs that were parked (given up on after repeated failures)."""

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
    parked, latest = runtime.store.jobs.parked()
    # With real keys `provider` names the enabled providers; in the sandbox it says so,
    # and `providers` names the sandboxes standing in for them.
    sandboxes = {"providers": [p.id for p in providers]} if providers.sandbox else {}
    return JSONResponse(
        {
            "ok": True,
            "database": "open",
            "provider": "sandbox" if providers.sandbox else ",".join(p.id for p in providers),
            **sandboxes,
            # Jobs given up on after repeated failures: the app runs on, but someone
            # should look. Only the kind of error: its text may hold a phone number.
            "parked_jobs": parked,
            "latest_parked": [
                {
                    "id": row["id"],
                    "kind": row["kind"],
                    "attempts": row["attempts"],
                    "error": (row["last_error"] or "").partition(":")[0][:60],
                }
                for row in latest
            ],
        }
    )
