"""Compare runs: score tables (mean ± sd over training seeds, the sd over metric seeds beside it,
the random and oracle baselines, each convention scored in its own labelled column) and score
plots for the runs in or below some folders.

``compare_runs`` is the library function behind ``dis-eval compare`` (its command line is
pipelines/cli/compare.py) and the main job. It reads every run's config and metrics, groups runs
by configuration (every config key except the seed and execution settings such as the device),
and writes into ``out_dir``: scores.csv (numbers: mean, sd with ddof=1, n per score), scores.md,
scores.tex (columns ``dlib:<metric>`` and ``paper:<metric>`` for runs scored under both
conventions; CSV per score: ``_mean``, ``_sd``, ``_n`` over training seeds, ``_sd_metric``,
``_n_metric`` over metric seeds, ``_random``, ``_oracle``), the paper's Table 2 layout (table2.csv/.md/.tex: rows beta or lambda settings,
columns data set > score > model, nested as in the paper), missing.txt (runs without metrics,
never dropped silently) and plots (scores_by_config, score_vs_beta, score_vs_lambda; PNG and PDF).
pandas and matplotlib load only when a comparison runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dis_eval import results
from dis_eval.atomic import remove_temporaries


def compare_runs(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, scores: Sequence[str] | None = None,
                 digits: int = 2, plots: bool = True, log: Callable[[str], Any] = print) -> results.CompareOutputs:
    """Tables and plots for the runs in/below ``paths``; logs the tables; returns what was written
    (``outputs.files``: name -> path, plots included)."""
    runs = results.discover_runs(paths)
    out_dir = Path(out_dir)
    if out_dir.is_dir():
        remove_temporaries(out_dir)  # a killed earlier comparison's (a dead writer's only)
    outputs = results.write_comparison(runs, out_dir, scores, digits)
    grouped = outputs.grouped
    n_scored = sum(len(m) for _, m in grouped.groups)
    log(f"{len(runs)} run(s), {n_scored} with scores, {len(grouped.groups)} configuration(s)")
    if n_scored:
        log("\nmean ± sd over training seeds (sd: sample, ddof=1; n: runs; a lone run shows its value); "
            "sd over metric seeds (--repeats) and the random / oracle baselines in their own columns\n")
        log(results.to_markdown(outputs.display))
    if outputs.table2 is not None:
        log("Table 2 layout (rows: beta with lambda = 0, then lambda with beta = 1)\n")
        log(results.table2_markdown(outputs.table2))
    if outputs.table2_note:
        log(outputs.table2_note)
    from dis_eval.reference.three_way import write_three_way  # yours, the reference runs, the paper

    outputs.files.update(write_three_way(runs, out_dir, outputs.scores, digits=digits, log=log))
    if outputs.missing:
        log("runs missing metrics (listed, not dropped):")
        for line in outputs.missing:
            log(f"  {line}")
    if plots and n_scored:
        outputs.files.update(_plots(grouped, out_dir, outputs.scores, log))
    return outputs


def _plots(grouped: results.Grouped, out_dir: Path, scores: list[str], log: Callable[[str], Any]) -> dict[str, Path]:
    """The score plots (PNG and PDF) into ``out_dir``; returns name -> path."""
    from dis_eval.plots.scores import plot_score_vs_param, plot_scores_by_config

    long = results.long_scores(grouped, scores)
    files: dict[str, Path] = {}
    if long.empty:
        return files
    present = [s for s in scores if s in set(long["score"])]
    for p in plot_scores_by_config(long, out_dir / "scores_by_config", present):
        files[f"scores_by_config_{p.suffix[1:]}"] = p
    beta_runs = long[(long["lambda"] == 0) & long["beta"].notna()]
    if not beta_runs.empty:
        for p in plot_score_vs_param(beta_runs, out_dir / "score_vs_beta", present, "beta", "beta (lambda = 0)"):
            files[f"score_vs_beta_{p.suffix[1:]}"] = p
    lam_runs = long[long["beta"] == 1.0]
    if (lam_runs["lambda"] > 0).any():
        for p in plot_score_vs_param(lam_runs, out_dir / "score_vs_lambda", present, "lambda", "TC weight lambda (beta = 1)"):
            files[f"score_vs_lambda_{p.suffix[1:]}"] = p
    else:
        log("no runs with a TC weight (lambda > 0): score_vs_lambda not drawn")
    return files
