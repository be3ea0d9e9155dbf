"""The JSON API (``router``; included by ``app.create_app``): runs, figures, comparison,
leaderboard, jobs, submissions and ``/healthz``.

Reads come from ``pipelines.serve.catalog`` (the run folders) and the job table; writes
(POST, DELETE) need ``Authorization: Bearer <token>`` when the server has a token (it must have
one when bound beyond loopback). Errors are ``{"error": "<one line>"}``: 400 for bad input, 401
without the token, 404 for what is not there, 413 for an upload over its size limit.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from dis_eval.errors import UserError
from pipelines.serve import catalog
from pipelines.serve.queue import JobQueue, log_tail
from pipelines.serve.settings import ServeSettings

router = APIRouter()


def jsonable(obj: Any) -> Any:
    """Dataclasses, dicts, lists and tuples as JSON values; NaN and infinities become null."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def settings_of(request: Request) -> ServeSettings:
    return request.app.state.settings


def queue_of(request: Request) -> JobQueue:
    return request.app.state.queue


def require_token(request: Request) -> None:
    """Writes need the server's token (``Authorization: Bearer ...`` or ``X-Token``)."""
    import hmac

    settings = settings_of(request)
    if not settings.needs_token:
        return
    given = request.headers.get("x-token") or ""
    auth = request.headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given or not hmac.compare_digest(given.encode(), str(settings.token).encode()):
        raise HTTPException(status_code=401, detail="this server needs its token on POST and DELETE: "
                            "send 'Authorization: Bearer <token>'")


def parse_filters(filters: list[str]) -> dict[str, str]:
    """``column:condition`` pairs (``beta:>=2``, ``model:echo``) -> {column: condition}."""
    out: dict[str, str] = {}
    for item in filters:
        column, sep, condition = item.partition(":")
        if not sep or not column:
            raise UserError(f"filter {item!r}: write column:condition, e.g. beta:>=2 or model:echo")
        out[column] = condition
    return out


def _pick(row: dict[str, Any], wanted: list[str] | None) -> dict[str, Any]:
    if wanted is None:
        return row
    return row | {"config": {k: v for k, v in row["config"].items() if k in wanted},
                  "metrics": {k: v for k, v in row["metrics"].items() if k in wanted}}


# ---- health -------------------------------------------------------------------------------------

@router.get("/healthz", tags=["service"])
def healthz(request: Request) -> dict[str, Any]:
    """The service is up: the root it serves, the job counts, the workers seen alive."""
    settings, queue = settings_of(request), queue_of(request)
    return {"status": "ok", "root": str(settings.root), "executor": settings.executor,
            "jobs": queue.counts(), "workers": len(queue.live_workers(settings.stale_after_s))}


# ---- runs ---------------------------------------------------------------------------------------

@router.get("/api/runs", tags=["runs"])
def get_runs(request: Request,
             filter: list[str] = Query(default=[], description="column:condition, e.g. beta:>=2, model:echo, mig:>0.1"),  # noqa: B008
             sort: str | None = None, desc: bool = False, grouped: bool = False,
             columns: str | None = Query(default=None, description="comma-separated config keys and scores to return")
             ) -> dict[str, Any]:
    """Runs (one row each: flattened config and scores), or with ``grouped=true`` one row per
    configuration with mean, sd and n over its seeds."""
    root = settings_of(request).root
    filters = parse_filters(filter)
    if grouped:
        groups = catalog.grouped_runs(root, filters, sort, desc)
        return {"grouped": True, "groups": jsonable(groups)}
    rows = catalog.list_runs(root, filters, sort, desc)
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    all_rows = catalog.list_runs(root) if filters else rows
    return {"grouped": False, "columns": catalog.columns(all_rows),
            "rows": [_pick(jsonable(r), wanted) for r in rows]}


@router.get("/api/runs/{run_id:path}/figures/{name}", tags=["runs"])
def get_figure(request: Request, run_id: str, name: str) -> FileResponse:
    """A figure file of a run (only names its figures folder lists)."""
    path = catalog.figure_path(settings_of(request).root, run_id, name)
    return FileResponse(path, media_type=catalog.figure_media_type(name))


@router.get("/api/runs/{run_id:path}", tags=["runs"])
def get_run(request: Request, run_id: str) -> dict[str, Any]:
    """One run: config, summary, metrics.json with each score's provenance, figures, loss curves."""
    return jsonable(catalog.run_detail(settings_of(request).root, run_id))


# ---- comparison and leaderboard ---------------------------------------------------------------------

@router.get("/api/compare", tags=["runs"])
def get_compare(request: Request, group_by: str | None = None, scores: str | None = None) -> dict[str, Any]:
    """Mean ± sd per configuration (``group_by``: comma-separated config keys; default: every
    key but the seed) and the paper's Table 2 layout with the paper's numbers beside."""
    keys = [k.strip() for k in group_by.split(",") if k.strip()] if group_by else None
    names = [s.strip() for s in scores.split(",") if s.strip()] if scores else None
    return jsonable(catalog.compare_table(settings_of(request).root, keys, names))


@router.get("/api/leaderboard", tags=["leaderboard"])
def get_leaderboard(request: Request, metric: str = "factor_vae", subset: str | None = None,
                    protocol: str | None = None, data: str | None = None) -> dict[str, Any]:
    """Scores of ``metric`` by runs and submissions on one (data set, subset, protocol), best
    first; each row names its run or submission and the provenance of its number. ``boards``
    lists every combination that has scores."""
    root = settings_of(request).root
    rows = catalog.leaderboard(root, subset=subset or None, protocol=protocol or None, metric=metric, data=data or None)
    return {"metric": metric, "subset": subset, "protocol": protocol, "data": data,
            "boards": catalog.leaderboard_boards(root), "rows": jsonable(rows)}


# ---- jobs ---------------------------------------------------------------------------------------

def job_json(job: Any, tail: bool = False) -> dict[str, Any]:
    out = jsonable(job)
    if tail:
        out["log_tail"] = log_tail(job.log_path)
    return out


@router.get("/api/jobs", tags=["jobs"])
def get_jobs(request: Request, state: str | None = None, kind: str | None = None,
             limit: int = Query(default=200, ge=1, le=5000)) -> dict[str, Any]:
    """Jobs, newest first, and the count per state."""
    queue = queue_of(request)
    return {"counts": queue.counts(), "jobs": [job_json(j) for j in queue.list(state, kind, limit)]}


@router.get("/api/jobs/{job_id}", tags=["jobs"])
def get_job(request: Request, job_id: str) -> dict[str, Any]:
    """One job: state, parameters, result or error, and the tail of its log."""
    return job_json(queue_of(request).get(job_id), tail=True)


@router.post("/api/jobs", tags=["jobs"], status_code=201, dependencies=[Depends(require_token)])
async def post_job(request: Request) -> JSONResponse:
    """Queue a job: ``{"kind": "train" | "evaluate" | "sweep", "params": {...}}`` (see
    ``pipelines.serve.jobs``); score jobs come from ``POST /api/submissions``."""
    from pipelines.serve.jobs import parse_job_request

    try:
        body = await request.json()
    except ValueError:
        raise UserError("the body must be JSON: {\"kind\": ..., \"params\": {...}}") from None
    queue = queue_of(request)
    pending = queue.list("queued") + queue.list("running")
    kind, params = parse_job_request(body, settings_of(request), pending)
    job = queue.submit(kind, params)
    return JSONResponse(job_json(job), status_code=201)


@router.delete("/api/jobs/{job_id}", tags=["jobs"], dependencies=[Depends(require_token)])
def delete_job(request: Request, job_id: str) -> dict[str, Any]:
    """Cancel a job: a queued one at once, a running one at its worker's next heartbeat."""
    return job_json(queue_of(request).cancel(job_id))


# ---- submissions --------------------------------------------------------------------------------

FORM_OVERHEAD = 64 * 1024  # the form's other fields and multipart framing, beyond the file itself


@router.post("/api/submissions", tags=["submissions"], status_code=201, dependencies=[Depends(require_token)])
async def post_submission(request: Request) -> JSONResponse:
    """Upload something to score (multipart form): ``kind`` (codes | weights | onnx), ``file``,
    and optionally ``name``, ``data``, ``subset``, ``metrics`` (comma-separated), ``preset``,
    ``representation``, ``seed``, ``repeats``, ``set``; for weights ``model``, ``latents``,
    ``d_max``. The upload is checked at once (400 with one line when it cannot be scored, 413
    over the size limit) and becomes a score job; its result joins the leaderboard."""
    import uuid

    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import UploadFile

    from pipelines.serve.uploads import TooLarge, accept_submission, max_upload_bytes

    settings = settings_of(request)
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise HTTPException(status_code=411, detail="send the upload with a Content-Length")
    if int(length) > max_upload_bytes(settings) + FORM_OVERHEAD:
        raise TooLarge(f"the upload ({int(length) // (1024 * 1024)} MiB) is larger than this server's limit of "
                       f"{max_upload_bytes(settings) // (1024 * 1024)} MiB")
    try:
        form = await request.form(max_files=1, max_fields=32)
    except Exception as exc:  # noqa: BLE001 - a malformed multipart body
        raise UserError(f"the body must be a multipart form with a file ({str(exc)[:120]})") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise UserError("the form has no file (field 'file')")
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    job_id = uuid.uuid4().hex[:16]
    try:
        params = await run_in_threadpool(accept_submission, settings, fields, upload.file, upload.filename or "", job_id)
    finally:
        await upload.close()
    job = queue_of(request).submit("score", params, job_id=job_id)
    return JSONResponse(job_json(job), status_code=201)


@router.get("/api/submissions", tags=["submissions"])
def get_submissions(request: Request) -> dict[str, Any]:
    """Scored submissions (their description and scores)."""
    return {"submissions": jsonable(catalog.list_submissions(settings_of(request).root))}
