"""The web application: ``create_app(settings)`` puts the settings and the job queue on
``app.state``, includes the JSON API (``api.router``) and the pages (``pages.router``), serves
``/static`` and the OpenAPI docs at ``/docs``. Bad input anywhere is a ``UserError``: the API
answers it as JSON ``{"error": "<one line>"}`` (404 for ``NotFound``, 400 otherwise)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from pipelines.serve.settings import ServeSettings

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(settings: ServeSettings) -> FastAPI:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    from dis_eval.errors import UserError
    from pipelines.serve import api, pages
    from pipelines.serve.catalog import NotFound
    from pipelines.serve.queue import JobQueue
    from pipelines.serve.uploads import TooLarge

    app = FastAPI(title="dis-eval", description="Disentanglement evaluation service: runs, scores, jobs, "
                  "leaderboards. The run folders under the served root are the source of truth.",
                  docs_url="/docs", openapi_url="/openapi.json")
    app.state.settings = settings
    app.state.queue = JobQueue(settings.db_path)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__},
                            status_code=404 if isinstance(exc, NotFound) else 413 if isinstance(exc, TooLarge) else 400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=400)

    app.include_router(api.router)
    app.include_router(pages.router)
    STATIC_DIR.mkdir(exist_ok=True)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    return app
