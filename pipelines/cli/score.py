"""``dis-eval score``: the metric suite on precomputed codes.

    dis-eval score codes.npz                                   # against dSprites' factor grid
    dis-eval score codes.npz --subset authors --metrics mig --repeats 5
    dis-eval score codes.npz --factors factors.npz             # against your own factor classes

A codes file (``.npz``, read without pickles) holds ``codes`` (one row per data row, in the
data set's row order) and optionally ``rows`` (the rows' indices in the official full
ordering) and ``aux`` + ``family`` (echo|vae) + ``d_max`` for ``--representation sample``.
``--factors`` scores against a file of your own factor classes, one row per code.
"""

from __future__ import annotations

import argparse
from typing import Any

from dis_eval.errors import UserError
from pipelines.cli.common import (
    add_data,
    add_out,
    add_scoring,
    add_subset,
    eval_config,
    print_scores,
)


def register(subparsers: Any) -> None:
    s = subparsers.add_parser("score", help="score precomputed codes (.npz with codes[, rows, aux, family])",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("codes", help="the codes .npz file")
    add_data(s, "grid (dSprites' factors only, default), dsprites, or an official-format file", default="grid")
    add_subset(s)
    s.add_argument("--factors", metavar="FILE", help="your own factor classes (.npz: factors (N, F), one row "
                   "per code; optional factor_names) instead of dSprites'")
    add_scoring(s, protocol=False)
    add_out(s, "also write the result to this metrics.json (merged, atomic)")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dis_eval.provenance import sha256_file
    from dis_eval.run_dir import merge_metrics_file
    from pipelines.evaluate.codes_file import load_codes_file
    from pipelines.evaluate.data import data_record, load_eval_data
    from pipelines.evaluate.scoring import ScoreContext, score_plan

    config = eval_config(args)
    if args.factors:
        if args.subset or args.data != "grid":
            raise UserError("--factors replaces dSprites' factors: leave out --data and --subset")
        from dis_eval.data.factors_file import load_factors_file

        data = load_factors_file(args.factors)
        source = args.factors
    else:
        data = load_eval_data(args.data, args.subset, "cpu", need_images=False)
        source = args.data
    codes, data = load_codes_file(args.codes, data)
    context = ScoreContext(source={"kind": "codes", "path": args.codes, "sha256": sha256_file(args.codes)})
    result = score_plan(data, codes, config, data_record(data, source, args.subset), context)
    if args.out:
        merge_metrics_file(args.out, result)
    print_scores(result, args.json)
    return 0
