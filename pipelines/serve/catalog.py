"""What the service shows, read from the run folders: pure functions (root in, frozen data out)
used by both the JSON API and the pages.

Run folders are read only through ``dis_eval.results`` (``load_run``: config, summary and
metrics via ``RunDir``) and ``dis_eval.run_dir``; scored submissions through
``pipelines.serve.settings.submissions_dir``. A run's id is its folder relative to the root
(posix), so it is stable across restarts and names the folder on disk.

Filters (``list_runs``): ``{column: condition}`` where a column is ``id``, ``status``, ``seed``,
a flattened config key (``beta``, ``model``) or a score (``mig``, ``factor_vae.eval_accuracy``);
a condition is a value (``echo``, ``4``: numbers compare as numbers), ``>x``, ``>=x``, ``<x``,
``<=x``, ``!=x`` or ``~text`` (contains).
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from dis_eval.errors import UserError
from dis_eval.results.keys import flatten, is_number
from dis_eval.run_dir import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, RunDir, read_json_object
from pipelines.serve.settings import SERVICE_DIR, submissions_dir

SUBMISSION_FILE = "submission.json"  # a submission's description (kind, name, files), beside its metrics.json
FIGURE_SUFFIXES: tuple[str, ...] = (".png", ".gif", ".svg", ".jpg", ".jpeg", ".pdf")
FIGURE_MEDIA_TYPES: dict[str, str] = {".png": "image/png", ".gif": "image/gif", ".svg": "image/svg+xml",
                                      ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".pdf": "application/pdf"}
FULL = "full"  # the subset label of the full data set
ROW_FIELDS: tuple[str, ...] = ("id", "status", "seed")  # columns of every RunRow besides config and metrics


class NotFound(UserError):
    """No such run, figure or submission (the API answers 404)."""


Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class RunRow:
    """One run as a table row: flattened config and scores."""

    id: str
    status: str
    config: dict[str, Scalar]
    metrics: dict[str, float | None]
    seed: Any
    group: dict[str, Scalar]
    group_id: str
    figures: list[str]
    problems: list[str] = field(default_factory=list)

    def value(self, column: str) -> Any:
        """The row's value in ``column`` (a row field, a score or a config key), or None."""
        if column in ROW_FIELDS:
            return getattr(self, column)
        if column in self.metrics:
            return self.metrics[column]
        return self.config.get(column)


@dataclass(frozen=True)
class MetricStat:
    """A score over a configuration's seeds: mean, sample sd (ddof=1; None for one run), n."""

    mean: float | None
    sd: float | None
    n: int


@dataclass(frozen=True)
class GroupRow:
    """One configuration (runs that differ only in their seed)."""

    group_id: str
    group: dict[str, Scalar]      # the keys that vary between configurations
    runs: list[str]               # run ids
    seeds: list[Any]
    metrics: dict[str, MetricStat]


@dataclass(frozen=True)
class LossCurves:
    """Training curves: tag -> [[step, value], ...]; ``source`` names where they were read."""

    source: str | None            # "tensorboard" (RUN/tb scalars) or None (no curves found)
    series: dict[str, list[list[float]]]


@dataclass(frozen=True)
class RunDetail:
    """Everything about one run: its config as written, summary, metrics.json (with the
    provenance each score records: versions, time, data, protocol), figures, loss curves."""

    id: str
    status: str
    config: dict[str, Any]
    summary: dict[str, Any] | None
    metrics: dict[str, Any] | None
    scores: dict[str, float]
    figures: list[str]
    loss_curves: LossCurves
    trained: bool
    problems: list[str]


@dataclass(frozen=True)
class CompareRow:
    group: dict[str, Scalar]
    n: int
    seeds: list[Any]
    metrics: dict[str, MetricStat]


@dataclass(frozen=True)
class Table2Cell:
    """A Table 2 cell: ``mean ± sd`` over seeds as the paper prints it, and the paper's number
    where it identifies the setting (None elsewhere)."""

    text: str
    paper: float | None


@dataclass(frozen=True)
class CompareTable:
    """Mean ± sd per configuration, and the paper's Table 2 layout with its numbers beside."""

    group_by: list[str]
    scores: list[str]
    rows: list[CompareRow]
    table2_columns: list[list[str]]          # [data, score, model] per column
    table2_rows: list[str]                   # "β = 1", "λ = 10", ...
    table2_cells: list[list[Table2Cell]]
    table2_note: str
    paper_citation: str
    missing: list[str]


@dataclass(frozen=True)
class LeaderRow:
    """One score on a leaderboard, with where it came from."""

    rank: int
    kind: str                      # "run" | "submission"
    id: str                        # run id, or submission id
    name: str                      # what to show (run id, or the submitter's name)
    model: str | None
    value: float
    metric: str
    data: str
    subset: str
    protocol: str | None
    representation: str | None
    provenance: dict[str, Any]     # versions, evaluated_at, the metric's evaluation entry, settings


# ---- run discovery --------------------------------------------------------------------------------

def _run_folders(root: Path) -> list[Path]:
    """Run folders below ``root`` (folders with a config.yaml), the service's own folder excluded."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder")
    found = []
    for cfg in root.rglob(CONFIG_FILE):
        rel = cfg.relative_to(root)
        if rel.parts and rel.parts[0] == SERVICE_DIR:
            continue
        if RunDir(cfg.parent).is_run():
            found.append(cfg.parent)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def run_id(root: Path, path: Path) -> str:
    """A run's id: its folder relative to ``root``, posix (``.`` when the root is the run)."""
    return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()


def resolve_run(root: Path, run_id: str) -> RunDir:
    """The run folder of ``run_id``; ``NotFound`` for anything that is not a run folder below
    ``root`` (absolute paths, ``..``, symlinks out of the root)."""
    root = Path(root).resolve()
    rel = PurePosixPath(run_id)
    if rel.is_absolute() or ".." in rel.parts or "\\" in run_id or not run_id:
        raise NotFound(f"no run {run_id!r}")
    if rel.parts and rel.parts[0] == SERVICE_DIR:
        raise NotFound(f"no run {run_id!r}")
    path = (root / rel).resolve()
    if path != root and root not in path.parents:
        raise NotFound(f"no run {run_id!r}")
    run = RunDir(path)
    if not run.is_run():
        raise NotFound(f"no run {run_id!r} below the served folder")
    return run


RUN_FILES: tuple[str, ...] = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE)  # all that load_run reads
RUN_CACHE_SIZE = 4096  # runs kept read (a few kB each)


def _files_state(path: Path) -> tuple:
    """(inode, size, modification time) of each file ``load_run`` reads (None when absent): any
    write (the project's are atomic renames), edit, removal or re-creation changes it."""
    out = []
    for name in RUN_FILES:
        try:
            st = os.stat(path / name)
        except FileNotFoundError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class RunCache:
    """Runs as last read, reused while their files are unchanged, so that pages and API calls do
    not parse every run's config and metrics again on each request (a few stat calls a run
    instead). Bounded (least recently used out), safe across the server's threads."""

    def __init__(self, size: int = RUN_CACHE_SIZE) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[Path, tuple[tuple, Any]] = OrderedDict()

    def load(self, path: Path) -> Any:
        """``dis_eval.results.load_run(path)``, from the cache when the files are as they were."""
        state = _files_state(path)
        with self._lock:
            hit = self._entries.get(path)
            if hit is not None and hit[0] == state:
                self._entries.move_to_end(path)
                return hit[1]
        run = _read_run(path)
        if _files_state(path) == state:  # not rewritten while it was read: keep it
            with self._lock:
                self._entries[path] = (state, run)
                self._entries.move_to_end(path)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return run


RUNS = RunCache()


def _read_run(path: Path) -> Any:
    """``dis_eval.results.load_run``; an unreadable config is a run with a problem, not a crash."""
    from dis_eval.results import Run, load_run

    try:
        return load_run(path)
    except UserError as exc:
        return Run(path=path, config={}, metrics=None, summary=None, problems=[str(exc)])


def _load(root: Path, path: Path) -> Any:
    return RUNS.load(Path(path))


def _scalar(value: Any) -> Scalar:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def _group_id(group: dict[str, Any]) -> str:
    return json.dumps({k: _scalar(v) for k, v in sorted(group.items())}, sort_keys=True)


def list_figures(run: RunDir) -> list[str]:
    """The figure files in the run's figures folder (names only, sorted; no links, which could
    point anywhere, and no hidden or temporary files)."""
    if not run.figures.is_dir():
        return []
    return sorted(p.name for p in run.figures.iterdir()
                  if p.is_file() and not p.is_symlink() and p.suffix.lower() in FIGURE_SUFFIXES
                  and not p.name.startswith("."))


def _row(root: Path, run: Any) -> RunRow:
    group = {k: _scalar(v) for k, v in run.group_key().items()} if run.config else {}
    return RunRow(
        id=run_id(root, run.path), status=run.status,
        config={k: _scalar(v) for k, v in flatten(run.config).items()},
        metrics=dict(run.scores()), seed=run.seed, group=group, group_id=_group_id(group),
        figures=list_figures(RunDir(run.path)), problems=list(run.problems))


# ---- filtering and sorting -------------------------------------------------------------------------

def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _matches(value: Any, condition: str) -> bool:
    for op in (">=", "<=", "!=", ">", "<"):
        if condition.startswith(op):
            target = condition[len(op):].strip()
            if op == "!=":
                return not _equal(value, target)
            num = _number(target)
            if num is None:
                raise UserError(f"filter {condition!r}: {op} needs a number")
            if not is_number(value) or (isinstance(value, float) and math.isnan(value)):
                return False
            return {">=": value >= num, "<=": value <= num, ">": value > num, "<": value < num}[op]
    if condition.startswith("~"):
        return condition[1:].lower() in ("" if value is None else str(value)).lower()
    return _equal(value, condition)


def _equal(value: Any, target: str) -> bool:
    if is_number(value):
        num = _number(target)
        return num is not None and float(value) == num
    if value is None:
        return target.lower() in ("none", "null", "")
    if isinstance(value, bool):
        return str(value).lower() == target.lower()
    return str(value) == target


def columns(rows: Sequence[RunRow]) -> list[str]:
    """Every column the rows have: row fields, config keys, then scores."""
    config = sorted({k for r in rows for k in r.config})
    scores = sorted({k for r in rows for k in r.metrics})
    return [*ROW_FIELDS, *config, *scores]


def _sort_key(value: Any) -> tuple:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (1, 0, 0.0, "")
    if is_number(value) or isinstance(value, bool):
        return (0, 0, float(value), "")
    return (0, 1, 0.0, str(value))


def _filter_sort(rows: list[Any], known: list[str], value: Any, filters: dict[str, str] | None,
                 sort: str | None, descending: bool) -> list[Any]:
    for column, condition in (filters or {}).items():
        if column not in known:
            raise UserError(f"unknown column {column!r} to filter on; columns: {', '.join(known)}")
        rows = [r for r in rows if _matches(value(r, column), str(condition))]
    if sort:
        if sort not in known:
            raise UserError(f"unknown column {sort!r} to sort by; columns: {', '.join(known)}")
        present = [r for r in rows if _sort_key(value(r, sort))[0] == 0]
        absent = [r for r in rows if _sort_key(value(r, sort))[0] == 1]
        present.sort(key=lambda r: _sort_key(value(r, sort)), reverse=descending)
        rows = present + absent  # rows without the value last, either way
    return rows


def _all_rows(root: Path) -> list[RunRow]:
    root = Path(root)
    return [_row(root, _load(root, p)) for p in _run_folders(root)]


def list_runs(root: Path, filters: dict[str, str] | None = None, sort: str | None = None,
              descending: bool = False) -> list[RunRow]:
    """Every run below ``root`` (one row each), filtered and sorted (see the module doc)."""
    rows = _all_rows(Path(root))
    return _filter_sort(rows, columns(rows), lambda r, c: r.value(c), filters, sort, descending)


def grouped_runs(root: Path, filters: dict[str, str] | None = None, sort: str | None = None,
                 descending: bool = False) -> list[GroupRow]:
    """Scored runs grouped by configuration (``dis_eval.results.group_runs``: every config key
    but the seed and execution settings, plus the evaluation's representation and protocol),
    with mean, sd and n per score. ``filters`` apply to the runs first; ``sort`` takes a group
    key or a score (its mean)."""
    from dis_eval.results import group_runs

    root = Path(root)
    runs = [_load(root, p) for p in _run_folders(root)]
    rows = {run_id(root, r.path): _row(root, r) for r in runs}
    keep = {r.id for r in _filter_sort(list(rows.values()), columns(list(rows.values())),
                                       lambda r, c: r.value(c), filters, None, False)}
    grouped = group_runs([r for r in runs if run_id(root, r.path) in keep])
    out: list[GroupRow] = []
    for key, members in grouped.groups:
        ids = [run_id(root, m.path) for m in members]
        names = sorted({s for i in ids for s in rows[i].metrics})
        stats = {s: _stat([rows[i].metrics[s] for i in ids if rows[i].metrics.get(s) is not None]) for s in names}
        group = {k: _scalar(key.get(k)) for k in grouped.key_columns}
        out.append(GroupRow(group_id=_group_id({k: _scalar(v) for k, v in key.items()}), group=group,
                            runs=ids, seeds=[m.seed for m in members], metrics=stats))
    known = sorted({k for g in out for k in g.group} | {k for g in out for k in g.metrics}) + ["n"]

    def value(g: GroupRow, c: str) -> Any:
        if c == "n":
            return len(g.runs)
        return g.metrics[c].mean if c in g.metrics else g.group.get(c)

    return _filter_sort(out, known, value, None, sort, descending) if out else out


def _stat(values: Sequence[float]) -> MetricStat:
    from dis_eval.results.tables import mean_sd

    mean, sd = mean_sd(list(values))
    return MetricStat(mean=None if math.isnan(mean) else mean, sd=None if math.isnan(sd) else sd, n=len(values))


# ---- one run ---------------------------------------------------------------------------------------

def run_detail(root: Path, run_id_: str) -> RunDetail:
    """One run: config, summary, metrics.json as written (with provenance), figures, curves."""
    run_dir = resolve_run(root, run_id_)
    run = _load(Path(root), run_dir.path)
    return RunDetail(id=run_id(root, run_dir.path), status=run.status, config=run.config, summary=run.summary,
                     metrics=run.metrics, scores=run.scores(), figures=list_figures(run_dir),
                     loss_curves=loss_curves(run_dir), trained=run_dir.is_trained(), problems=list(run.problems))


def loss_curves(run: RunDir, max_points: int = 2000) -> LossCurves:
    """The training scalars TensorBoard logged in ``RUN/tb`` (``train/*`` losses, per-latent
    rate): tag -> [[step, value]], thinned to at most ``max_points`` each. summary.json holds
    only the final losses, so a run without tb/ has no curves (``source`` None)."""
    if not run.tb.is_dir() or not any(run.tb.rglob("events.out.tfevents.*")):
        return LossCurves(source=None, series={})
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run.tb), size_guidance={"scalars": 0})
    acc.Reload()
    series: dict[str, list[list[float]]] = {}
    for tag in acc.Tags().get("scalars", []):
        events = acc.Scalars(tag)
        stride = max(1, math.ceil(len(events) / max_points))
        series[tag] = [[int(e.step), float(e.value)] for e in events[::stride]]
    return LossCurves(source="tensorboard", series=series)


def figure_path(root: Path, run_id_: str, name: str) -> Path:
    """The file of figure ``name`` of a run: only a name its figures folder lists (no paths)."""
    run = resolve_run(root, run_id_)
    if name not in list_figures(run):
        raise NotFound(f"run {run_id_!r} has no figure {name!r}")
    return run.figures / name


def figure_media_type(name: str) -> str:
    return FIGURE_MEDIA_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


# ---- comparison ------------------------------------------------------------------------------------

def compare_table(root: Path, group_by: Sequence[str] | None = None,
                  scores: Sequence[str] | None = None) -> CompareTable:
    """Mean ± sd over seeds per configuration and the paper's Table 2 layout (built by
    ``dis_eval.results.table2``) with the paper's numbers beside each cell it identifies.

    ``group_by``: config keys whose values make a configuration (default: every config key but
    the seed and execution settings, as ``dis-eval compare`` groups; the keys that vary are shown).
    """
    from dis_eval.results import default_scores, group_runs, missing_report, table2
    from dis_eval.results.comparison import TABLE2_SCORES

    root = Path(root)
    runs = [_load(root, p) for p in _run_folders(root)]
    scored = [r for r in runs if r.has_scores]
    names = list(scores) if scores else default_scores(scored)
    rows: list[CompareRow] = []
    if group_by:
        flat = [flatten(r.config) for r in scored]
        unknown = [k for k in group_by if not any(k in f for f in flat)]
        if unknown and scored:
            raise UserError(f"group_by: no run has config key(s) {', '.join(unknown)}")
        buckets: dict[str, tuple[dict[str, Scalar], list[Any]]] = {}
        for run, f in zip(scored, flat, strict=True):
            key = {k: _scalar(f.get(k)) for k in group_by}
            buckets.setdefault(json.dumps(key, sort_keys=True), (key, []))[1].append(run)
        groups = [buckets[k] for k in sorted(buckets)]
        key_columns = list(group_by)
    else:
        grouped = group_runs(scored)
        groups = [({k: _scalar(key.get(k)) for k in grouped.key_columns}, members)
                  for key, members in grouped.groups]
        key_columns = grouped.key_columns
    for key, members in groups:
        stats = {s: _stat([m.scores()[s] for m in members if s in m.scores()]) for s in names}
        rows.append(CompareRow(group=key, n=len(members), seeds=[m.seed for m in members], metrics=stats))

    t2_cols: list[list[str]] = []
    t2_rows: list[str] = []
    t2_cells: list[list[Table2Cell]] = []
    note = ""
    if scored:
        t2_scores = [s for s in TABLE2_SCORES if s in names] or names[:2]
        try:
            t2 = table2(scored, t2_scores)
        except UserError as exc:
            note = f"Table 2 layout not available: {exc}"
        else:
            t2_cols = [[str(c) for c in col] for col in t2.columns]
            t2_rows = [str(i) for i in t2.index]
            for label, line in zip(t2_rows, t2.itertuples(index=False), strict=True):
                setting = _table2_setting(label)
                t2_cells.append([Table2Cell(text=str(text), paper=_paper_number(setting, col))
                                 for text, col in zip(line, t2_cols, strict=True)])
    else:
        note = "no scored runs yet"
    from dis_eval.reference.paper import PAPER_CITATION

    return CompareTable(group_by=key_columns, scores=names, rows=rows, table2_columns=t2_cols,
                        table2_rows=t2_rows, table2_cells=t2_cells, table2_note=note,
                        paper_citation=PAPER_CITATION, missing=missing_report(runs, names))


def _table2_setting(label: str) -> tuple[float, float] | None:
    """(beta, lambda) of a Table 2 row label as ``dis_eval.results.table2`` writes them."""
    if "," in label:
        return None
    name, _, value = label.partition(" = ")
    num = _number(value)
    if num is None:
        return None
    return (num, 0.0) if name == "β" else (1.0, num) if name == "λ" else None


def _paper_number(setting: tuple[float, float] | None, column: list[str]) -> float | None:
    """The paper's number for a Table 2 cell: full data is its independent-factor set, a
    subset (scored on the full grid, the authors' protocol) its dependent one; models by family."""
    from dis_eval.reference.paper import MODEL_TO_PAPER, PAPER_MODELS, PAPER_TABLE2

    if setting is None:
        return None
    data, score, model = column
    kind = "independent" if data == FULL else "dependent" if data.endswith("(scored on full)") else None
    paper_model = model if model in PAPER_MODELS else MODEL_TO_PAPER.get(model)
    if kind is None or paper_model is None:
        return None
    for row in PAPER_TABLE2:
        if row.setting == setting and (kind, score, paper_model) in row.values:
            return row.values[(kind, score, paper_model)]
    return None


# ---- leaderboard -----------------------------------------------------------------------------------

def dataset_label(source: Any) -> str:
    """The data set a score was computed on: ``dsprites`` (prepared, or its factor grid) or the
    file name of an official-format file."""
    text = str(source or "dsprites")
    if text in ("dsprites", "grid"):
        return "dsprites"
    return Path(text).name


def _entries(metrics: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """(value, evaluation entry) of ``metric`` in a metrics.json, or None."""
    value = (metrics.get("headline") or {}).get(metric)
    if not is_number(value) or math.isnan(float(value)):
        return None
    evaluation = (metrics.get("evaluations") or {}).get(metric) or {}
    data = evaluation.get("data") or metrics.get("data") or {}
    return {
        "value": float(value),
        "data": dataset_label(data.get("source")),
        "subset": FULL if data.get("subset") in (None, "", "full") else str(data.get("subset")),
        "protocol": evaluation.get("protocol", metrics.get("protocol")),
        "representation": evaluation.get("representation", metrics.get("representation")),
        "provenance": {"versions": metrics.get("versions"), "evaluated_at": metrics.get("evaluated_at"),
                       "evaluation": evaluation, "settings": (metrics.get("settings") or {}).get(metric),
                       "encoder": metrics.get("encoder")},
    }


@dataclass(frozen=True)
class Submission:
    """A scored upload: its id (the job's), description and metrics.json."""

    id: str
    info: dict[str, Any]
    metrics: dict[str, Any] | None


def list_submissions(root: Path) -> list[Submission]:
    folder = submissions_dir(Path(root))
    if not folder.is_dir():
        return []
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        info = read_json_object(sub / SUBMISSION_FILE)
        if info is None:
            continue  # still being written (submission.json is written last)
        out.append(Submission(id=sub.name, info=info, metrics=read_json_object(RunDir(sub).metrics)))
    return out


def leaderboard(root: Path, subset: str | None = None, protocol: str | None = None, metric: str = "factor_vae",
                data: str | None = None, descending: bool = True) -> list[LeaderRow]:
    """Every score of ``metric`` (a headline score) by runs and scored submissions on one
    (data set, subset, protocol), best first; None for a filter means any."""
    from dis_eval.metrics import REGISTRY

    if metric not in REGISTRY:
        raise UserError(f"unknown metric {metric!r}; one of {', '.join(REGISTRY)}")
    root = Path(root)
    items: list[tuple[str, str, str, str | None, dict[str, Any]]] = []
    for path in _run_folders(root):
        run = _load(root, path)
        entry = _entries(run.metrics or {}, metric)
        if entry is not None:
            model = run.config.get("model")
            rid = run_id(root, path)
            items.append(("run", rid, rid, None if model is None else str(model), entry))
    for sub in list_submissions(root):
        entry = _entries(sub.metrics or {}, metric)
        if entry is not None:
            items.append(("submission", sub.id, str(sub.info.get("name") or sub.id),
                          sub.info.get("model"), entry))
    rows = [i for i in items
            if (subset is None or i[4]["subset"] == subset) and (protocol is None or i[4]["protocol"] == protocol)
            and (data is None or i[4]["data"] == data)]
    rows.sort(key=lambda i: i[4]["value"], reverse=descending)
    return [LeaderRow(rank=n + 1, kind=kind, id=ident, name=name, model=model, value=e["value"], metric=metric,
                      data=e["data"], subset=e["subset"], protocol=e["protocol"],
                      representation=e["representation"], provenance=e["provenance"])
            for n, (kind, ident, name, model, e) in enumerate(rows)]


def leaderboard_boards(root: Path) -> list[dict[str, str]]:
    """The (data, subset, protocol, metric) combinations that have at least one score."""
    from dis_eval.metrics import REGISTRY

    seen: set[tuple[str, str, str, str]] = set()
    sources = [(_load(Path(root), p).metrics or {}) for p in _run_folders(Path(root))]
    sources += [s.metrics or {} for s in list_submissions(Path(root))]
    for metrics in sources:
        for metric in (metrics.get("headline") or {}):
            if metric in REGISTRY:
                e = _entries(metrics, metric)
                if e is not None:
                    seen.add((e["data"], e["subset"], str(e["protocol"]), metric))
    return [{"data": d, "subset": s, "protocol": p, "metric": m} for d, s, p, m in sorted(seen)]
