"""The HTML pages (``router``; included by ``app.create_app``): server-rendered Jinja2 templates
(``templates/``) from ``pipelines.serve.catalog`` and the job table, with a little plain
JavaScript (``static/serve.js``: the SVG plots, the jobs page's polling, the upload form). No
external resources: every file a page loads is served from ``/static``.

| page | what |
|---|---|
| ``/`` | the runs table: sortable (column headers), filterable (a condition per column, the
  catalog's syntax: ``echo``, ``>=2``, ``~text``), choosable columns, grouped over seeds |
| ``/parallel`` | parallel coordinates (hyperparameters to scores, one line per run) and a score
  against beta (or any numeric key) with each seed and the mean ± sd |
| ``/runs/{id}`` | one run: scores with provenance, figures, per-latent rate, loss curves, config |
| ``/compare`` | mean ± sd per configuration and the paper's Table 2 layout with its numbers |
| ``/jobs`` | the job table, refreshed while jobs run; log tails; cancel |
| ``/leaderboard`` | per (data set, subset, protocol, metric); each number links to its provenance |
| ``/submissions/{id}`` | one scored submission and the provenance of its scores |
| ``/submit`` | the upload form (posts to ``/api/submissions``) |

A page that cannot be shown (no such run, a bad filter) answers an HTML page with the one-line
reason (404 for what is not there, 400 for bad input).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from dis_eval.errors import UserError
from pipelines.serve import catalog

router = APIRouter(include_in_schema=False)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
FILTER_PREFIX = "f:"  # the runs page's per-column filter fields: f:<column>=<condition>
# Figures the run page shows in their own sections (by file-name stem prefix), in this order.
FIGURE_SECTIONS: tuple[tuple[str, str], ...] = (
    ("traversal_", "Latent traversals"),
    ("latent_vs_factor", "Mean latent vs factor (Fig. 4)"),
    ("mi_heatmap", "Latent x factor mutual information"),
    ("reconstructions", "Reconstructions"),
)
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".gif", ".svg", ".jpg", ".jpeg")
NAV: tuple[tuple[str, str], ...] = (("/", "Runs"), ("/parallel", "Parallel coordinates"), ("/compare", "Compare"),
                                    ("/jobs", "Jobs"), ("/leaderboard", "Leaderboard"), ("/submit", "Submit"))
JOBS_SHOWN = 200  # the newest jobs the jobs page lists


# ---- rendering ---------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                             autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["num"] = fmt_number
    env.filters["cell"] = fmt_cell
    env.filters["when"] = fmt_time
    env.filters["result"] = fmt_result
    env.filters["run_url"] = run_url
    env.filters["api_run_url"] = api_run_url
    env.globals["nav"] = NAV
    return env


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A template as an HTML response."""
    html = _environment().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status)


def page(request: Request, name: str, build: Callable[[], dict[str, Any]], title: str) -> HTMLResponse:
    """``build()``'s context rendered into ``name``; a ``UserError`` becomes the error page."""
    try:
        context = build()
    except catalog.NotFound as exc:
        return render("error.html", 404, title="Not found", message=_one_line(exc), path=request.url.path)
    except UserError as exc:
        return render("error.html", 400, title="Cannot show this page", message=_one_line(exc), path=request.url.path)
    return render(name, title=title, path=request.url.path, **context)


def _one_line(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _root(request: Request) -> Path:
    return request.app.state.settings.root


# ---- formatting (template filters) --------------------------------------------------------------------

def fmt_number(value: Any, digits: int = 4) -> str:
    """A number for a table: ``digits`` significant digits, integers as they are, – for none."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–" if math.isnan(value) else str(value)
        if value == 0:
            return "0"
        if abs(value) >= 10 ** digits or abs(value) < 10 ** -3:
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


def fmt_cell(value: Any) -> str:
    """Any table value: numbers as ``fmt_number``, also inside lists (``[a, b]``) and dicts
    (``key: value, ...``)."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt_cell(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt_cell(v) for v in value) + "]"
    return fmt_number(value)


def fmt_result(result: Any) -> str:
    """A job's result in words, nested dicts flattened: ``submission ab12, mig 0.8077`` (the
    jobs page's script writes it the same way when it refreshes the table)."""
    parts: list[str] = []

    def walk(obj: dict[str, Any]) -> None:
        for key, value in obj.items():
            if isinstance(value, dict):
                walk(value)
            elif value is not None:
                parts.append(f"{key} {fmt_cell(value)}")

    if isinstance(result, dict):
        walk(result)
    return ", ".join(parts)


def fmt_stat(stat: catalog.MetricStat) -> str:
    """``mean ± sd`` (``mean`` alone for one run, – for none)."""
    if stat.mean is None:
        return "–"
    if stat.sd is None:
        return fmt_number(stat.mean, 3)
    return f"{fmt_number(stat.mean, 3)} ± {fmt_number(stat.sd, 2)}"


def fmt_time(value: Any) -> str:
    """A Unix time as UTC ``YYYY-MM-DD HH:MM:SS``, – for none."""
    if value is None:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(value)))


def run_url(run_id: str) -> str:
    """A run's page."""
    return "/runs/" + quote(run_id, safe="/=,.-_")


def api_run_url(run_id: str) -> str:
    """A run's JSON (``GET /api/runs/{id}``)."""
    return "/api" + run_url(run_id)


def is_numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---- the runs table -----------------------------------------------------------------------------------

def varying_keys(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Config keys whose values differ between runs (seed and execution keys left out, derived
    keys too when the others tell the runs apart), in the order ``dis_eval.results`` labels
    configurations."""
    from dis_eval.results import COLUMN_ORDER, NON_CONFIG_KEYS, SEED_KEYS
    from dis_eval.results.grouping import drop_derived_keys

    keys = sorted({k for c in configs for k in c})
    out = [k for k in keys if k.split(".")[-1] not in SEED_KEYS | NON_CONFIG_KEYS
           and len({repr(c.get(k)) for c in configs}) > 1]
    # Keys computed from others (family from model, ...) only when the rest do not tell runs
    # apart: the rule `dis-eval compare` labels its rows by.
    out = drop_derived_keys(out, list(configs))
    return sorted(out, key=lambda k: (COLUMN_ORDER.index(k) if k in COLUMN_ORDER else len(COLUMN_ORDER), k))


def headline_scores(metric_names: Iterable[str]) -> list[str]:
    """The headline scores (``mig``, ``factor_vae``: no field after a dot; labelled by convention
    when the runs hold several, as ``dis-eval compare`` shows them), registry order first."""
    from dis_eval.metrics import REGISTRY
    from dis_eval.results.keys import split_label
    from dis_eval.results.tables import headline_names

    names = headline_names(metric_names)
    rank = {m: i for i, m in enumerate(REGISTRY)}
    return sorted(names, key=lambda n: (rank.get(split_label(n)[1], len(rank)), n))


def default_columns(rows: Sequence[catalog.RunRow]) -> list[str]:
    """What the runs table shows unless columns are chosen: id, status, seed, the config keys
    that vary and the headline scores."""
    varying = varying_keys([r.config for r in rows]) or (["model"] if any("model" in r.config for r in rows) else [])
    return [*catalog.ROW_FIELDS, *varying, *headline_scores({m for r in rows for m in r.metrics})]


def page_filters(request: Request) -> dict[str, str]:
    """The runs page's filters: ``f:<column>=<condition>`` fields (blank ones ignored) and the
    API's ``filter=column:condition`` form."""
    from pipelines.serve.api import parse_filters

    out = parse_filters(request.query_params.getlist("filter"))
    for key, value in request.query_params.multi_items():
        if key.startswith(FILTER_PREFIX) and value.strip():
            out[key[len(FILTER_PREFIX):]] = value.strip()
    return out


def _query(params: dict[str, Any]) -> str:
    """A query string from ``params`` (lists repeat the key; None and False are left out)."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None or value is False or value == "":
            continue
        for v in value if isinstance(value, list) else [value]:
            pairs.append((key, "1" if v is True else str(v)))
    return "?" + urlencode(pairs) if pairs else ""


def runs_context(request: Request) -> dict[str, Any]:
    root = _root(request)
    qp = request.query_params
    filters = page_filters(request)
    sort = qp.get("sort") or None
    desc = qp.get("desc") == "1"
    grouped = qp.get("grouped") == "1"
    everything = catalog.list_runs(root)
    all_columns = catalog.columns(everything)
    chosen = [c for c in qp.getlist("col") if c]
    unknown = [c for c in chosen if c not in all_columns]
    if unknown:
        raise UserError(f"unknown column(s) {', '.join(unknown)}; columns: {', '.join(all_columns)}")
    shown = chosen or default_columns(everything)
    state = {"col": chosen, "grouped": grouped, **{FILTER_PREFIX + k: v for k, v in filters.items()}}

    def sort_link(column: str) -> str:
        return _query({**state, "sort": column, "desc": sort == column and not desc})

    context: dict[str, Any] = {
        "all_columns": all_columns, "shown": shown, "filters": filters, "sort": sort, "desc": desc,
        "grouped": grouped, "n_total": len(everything), "sort_link": sort_link,
        "filter_prefix": FILTER_PREFIX, "numeric": {}, "chosen": chosen,
        # the other view keeps filters and columns; not the sort (run-only columns like id and
        # status do not exist once runs are grouped)
        "toggle_grouped": _query({**state, "grouped": not grouped}),
        "reset": "/" + _query({"grouped": grouped}),
    }
    if grouped:
        groups = catalog.grouped_runs(root, filters, sort, desc)
        keys = list(dict.fromkeys(k for g in groups for k in g.group))
        scores = [c for c in shown if any(c in g.metrics for g in groups)]
        context.update(groups=groups, group_keys=keys, group_scores=scores, fmt_stat=fmt_stat)
    else:
        rows = catalog.list_runs(root, filters, sort, desc) if filters or sort else everything
        context.update(rows=rows, numeric={c: any(is_numeric(r.value(c)) for r in rows) for c in shown})
    return context


@router.get("/", response_class=HTMLResponse)
def runs_page(request: Request) -> HTMLResponse:
    return page(request, "runs.html", lambda: runs_context(request), "Runs")


# ---- parallel coordinates and score vs beta --------------------------------------------------------------

def plot_data(rows: Sequence[catalog.RunRow]) -> dict[str, Any]:
    """What the parallel-coordinates and score-vs-key plots draw: per run its id, seed, the
    varying config keys (the parallel axes) and the headline scores; the numeric keys a score
    can be plotted against (beta also when it does not vary)."""
    from dis_eval.results import BETA_KEYS, LAMBDA_KEYS

    keys = varying_keys([r.config for r in rows])
    scores = headline_scores({m for r in rows for m in r.metrics})
    scored = [r for r in rows if r.metrics]
    # x axes of the score plot: the numeric settings that vary, and beta even where every run
    # has the same one
    axes = [k for k in BETA_KEYS if k not in keys and scored
            and all(is_numeric(r.config.get(k)) for r in scored)]
    runs = [{"id": r.id, "url": run_url(r.id), "seed": r.seed,
             "config": {k: r.config.get(k) for k in [*keys, *axes]},
             "scores": {s: r.metrics.get(s) for s in scores}} for r in scored]
    numeric = [k for k in keys if all(is_numeric(run["config"][k]) for run in runs if run["config"][k] is not None)]
    numeric += [k for k in axes if k not in numeric]
    x_default = next((k for k in (*BETA_KEYS, *LAMBDA_KEYS) if k in numeric), numeric[0] if numeric else None)
    return {"keys": keys, "numeric_keys": numeric, "scores": scores, "runs": runs, "x_default": x_default,
            "unscored": len(rows) - len(scored)}


@router.get("/parallel", response_class=HTMLResponse)
def parallel_page(request: Request) -> HTMLResponse:
    def build() -> dict[str, Any]:
        filters = page_filters(request)
        rows = catalog.list_runs(_root(request), filters)
        from pipelines.serve.api import jsonable

        return {"plot": jsonable(plot_data(rows)), "filters": filters, "filter_prefix": FILTER_PREFIX}

    return page(request, "parallel.html", build, "Parallel coordinates")


# ---- one run ----------------------------------------------------------------------------------------------

def figure_sections(run_id: str, names: Sequence[str]) -> list[dict[str, Any]]:
    """The run's figures in the run page's sections: images to show (a traversal's GIF and
    grid), each with its other formats (PDF) as links; what no section takes goes last."""
    by_stem: dict[str, list[str]] = {}
    for name in names:
        by_stem.setdefault(Path(name).stem, []).append(name)
    base = f"{api_run_url(run_id)}/figures/"
    sections: list[dict[str, Any]] = []
    taken: set[str] = set()
    for prefix, title in (*FIGURE_SECTIONS, ("", "Other figures")):
        items = []
        for stem in sorted(s for s in by_stem if s.startswith(prefix) and s not in taken):
            taken.add(stem)
            files = sorted(by_stem[stem], key=lambda n: (Path(n).suffix.lower() != ".gif", n))
            images = [f for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES]
            # A traversal's GIF animates what its PNG grid shows: show both, the GIF first.
            items.append({"stem": stem, "images": [{"name": f, "url": base + quote(f)} for f in images],
                          "others": [{"name": f, "url": base + quote(f)} for f in files if f not in images]})
        if items:
            sections.append({"title": title, "items": items})
    return sections


def score_blocks(metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A metrics.json as rows: per metric its headline value, other fields, and provenance (how
    it was computed: representation, protocol, data, seed, repeats, settings)."""
    if not metrics:
        return []
    headline = metrics.get("headline") or {}
    scores = metrics.get("scores") or {}
    evaluations = metrics.get("evaluations") or {}
    settings = metrics.get("settings") or {}
    spread = metrics.get("spread") or {}
    out = []
    for name in list(dict.fromkeys([*headline, *scores])):
        fields = scores.get(name) if isinstance(scores.get(name), dict) else {}
        evaluation = evaluations.get(name) or {}
        data = evaluation.get("data") or metrics.get("data") or {}
        out.append({
            "name": name, "value": headline.get(name),
            "fields": {k: v for k, v in fields.items() if is_numeric(v)},
            "spread": spread.get(name),
            "representation": evaluation.get("representation", metrics.get("representation")),
            "protocol": evaluation.get("protocol", metrics.get("protocol")),
            "data": catalog.dataset_label(data.get("source")), "data_source": data.get("source"),
            "subset": data.get("subset"), "rows": data.get("rows"),
            "subset_label": Path(str(data["subset"])).name if data.get("subset") else None,
            "seed": evaluation.get("seed", metrics.get("seed")),
            "repeats": evaluation.get("repeats", metrics.get("repeats")),
            "settings": settings.get(name),
        })
    return out


@router.get("/runs/{run_id:path}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> HTMLResponse:
    def build() -> dict[str, Any]:
        from pipelines.serve.api import jsonable

        detail = catalog.run_detail(_root(request), run_id)
        summary = detail.summary or {}
        rates = summary.get("rate_per_dim")
        return {
            "run": detail, "sections": figure_sections(detail.id, detail.figures),
            "scores": score_blocks(detail.metrics),
            "provenance": {k: (detail.metrics or {}).get(k) for k in ("evaluated_at", "versions", "encoder")},
            "summary_rows": {k: v for k, v in summary.items() if k != "rate_per_dim"},
            "plots": jsonable({"rate": rates if isinstance(rates, list) else None,
                      "rate_term": summary.get("rate_term"), "family": summary.get("family"),
                      "curves": detail.loss_curves.series, "curves_source": detail.loss_curves.source}),
        }

    return page(request, "run.html", build, f"Run {run_id}")


@router.get("/submissions/{submission_id}", response_class=HTMLResponse)
def submission_page(request: Request, submission_id: str) -> HTMLResponse:
    def build() -> dict[str, Any]:
        found = [s for s in catalog.list_submissions(_root(request)) if s.id == submission_id]
        if not found:
            raise catalog.NotFound(f"no scored submission {submission_id!r}")
        sub = found[0]
        metrics = sub.metrics or {}
        return {"sub": sub, "scores": score_blocks(sub.metrics),
                "provenance": {k: metrics.get(k) for k in ("evaluated_at", "versions", "encoder")}}

    return page(request, "submission.html", build, f"Submission {submission_id}")


# ---- compare ------------------------------------------------------------------------------------------------

@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request) -> HTMLResponse:
    def build() -> dict[str, Any]:
        text = request.query_params.get("group_by") or ""
        group_by = [k.strip() for k in text.split(",") if k.strip()] or None
        table = catalog.compare_table(_root(request), group_by)
        return {"table": table, "group_by_text": text, "fmt_stat": fmt_stat,
                "header_rows": table2_header(table.table2_columns)}

    return page(request, "compare.html", build, "Compare")


def table2_header(columns: Sequence[Sequence[str]]) -> list[list[dict[str, Any]]]:
    """The Table 2 layout's column levels (data, score, model) as header rows with spans."""
    if not columns:
        return []
    rows = []
    for level in range(len(columns[0])):
        cells: list[dict[str, Any]] = []
        for col in columns:
            key = tuple(col[: level + 1])
            if cells and cells[-1]["key"] == key:
                cells[-1]["span"] += 1
            else:
                cells.append({"key": key, "text": col[level], "span": 1})
        rows.append(cells)
    return rows


# ---- jobs ---------------------------------------------------------------------------------------------------

@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request) -> HTMLResponse:
    def build() -> dict[str, Any]:
        from pipelines.serve.api import job_json

        queue = request.app.state.queue
        jobs = [job_json(j) for j in queue.list(None, None, JOBS_SHOWN)]
        return {"jobs": jobs, "counts": queue.counts(), "needs_token": request.app.state.settings.needs_token,
                "selected": request.query_params.get("job") or ""}

    return page(request, "jobs.html", build, "Jobs")


# ---- leaderboard -------------------------------------------------------------------------------------------

def provenance_url(row: catalog.LeaderRow) -> str:
    """Where a leaderboard number comes from: its run's or submission's page, at the score."""
    base = run_url(row.id) if row.kind == "run" else f"/submissions/{quote(row.id)}"
    return f"{base}#score-{row.metric}"


@router.get("/leaderboard", response_class=HTMLResponse)
def leaderboard_page(request: Request) -> HTMLResponse:
    def build() -> dict[str, Any]:
        root = _root(request)
        qp = request.query_params
        boards = catalog.leaderboard_boards(root)
        asked = {k: qp.get(k) or None for k in ("data", "subset", "protocol", "metric")}
        if not any(asked.values()) and boards:
            preferred = [b for b in boards if b["metric"] == "factor_vae"] or boards
            asked = dict(preferred[0])
        metric = asked["metric"] or "factor_vae"
        rows = catalog.leaderboard(root, subset=asked["subset"], protocol=asked["protocol"], metric=metric,
                                   data=asked["data"])
        choices = {k: sorted({b[k] for b in boards}) for k in ("data", "subset", "protocol", "metric")}
        return {"boards": boards, "asked": asked, "metric": metric, "rows": rows, "choices": choices,
                "provenance_url": provenance_url, "board_link": lambda b: "/leaderboard" + _query(b)}

    return page(request, "leaderboard.html", build, "Leaderboard")


# ---- submit -------------------------------------------------------------------------------------------------

@router.get("/submit", response_class=HTMLResponse)
def submit_page(request: Request) -> HTMLResponse:
    def build() -> dict[str, Any]:
        from dis_eval.encode.representations import REPRESENTATIONS
        from dis_eval.metrics import PRESETS, REGISTRY
        from dis_eval.models.spec import MODELS
        from pipelines.serve.uploads import UPLOAD_KINDS, data_choices, kind_limit

        settings = request.app.state.settings
        return {"kinds": UPLOAD_KINDS, "data_choices": {k: data_choices(settings, k) for k in UPLOAD_KINDS},
                "limits_mib": {k: kind_limit(settings, k) // (1024 * 1024) for k in UPLOAD_KINDS},
                "metrics": list(REGISTRY), "presets": list(PRESETS), "representations": list(REPRESENTATIONS),
                "models": list(MODELS), "needs_token": settings.needs_token}

    return page(request, "submit.html", build, "Submit")
