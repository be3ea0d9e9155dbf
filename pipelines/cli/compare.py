"""``dis-eval compare RUNS...``: score tables (mean ± sd over training seeds; the sd over metric
seeds and the random / oracle baselines in columns of their own; one column per convention
scored, e.g. dlib:mig and paper:mig) and score plots.

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
from typing import Any

from dis_eval.errors import UserError
from pipelines.cli.common import add_out

DEFAULT_OUT = "comparison"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("compare", help="mean ± sd score tables over seeds (CSV, Markdown, LaTeX, Table 2) and plots",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders, or folders containing run folders")
    add_out(p, f"output folder (default ./{DEFAULT_OUT})", default=DEFAULT_OUT)
    p.add_argument("--scores", default=None,
                   help="comma-separated scores (headline names like mig, or metric.key like factor_vae.eval_accuracy); "
                        "default: every headline score present")
    p.add_argument("--digits", type=int, default=2, help="decimals in the Markdown/LaTeX tables (default 2)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.compare import compare_runs

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
