"""Score tables: mean ± sd (ddof=1) of each score over a configuration's seeds, and formatted cells.

pandas is imported inside the functions that build frames, so importing this module is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from dis_eval.results.axes import BETA_KEYS, LAMBDA_KEYS, MODEL_KEYS, data_label, first_key
from dis_eval.results.keys import flatten, split_label

if TYPE_CHECKING:
    import pandas as pd

    from dis_eval.results.grouping import Grouped
    from dis_eval.results.runs import Run

# long_scores' columns: one row per (run, score); the score plots (dis_eval.plots.scores) read them.
LONG_COLUMNS: tuple[str, ...] = ("config", "run", "seed", "model", "data", "beta", "lambda", "score", "value")


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


# Columns of score_table per score, besides mean/sd/n over training seeds: the sd over metric
# seeds (--repeats) and its n, and the random and oracle baselines. Never mixed with the sd
# over training seeds (docs/reading-scores.md, "Two spreads").
EXTRA_PARTS: tuple[str, ...] = ("sd_metric", "n_metric", "random", "oracle")


def headline_names(names: Iterable[str]) -> list[str]:
    """The headline scores among ``names`` (no ``.`` field): labelled by convention (``dlib:mig``,
    ``paper:mig``; metric first, then the conventions in their order) when the runs record more
    than one convention, else the bare names (one convention needs no label); sorted."""
    from dis_eval.config.evaluation import CONVENTIONS

    heads = {k for k in names if "." not in k}
    labelled = {k for k in heads if split_label(k)[0] is not None}
    bare = heads - labelled
    if len({split_label(k)[0] for k in labelled}) <= 1 and {split_label(k)[1] for k in labelled} <= bare:
        return sorted(bare)
    order = {c: i for i, c in enumerate(CONVENTIONS)}

    def key(name: str) -> tuple:
        conv, metric = split_label(name)
        return (metric, order.get(conv, len(order)), conv)

    return sorted(labelled, key=key)


def default_scores(runs: Sequence[Run]) -> list[str]:
    """Headline scores present in any run (see :func:`headline_names`)."""
    return headline_names(k for r in runs for k in r.scores())


def _pooled_metric_sd(members: Sequence[Run], score: str) -> tuple[float, int]:
    """The sd over metric seeds, pooled over a configuration's runs (root mean variance), and
    the number of metric seeds (the smallest among the runs); (NaN, 0) without repeats."""
    spreads = [sp for sp in (r.metric_seed_spread(score) for r in members) if sp is not None]
    if not spreads:
        return math.nan, 0
    return math.sqrt(sum(sd * sd for sd, _ in spreads) / len(spreads)), min(n for _, n in spreads)


def _baseline(members: Sequence[Run], score: str, kind: str) -> float:
    """A configuration's baseline (the same for runs of the same data, settings and seeds;
    their mean if they differ, e.g. in the number of latents); NaN when none was recorded."""
    vals = [v for v in (r.baselines(score).get(kind) for r in members) if v is not None]
    return sum(vals) / len(vals) if vals else math.nan


def score_table(grouped: Grouped, scores: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per configuration: its varying keys, ``n`` (runs), ``seeds``, and per score
    ``<score>_mean``, ``<score>_sd`` and ``<score>_n`` (over training seeds: runs that have
    that score), ``<score>_sd_metric`` and ``<score>_n_metric`` (over metric seeds, pooled over
    the runs; NaN and 0 without ``--repeats``), ``<score>_random`` and ``<score>_oracle`` (the
    baselines; NaN when not recorded)."""
    import pandas as pd

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
            row[f"{s}_sd_metric"], row[f"{s}_n_metric"] = _pooled_metric_sd(members, s)
            row[f"{s}_random"] = _baseline(members, s, "random")
            row[f"{s}_oracle"] = _baseline(members, s, "oracle")
        rows.append(row)
    columns = list(grouped.key_columns) + ["n", "seeds"]
    columns += [f"{s}_{part}" for s in scores for part in ("mean", "sd", "n", *EXTRA_PARTS)]
    return pd.DataFrame(rows, columns=columns)


def format_cell(mean: float, sd: float | None, n: int | None = None, digits: int = 2, latex: bool = False) -> str:
    """``0.83 ± 0.02``; a single run shows its value alone; no runs show ``–``."""
    if n == 0 or (isinstance(mean, float) and math.isnan(mean)):
        return "–" if not latex else "--"
    pm = r" $\pm$ " if latex else " ± "
    if sd is None or (isinstance(sd, float) and math.isnan(sd)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f}{pm}{sd:.{digits}f}"


def display_table(table: pd.DataFrame, scores: Sequence[str], digits: int = 2, latex: bool = False) -> pd.DataFrame:
    """Key columns, ``n`` (training seeds) and per score a ``mean ± sd`` column (sd over
    training seeds), then - only where some run recorded them - ``<score> sd over metric
    seeds`` (``sd (n=...)``) and ``<score> random / oracle`` (the baselines), as strings."""
    key_cols = [c for c in table.columns if not any(c.startswith(f"{s}_") for s in scores) and c != "seeds"]
    out = table[key_cols].copy()
    dash = "--" if latex else "–"
    for s in scores:
        out[s] = [
            format_cell(m, sd, n, digits, latex)
            for m, sd, n in zip(table[f"{s}_mean"], table[f"{s}_sd"], table[f"{s}_n"], strict=True)
        ]
        if (table[f"{s}_n_metric"] > 0).any():
            out[f"{s} sd over metric seeds"] = [
                f"{sd:.{digits + 1}f} (n={int(n)})" if n > 0 else dash
                for sd, n in zip(table[f"{s}_sd_metric"], table[f"{s}_n_metric"], strict=True)]
        if table[[f"{s}_random", f"{s}_oracle"]].notna().any(axis=None):
            out[f"{s} random / oracle"] = [
                f"{_fmt(r, digits, dash)} / {_fmt(o, digits, dash)}"
                for r, o in zip(table[f"{s}_random"], table[f"{s}_oracle"], strict=True)]
    return out


def _fmt(value: float, digits: int, dash: str) -> str:
    return dash if value is None or math.isnan(value) else f"{value:.{digits}f}"


def config_label(key: dict[str, Any], columns: Sequence[str]) -> str:
    """``beta=4, family=vae`` from a group key and the columns that vary."""
    parts = [f"{c.split('.')[-1] if c.startswith('eval.') else c}={key.get(c)}" for c in columns
             if key.get(c) is not None]
    return ", ".join(parts) or "all runs"


def long_scores(grouped: Grouped, scores: Sequence[str]) -> pd.DataFrame:
    """One row per (run, score), columns ``LONG_COLUMNS``: config label, run, seed, model,
    data, beta, lambda, score, value."""
    import pandas as pd

    rows = []
    for key, members in grouped.groups:
        label = config_label(key, grouped.key_columns)
        for run in members:
            flat = flatten(run.config)
            mkey, bkey, lkey = (first_key(flat, k) for k in (MODEL_KEYS, BETA_KEYS, LAMBDA_KEYS))
            lam = flat.get(lkey) if lkey else None
            for s in scores:
                value = run.scores().get(s)
                if value is None:
                    continue
                rows.append({
                    "config": label, "run": str(run.path), "seed": run.seed,
                    "model": str(flat[mkey]) if mkey else "?", "data": data_label(run),
                    "beta": float(flat[bkey]) if bkey and flat[bkey] is not None else math.nan,
                    "lambda": float(lam) if lam is not None else 0.0,
                    "score": s, "value": value,
                })
    return pd.DataFrame(rows, columns=list(LONG_COLUMNS))
