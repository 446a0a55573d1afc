"""`GET /audio/{name}`: a recorded message uploaded in the workflow modal, for the
provider to fetch (`PUBLIC_URL/audio/<unguessable name>.mp3`).

The name is the key (`bot/store/audio.py`): anything that is not a name the store
makes, or not kept, is 404, the same answer either way, and no path can leave the
audio folder. Nothing here logs the name (the access log is off, and
`bot/logsafety.py` masks such a path in any log line).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from bot.store.audio import AudioStore
from bot.web.state import running


async def audio_file(request: Request) -> Response:
    web = running(request)
    if web is None:
        return JSONResponse({"error": "starting"}, status_code=503)
    found = AudioStore.beside(web.runtime.settings.database_path).find(request.path_params["name"])
    if found is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    path, content_type = found
    return FileResponse(
        path,
        media_type=content_type,
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
