"""``dis-eval compare RUNS...``: score tables (mean ± sd over seeds) and score plots.

    dis-eval compare runs/                      # every run folder below runs/
    dis-eval compare runs/a runs/b --out cmp    # named runs, outputs in ./cmp

Reads every run's config.yaml and metrics.json, groups runs by configuration (every config
key except the seed and execution settings such as the device), and writes into --out:
scores.csv (numbers: mean, sd with ddof=1, n per score), scores.md, scores.tex, the paper's
Table 2 layout (table2.csv/.md/.tex: rows beta or lambda settings, columns data set > score >
model, nested as in the paper), missing.txt (runs without metrics, never dropped silently) and plots
(scores_by_config, score_vs_beta, score_vs_lambda; PNG and PDF).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dis_eval import results
from dis_eval.errors import UserError

DEFAULT_OUT = "comparison"


def compare_runs(paths: Sequence[str | Path], out_dir: str | Path, scores: Sequence[str] | None = None,
                 digits: int = 2, plots: bool = True, log: Callable[[str], Any] = print) -> results.CompareOutputs:
    """Tables and plots for the runs in/below ``paths``; prints the tables; returns what was written."""
    runs = results.discover_runs(paths)
    out_dir = Path(out_dir)
    outputs = results.write_comparison(runs, out_dir, scores, digits)
    grouped = results.group_runs(runs)
    n_scored = sum(len(m) for _, m in grouped.groups)
    log(f"{len(runs)} run(s), {n_scored} with scores, {len(grouped.groups)} configuration(s)")
    if n_scored:
        log("\nmean ± sd over seeds (sd: sample, ddof=1; a lone run shows its value)\n")
        log(results.to_markdown(outputs.display))
    if outputs.table2 is not None:
        log("Table 2 layout (rows: beta with lambda = 0, then lambda with beta = 1)\n")
        log(results.table2_markdown(outputs.table2))
    if outputs.table2_note:
        log(outputs.table2_note)
    if outputs.missing:
        log("runs missing metrics (listed, not dropped):")
        for line in outputs.missing:
            log(f"  {line}")
    if plots and n_scored:
        score_names = list(scores) if scores is not None else results.default_scores(
            [r for _, rs in grouped.groups for r in rs])
        outputs.files.update(_plots(grouped, out_dir, score_names, log))
    return outputs


def _plots(grouped: results.Grouped, out_dir: Path, scores: list[str], log: Callable[[str], Any]) -> dict[str, Path]:
    from dis_eval.plots import plot_score_vs_param, plot_scores_by_config

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


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("compare", help="mean ± sd score tables over seeds (CSV, Markdown, LaTeX, Table 2) and plots",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders, or folders containing run folders")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default ./{DEFAULT_OUT})")
    p.add_argument("--scores", default=None,
                   help="comma-separated scores (headline names like mig, or metric.key like factor_vae.eval_accuracy); "
                        "default: every headline score present")
    p.add_argument("--digits", type=int, default=2, help="decimals in the Markdown/LaTeX tables (default 2)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.set_defaults(func=_cmd_compare)


def _cmd_compare(args: argparse.Namespace) -> int:
    if not 0 <= args.digits <= 8:
        raise UserError("--digits must be between 0 and 8")
    scores = [s.strip() for s in args.scores.split(",") if s.strip()] if args.scores else None
    if scores is not None and not scores:
        raise UserError("--scores is empty; name at least one score, e.g. --scores factor_vae,mig")
    outputs = compare_runs(args.runs, args.out, scores, args.digits, plots=not args.no_plots)
    print("\nwritten:")
    for name, path in outputs.files.items():
        print(f"  {name:24s} {path}")
    return 0
