"""Run folders, their ``metrics.json`` and grouping runs into score tables.

A run folder (see ARCHITECTURE.md) holds ``config.yaml`` (the resolved training config),
``summary.json`` (training status) and, once scored, ``metrics.json``. Runs that differ
only in their seed form one *configuration*; a table reports the mean and the sample
standard deviation (ddof=1) of each score over a configuration's seeds, as the paper's
Table 2 reports "mean of ten runs" (Brekelmans et al. 2019, Sec. 5.3).

Runs without scores are never dropped silently: :func:`missing_report` lists them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dis_eval.errors import UserError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
SUMMARY_FILE = "summary.json"

# Config keys that identify a replicate rather than a configuration, or only say where or
# how a run was executed: they are left out of the grouping key. Matched on the last
# component of a flattened key (``train.seed`` counts as a seed).
SEED_KEYS: frozenset[str] = frozenset({"seed"})
NON_CONFIG_KEYS: frozenset[str] = frozenset(
    {"run_dir", "out", "out_dir", "output_dir", "name", "run_name", "resume", "progress",
     # pipelines.config.TrainConfig's execution knobs and bookkeeping (not the experiment)
     "device", "device_used", "version", "checkpoint_every", "log_every", "channels_last",
     "compile", "cuda_graph", "tf32", "num_workers"}
)
# Evaluation fields of metrics.json that make a score a different quantity: part of the key.
EVAL_KEYS: tuple[str, ...] = ("representation", "protocol")

# Candidate config keys (flattened, dot-separated) for the Table-2 axes, first match wins.
# pipelines.config.TrainConfig writes flat keys: family (echo|vae), beta, tc_weight, subset.
MODEL_KEYS: tuple[str, ...] = ("family", "model.family", "model_family", "model")
BETA_KEYS: tuple[str, ...] = ("beta", "loss.beta", "model.beta")
LAMBDA_KEYS: tuple[str, ...] = ("tc_weight", "lambda_tc", "lambda", "loss.tc_weight", "gamma")
DATA_KEYS: tuple[str, ...] = ("subset", "data.subset", "data_subset")


@dataclass
class Run:
    """One run folder as read from disk."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    summary: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.summary is None:
            return "no summary.json"
        return str(self.summary.get("status", "unknown"))

    @property
    def seed(self) -> Any:
        flat = flatten(self.config)
        for key, value in flat.items():
            if key.split(".")[-1] in SEED_KEYS:
                return value
        return None

    @property
    def has_scores(self) -> bool:
        return self.metrics is not None and bool(self.scores())

    def scores(self) -> dict[str, float]:
        """Flat scores: ``metric`` (headline) and ``metric.key`` (every numeric field)."""
        if self.metrics is None:
            return {}
        out: dict[str, float] = {}
        for metric, value in (self.metrics.get("headline") or {}).items():
            if _is_number(value):
                out[str(metric)] = float(value)
        for metric, fields in (self.metrics.get("scores") or {}).items():
            if isinstance(fields, dict):
                for key, value in fields.items():
                    if _is_number(value):
                        out[f"{metric}.{key}"] = float(value)
        return out

    def group_key(self) -> dict[str, Any]:
        """Everything that defines the configuration: config minus seed and run-only keys,
        plus the evaluation representation and protocol from metrics.json."""
        key = {
            k: _hashable(v)
            for k, v in flatten(self.config).items()
            if k.split(".")[-1] not in SEED_KEYS | NON_CONFIG_KEYS
        }
        if self.metrics is not None:
            for name in EVAL_KEYS:
                if name in self.metrics:
                    key[f"eval.{name}"] = _hashable(self.metrics[name])
        return key


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dot-separated keys."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_json(path: Path, problems: list[str]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        problems.append(f"unreadable {path.name}: {exc}")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path.name} is not a JSON object")
        return None
    return value


def load_run(path: str | Path) -> Run:
    """Read one run folder (config.yaml required; metrics.json and summary.json optional)."""
    path = Path(path)
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise UserError(f"{path} is not a run folder (no {CONFIG_FILE}); pass run folders or folders containing them")
    try:
        with open(cfg_path, encoding="utf-8") as fh:
            config = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{cfg_path} is not valid YAML ({exc}); fix or remove that run") from exc
    if not isinstance(config, dict):
        raise UserError(f"{cfg_path} must hold a mapping of config keys, got {type(config).__name__}")
    problems: list[str] = []
    metrics = _read_json(path / METRICS_FILE, problems)
    summary = _read_json(path / SUMMARY_FILE, problems)
    return Run(path=path, config=config, metrics=metrics, summary=summary, problems=problems)


def discover_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Run folders named in ``paths``, or found below them (any folder with config.yaml)."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise UserError(f"{p} does not exist; pass run folders or a folder containing them")
        if (p / CONFIG_FILE).is_file():
            found.append(p)
            continue
        below = sorted(c.parent for c in p.rglob(CONFIG_FILE))
        if not below:
            raise UserError(f"no run folders (with {CONFIG_FILE}) in {p}")
        found.extend(below)
    unique = sorted({f.resolve(): f for f in found}.values(), key=lambda f: str(f))
    return [load_run(f) for f in unique]


@dataclass
class Grouped:
    """Runs grouped by configuration: ``key_columns`` are the config keys that vary."""

    groups: list[tuple[dict[str, Any], list[Run]]]
    key_columns: list[str]
    missing: list[Run]


def group_runs(runs: Sequence[Run]) -> Grouped:
    """Group scored runs by configuration (all config keys but the seed)."""
    scored = [r for r in runs if r.has_scores]
    missing = [r for r in runs if not r.has_scores]
    buckets: dict[tuple, tuple[dict[str, Any], list[Run]]] = {}
    for run in scored:
        key = run.group_key()
        frozen = tuple(sorted(key.items(), key=lambda kv: kv[0]))
        buckets.setdefault(frozen, (key, []))[1].append(run)
    groups = list(buckets.values())
    all_keys = sorted({k for key, _ in groups for k in key})
    # Only keys that differ between configurations label the rows; constant ones are noise.
    varying = [k for k in all_keys if len({repr(key.get(k)) for key, _ in groups}) > 1]
    varying = _drop_derived(varying, [key for key, _ in groups])
    varying.sort(key=lambda k: (COLUMN_ORDER.index(k) if k in COLUMN_ORDER else len(COLUMN_ORDER), k))
    groups.sort(key=lambda g: tuple(_sort_value(g[0].get(k)) for k in varying))
    return Grouped(groups=groups, key_columns=varying, missing=missing)


# Row-label columns first in this order (the rest alphabetically after them).
COLUMN_ORDER: tuple[str, ...] = ("model", "family", "beta", "lambda_tc", "gamma", "tc_weight", "data", "subset",
                                 "latents", "steps")

# Keys the trainer derives from others (pipelines.config.DERIVED_KEYS): dropped from the row
# labels when the remaining keys already tell the configurations apart.
DERIVED_KEYS: tuple[str, ...] = ("family", "tc_weight", "step_unit", "effective_echo_terms", "echo_clip",
                                 "d_max", "version")


def _drop_derived(columns: list[str], keys: list[dict[str, Any]]) -> list[str]:
    cols = list(columns)
    n_groups = len({tuple(repr(k.get(c)) for c in cols) for k in keys})
    for c in DERIVED_KEYS:
        if c in cols:
            rest = [x for x in cols if x != c]
            if rest and len({tuple(repr(k.get(x)) for x in rest) for k in keys}) == n_groups:
                cols = rest
    return cols


def _sort_value(v: Any) -> tuple:
    if v is None:
        return (0, 0, "")
    if _is_number(v):
        return (1, float(v), "")
    return (2, 0, str(v))


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var)


def default_scores(runs: Sequence[Run]) -> list[str]:
    """Headline scores present in any run (metric names without a ``.``), sorted."""
    names = {k for r in runs for k in r.scores() if "." not in k}
    return sorted(names)


def score_table(grouped: Grouped, scores: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per configuration: its varying keys, ``n`` (runs), ``seeds``, and per score
    ``<score>_mean``, ``<score>_sd`` and ``<score>_n`` (runs that have that score)."""
    runs = [r for _, rs in grouped.groups for r in rs]
    scores = list(scores) if scores is not None else default_scores(runs)
    rows = []
    for key, members in grouped.groups:
        row: dict[str, Any] = {k: key.get(k) for k in grouped.key_columns}
        row["n"] = len(members)
        row["seeds"] = ",".join(str(r.seed) for r in members)
        for s in scores:
            vals = [r.scores()[s] for r in members if s in r.scores()]
            m, sd = mean_sd(vals)
            row[f"{s}_mean"], row[f"{s}_sd"], row[f"{s}_n"] = m, sd, len(vals)
        rows.append(row)
    columns = list(grouped.key_columns) + ["n", "seeds"]
    columns += [f"{s}_{part}" for s in scores for part in ("mean", "sd", "n")]
    return pd.DataFrame(rows, columns=columns)


def format_cell(mean: float, sd: float, n: int | None = None, digits: int = 2, latex: bool = False) -> str:
    """``0.83 ± 0.02``; a single run shows its value alone; no runs show ``–``."""
    if n == 0 or (isinstance(mean, float) and math.isnan(mean)):
        return "–" if not latex else "--"
    pm = r" $\pm$ " if latex else " ± "
    if sd is None or (isinstance(sd, float) and math.isnan(sd)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f}{pm}{sd:.{digits}f}"


def display_table(table: pd.DataFrame, scores: Sequence[str], digits: int = 2, latex: bool = False) -> pd.DataFrame:
    """Key columns, ``n`` and one ``mean ± sd`` column per score, as strings."""
    key_cols = [c for c in table.columns if not any(c.startswith(f"{s}_") for s in scores) and c != "seeds"]
    out = table[key_cols].copy()
    for s in scores:
        out[s] = [
            format_cell(m, sd, n, digits, latex)
            for m, sd, n in zip(table[f"{s}_mean"], table[f"{s}_sd"], table[f"{s}_n"], strict=True)
        ]
    return out


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (no external ``tabulate`` dependency)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt_plain(v) for v in row.tolist()) + " |")
    return "\n".join(lines) + "\n"


def _fmt_plain(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _latex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        s = s.replace(a, b)
    return s


def to_latex(df: pd.DataFrame, caption: str | None = None) -> str:
    """A booktabs ``tabular`` (cells already formatted; ``$\\pm$`` left unescaped)."""
    cols = [str(c) for c in df.columns]
    lines = [r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule"]
    lines.append(" & ".join(_latex_escape(c) for c in cols) + r" \\")
    lines.append(r"\midrule")
    for _, row in df.iterrows():
        cells = []
        for v in row.tolist():
            s = _fmt_plain(v)
            cells.append(s if "$" in s else _latex_escape(s))
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines = [r"% " + caption] + lines
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- Table 2


def _first_key(flat: dict[str, Any], candidates: Sequence[str]) -> str | None:
    for c in candidates:
        if c in flat:
            return c
    return None


def _subset_name(subset: Any) -> str | None:
    if subset in (None, "", "none", "full"):
        return None
    return Path(str(subset)).stem if str(subset).endswith((".h5", ".hdf5")) else str(subset)


def _data_label(run: Run) -> str:
    """The training data, as the paper's Table 2 columns mean it: ``full`` or the subset's
    name/recipe; a subset-trained run scored on the full grid (the authors' protocol) is
    labelled ``<subset> (scored on full)`` so it never mixes with subset-scored runs."""
    flat = flatten(run.config)
    key = _first_key(flat, DATA_KEYS)
    trained = _subset_name(flat.get(key)) if key else None
    if trained is None:
        return "full"
    if (run.metrics or {}).get("protocol") == "full":
        return f"{trained} (scored on full)"
    return trained


def table2(runs: Sequence[Run], scores: Sequence[str] = ("factor_vae", "mig"), digits: int = 2,
           latex: bool = False) -> pd.DataFrame:
    """The paper's Table 2 layout: rows are beta settings (lambda = 0) then lambda settings
    (beta = 1), so the (beta=1, lambda=0) runs appear in both blocks as in the paper;
    columns are (data set, score, model), nested in that order as in the paper (independent |
    dependent ground truth, then Factor | MIG, then Echo | VAE); cells ``mean ± sd`` over seeds.

    Runs whose config has neither a beta nor a model key cannot be placed and raise
    ``UserError``; runs with beta != 1 and lambda != 0 get their own ``β=…, λ=…`` rows.
    """
    scored = [r for r in runs if r.has_scores]
    if not scored:
        raise UserError("no scored runs (metrics.json) to build Table 2 from; run `dis-eval evaluate` first")
    cells: dict[tuple[str, tuple[str, str, str]], list[float]] = {}
    row_order: dict[str, tuple] = {}
    col_set: set[tuple[str, str, str]] = set()
    for run in scored:
        flat = flatten(run.config)
        mkey, bkey = _first_key(flat, MODEL_KEYS), _first_key(flat, BETA_KEYS)
        if mkey is None or bkey is None:
            raise UserError(
                f"{run.path}: config.yaml has no model/beta key (looked for {MODEL_KEYS[:3]} and "
                f"{BETA_KEYS[:2]}); use the plain table (`--layout configs`)"
            )
        lkey = _first_key(flat, LAMBDA_KEYS)
        model, beta = str(flat[mkey]), float(flat[bkey])
        lam = float(flat[lkey]) if lkey is not None and flat[lkey] is not None else 0.0
        labels: list[tuple[str, tuple]] = []
        if lam == 0.0:
            labels.append((f"β = {beta:g}", (0, beta, 0.0)))
        if beta == 1.0:
            labels.append((f"λ = {lam:g}", (1, lam, 0.0)))
        if not labels:
            labels.append((f"β = {beta:g}, λ = {lam:g}", (2, beta, lam)))
        data = _data_label(run)
        run_scores = run.scores()
        for s in scores:
            if s not in run_scores:
                continue
            col = (data, s, model)
            col_set.add(col)
            for label, order in labels:
                row_order[label] = order
                cells.setdefault((label, col), []).append(run_scores[s])
    # Columns: full data before subsets, scores in the order given, Echo before VAE.
    def col_sort(c: tuple[str, str, str]) -> tuple:
        return (c[0] != "full", c[0], list(scores).index(c[1]), c[2] != "echo", c[2])

    cols = sorted(col_set, key=col_sort)
    rows = sorted(row_order, key=lambda r: row_order[r])
    body = []
    for r in rows:
        line = []
        for c in cols:
            vals = cells.get((r, c), [])
            m, sd = mean_sd(vals)
            line.append(format_cell(m, sd, len(vals), digits, latex))
        body.append(line)
    index = pd.Index(rows, name="setting")
    return pd.DataFrame(body, index=index, columns=pd.MultiIndex.from_tuples(cols, names=["data", "score", "model"]))


def table2_markdown(t2: pd.DataFrame) -> str:
    flat = t2.copy()
    flat.columns = [" / ".join(c) for c in t2.columns]
    flat = flat.reset_index()
    return to_markdown(flat)


def table2_latex(t2: pd.DataFrame) -> str:
    """LaTeX with a three-level header (data set, score, model) as in the paper."""
    cols = list(t2.columns)
    lines = [r"\begin{tabular}{l" + "c" * len(cols) + "}", r"\toprule"]
    for level in range(3):
        cells, i = [], 0
        while i < len(cols):
            j = i
            prefix = cols[i][: level + 1]
            while j < len(cols) and cols[j][: level + 1] == prefix:
                j += 1
            name = _latex_escape(str(cols[i][level]))
            cells.append(name if j - i == 1 else rf"\multicolumn{{{j - i}}}{{c}}{{{name}}}")
            i = j
        lines.append(("setting" if level == 0 else "") + " & " + " & ".join(cells) + r" \\")
    lines.append(r"\midrule")
    for label, row in t2.iterrows():
        lab = str(label).replace("β", r"$\beta$").replace("λ", r"$\lambda$")
        lines.append(lab + " & " + " & ".join(str(v) for v in row.tolist()) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- missing


def missing_report(runs: Sequence[Run], scores: Sequence[str] | None = None) -> list[str]:
    """One line per run without metrics.json (with its training status), per run missing a
    requested score, and per unreadable file."""
    lines = []
    for r in runs:
        for p in r.problems:
            lines.append(f"{r.path}: {p}")
        if not r.has_scores:
            lines.append(f"{r.path}: no scores (metrics.json missing or empty; training status: {r.status})")
        elif scores:
            absent = [s for s in scores if s not in r.scores()]
            if absent:
                lines.append(f"{r.path}: metrics.json lacks {', '.join(absent)}")
    return lines


@dataclass
class CompareOutputs:
    table: pd.DataFrame
    display: pd.DataFrame
    table2: pd.DataFrame | None
    missing: list[str]
    files: dict[str, Path]
    table2_note: str = ""


def write_comparison(runs: Sequence[Run], out_dir: str | Path, scores: Sequence[str] | None = None,
                     digits: int = 2, with_table2: bool = True) -> CompareOutputs:
    """Write ``scores.csv`` (numbers), ``scores.md``, ``scores.tex``, ``missing.txt`` and,
    when the configs carry model/beta keys, ``table2.{csv,md,tex}`` into ``out_dir``."""
    out_dir = Path(out_dir)
    grouped = group_runs(runs)
    scored = [r for _, rs in grouped.groups for r in rs]
    scores = list(scores) if scores is not None else default_scores(scored)
    table = score_table(grouped, scores)
    disp = display_table(table, scores, digits)
    files: dict[str, Path] = {}
    files["csv"] = out_dir / "scores.csv"
    write_text_atomic(files["csv"], table.to_csv(index=False))
    files["md"] = out_dir / "scores.md"
    write_text_atomic(files["md"], to_markdown(disp))
    files["tex"] = out_dir / "scores.tex"
    write_text_atomic(files["tex"], to_latex(display_table(table, scores, digits, latex=True),
                                             caption="mean ± sd over seeds"))
    t2, note = None, ""
    if with_table2 and scored:
        t2_scores = [s for s in ("factor_vae", "mig") if s in scores] or scores[:2]
        try:
            t2 = table2(scored, t2_scores, digits)
        except UserError as exc:  # configs without model/beta keys: the plain table still stands
            note = f"Table 2 layout not written: {exc}"
        if t2 is not None:
            files["table2_csv"] = out_dir / "table2.csv"
            write_text_atomic(files["table2_csv"], t2.to_csv())
            files["table2_md"] = out_dir / "table2.md"
            write_text_atomic(files["table2_md"], table2_markdown(t2))
            files["table2_tex"] = out_dir / "table2.tex"
            write_text_atomic(files["table2_tex"], table2_latex(table2(scored, t2_scores, digits, latex=True)))
    missing = missing_report(runs, scores)
    files["missing"] = out_dir / "missing.txt"
    write_text_atomic(files["missing"], "".join(m + "\n" for m in missing) or "none: every run has scores\n")
    return CompareOutputs(table=table, display=disp, table2=t2, missing=missing, files=files, table2_note=note)


# ----------------------------------------------------------------------------- long form


def config_label(key: dict[str, Any], columns: Sequence[str]) -> str:
    """``beta=4, family=vae`` from a group key and the columns that vary."""
    parts = [f"{c.split('.')[-1] if c.startswith('eval.') else c}={key.get(c)}" for c in columns
             if key.get(c) is not None]
    return ", ".join(parts) or "all runs"


def long_scores(grouped: Grouped, scores: Sequence[str]) -> pd.DataFrame:
    """One row per (run, score): config label, run, seed, model, data, beta, lambda, score, value."""
    rows = []
    for key, members in grouped.groups:
        label = config_label(key, grouped.key_columns)
        for run in members:
            flat = flatten(run.config)
            mkey, bkey, lkey = (_first_key(flat, k) for k in (MODEL_KEYS, BETA_KEYS, LAMBDA_KEYS))
            lam = flat.get(lkey) if lkey else None
            for s in scores:
                value = run.scores().get(s)
                if value is None:
                    continue
                rows.append({
                    "config": label, "run": str(run.path), "seed": run.seed,
                    "model": str(flat[mkey]) if mkey else "?", "data": _data_label(run),
                    "beta": float(flat[bkey]) if bkey and flat[bkey] is not None else np.nan,
                    "lambda": float(lam) if lam is not None else 0.0,
                    "score": s, "value": value,
                })
    return pd.DataFrame(rows, columns=["config", "run", "seed", "model", "data", "beta", "lambda", "score", "value"])
